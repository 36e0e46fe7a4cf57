"""Persona, fragment, population and scenario files are read only when they are regular files, and
never past their limit: a device that never ends, a named pipe nobody writes to, a folder, or a file
larger than it says is refused with a message naming the file, without hanging or filling memory."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from simulation.files import FileReadError, read_text_file
from simulation.persona import (
    MAX_PERSONA_FILE_BYTES,
    PersonaError,
    PersonaSpec,
    load_persona,
    load_population_description,
)
from simulation.scenario import MAX_SCENARIO_FILE_BYTES, ScenarioError, load_scenario

PERSONA = {"name": "Ana Costa", "age": 31, "occupation": "nurse"}
SCENARIO = "name: Ward round\npersonas:\n  - Priya Nair\nopening: Good morning\n"

needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


def without_hanging(read: Callable[[], object], fifo: Path) -> BaseException | object:
    """What ``read()`` returns or raises, run aside: if it blocks on ``fifo`` (the bug this guards
    against), a writer is opened to release it and the test fails instead of hanging."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(read())
        except BaseException as error:  # handed to the test
            outcome.append(error)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a reader waits: this releases it
        reader.join(timeout=10)
        pytest.fail(f"reading {fifo} blocked until a writer appeared")
    return outcome[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    path = tmp_path / "persona.json"
    os.mkfifo(path)
    return path


# -- the reader ------------------------------------------------------------------------------------


def test_a_regular_file_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'{"name": "Ana"}\r\n')
    assert read_text_file(path, limit=100) == '{"name": "Ana"}\n'


def test_a_file_exactly_at_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b"x" * 100)
    assert len(read_text_file(path, limit=100)) == 100
    path.write_bytes(b"x" * 101)
    with pytest.raises(FileReadError, match=r"p\.json: is 101 bytes; the file is at most 100 bytes"):
        read_text_file(path, limit=100)


@needs_dev_zero
def test_a_device_is_refused_without_reading_it() -> None:
    with pytest.raises(FileReadError) as refused:
        read_text_file("/dev/zero", limit=1_000_000, kind="a persona file")
    assert str(refused.value) == ("/dev/zero: is a device, not a regular file; a persona file must be a "
                                  "regular file. Is it the right path?")
    assert refused.value.path == "/dev/zero" and refused.value.problem.startswith("is a device")


@needs_fifo
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    outcome = without_hanging(lambda: read_text_file(fifo, limit=1_000_000), fifo)
    assert isinstance(outcome, FileReadError), outcome
    assert str(outcome).startswith(f"{fifo}: is a named pipe (FIFO), not a regular file")


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match="is a folder, not a regular file"):
        read_text_file(tmp_path, limit=1_000_000)


def test_a_missing_file_is_the_usual_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_text_file(tmp_path / "nope.json", limit=1_000_000)


def test_a_name_no_file_can_have_is_refused() -> None:
    with pytest.raises(FileReadError, match="is not a possible file name"):
        read_text_file("persona\0.json", limit=1_000_000)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="no /proc here")
def test_a_file_that_says_it_is_empty_is_still_read_only_up_to_the_limit() -> None:
    """/proc files say they hold 0 bytes; what is read decides, and past the limit is refused."""
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(FileReadError, match=r"/proc/self/status: is more than 10 bytes; the file is at most 10 bytes"):
        read_text_file("/proc/self/status", limit=10)
    assert "Name:" in read_text_file("/proc/self/status", limit=1_000_000)


# -- persona, agent, fragment and population files --------------------------------------------------


@needs_dev_zero
@pytest.mark.parametrize("load", [load_persona, load_population_description,
                                  lambda path: PersonaSpec.from_data(PERSONA).apply_fragment(path)])
def test_persona_files_from_a_device_are_refused(load: Callable[[str], object]) -> None:
    with pytest.raises(PersonaError, match=r"^/dev/zero: is a device, not a regular file; a persona file must be"):
        load("/dev/zero")


@needs_fifo
@pytest.mark.parametrize("name", ["persona.json", "lisa.agent.json", "calm.fragment.json", "population.yaml"])
def test_persona_files_that_are_named_pipes_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    os.mkfifo(path)
    for load in (load_persona, load_population_description, PersonaSpec.from_data(PERSONA).apply_fragment):
        outcome = without_hanging(lambda load=load: load(path), path)
        assert isinstance(outcome, PersonaError), outcome
        assert str(outcome).startswith(f"{path}: is a named pipe (FIFO), not a regular file"), outcome
        assert outcome.path == str(path)


def test_a_persona_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="is a folder"):
        load_persona(tmp_path)


def test_a_persona_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.agent.json"
    path.write_text(json.dumps({"type": "TinyPerson", "persona": {**PERSONA, "notes": "x" * MAX_PERSONA_FILE_BYTES}}))
    with pytest.raises(PersonaError, match=r"huge\.agent\.json: is 1\.0 MB; a persona file is at most 1 MB\. Is it the right file\?"):
        load_persona(path)


def test_regular_persona_agent_fragment_and_population_files_still_load(tmp_path: Path) -> None:
    (tmp_path / "ana.json").write_text(json.dumps(PERSONA))
    (tmp_path / "ana.agent.json").write_text(json.dumps({"type": "TinyPerson", "persona": PERSONA}))
    (tmp_path / "calm.fragment.json").write_text(json.dumps({"type": "Fragment", "persona": {"style": "calm"}}))
    (tmp_path / "nurses.yaml").write_text("title: Nurses\ndescription: Night shifts\ncontent:\n  - tired\n")
    assert load_persona(tmp_path / "ana.json").name == "Ana Costa"
    agent = load_persona(tmp_path / "ana.agent.json")
    assert agent.to_tinytroupe_dict() == PERSONA
    assert agent.apply_fragment(tmp_path / "calm.fragment.json").style == "calm"
    assert "tired" in load_population_description(tmp_path / "nurses.yaml")


# -- scenario files -------------------------------------------------------------------------------


@needs_dev_zero
def test_a_scenario_from_a_device_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"^/dev/zero: is a device, not a regular file; a scenario file must be"):
        load_scenario("/dev/zero")


@needs_fifo
def test_a_scenario_that_is_a_named_pipe_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    os.mkfifo(path)
    outcome = without_hanging(lambda: load_scenario(path), path)
    assert isinstance(outcome, ScenarioError), outcome
    assert str(outcome).startswith(f"{path}: is a named pipe (FIFO), not a regular file")


def test_a_scenario_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is a folder"):
        load_scenario(tmp_path)


def test_a_scenario_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(SCENARIO + "# " + "x" * MAX_SCENARIO_FILE_BYTES + "\n")
    with pytest.raises(ScenarioError, match=r"huge\.yaml: is 2\.0 MB; a scenario file is at most 2 MB\. Is it the right file\?"):
        load_scenario(path)


def test_a_regular_scenario_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ward.yaml"
    path.write_text(SCENARIO)
    scenario, base = load_scenario(path)
    assert scenario.name == "Ward round" and base == tmp_path.resolve()
