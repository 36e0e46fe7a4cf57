"""Mutation testing of the code that keeps Troupe safe: do the tests notice when it breaks?

mutmut changes the code one small step at a time (``>=`` to ``>``, ``and`` to ``or``, a line
dropped, a string altered), and each changed copy (a mutant) runs the tests that exercise the
function it changed. A mutant the tests fail on is killed; one they pass survives, and points at
behaviour nothing checks. Only the functions named in ``SCOPE`` count; the tests run are those
listed under ``[tool.mutmut]`` in pyproject.toml that call the changed function.

Run from the project root with ``make mutation`` (or ``python scripts/mutation.py``). mutmut works in
``mutants/`` (a copy of the tree, rebuilt each run); the last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
LOG = MUTANTS / "mutmut-run.log"
SURVIVORS = MUTANTS / "survivors.txt"

#: What is tested, by the name the summary gives it: ((source file, functions), …) and the test files
#: that matter to it. Functions are mutmut's names: ``x_NAME`` for a module function,
#: ``xǁCLASSǁNAME`` for a method; ``*`` is all. A mutant runs those of its area's tests that call its
#: function.
VERIFICATION = ("tests/bots/verification/test_pipeline.py", "tests/bots/verification/test_pipeline_audit.py",
                "tests/bots/verification/test_api.py", "tests/bots/verification/test_bot_safety.py",
                "tests/bots/test_hostile_input.py", "tests/bots/test_secrets_never_leak.py")
OUTBOX = ("tests/bots/test_outbox_exactly_once.py", "tests/bots/test_review_queue.py",
          "tests/bots/storage/test_sqlite.py", "tests/bots/storage/test_storage.py",
          "tests/bots/storage/test_outbox_errors.py", "tests/bots/test_outbox_retries.py")
CORPUS = "tests/bots/verification/test_corpus.py"
CHECK_TESTS = "tests/bots/verification/checks"
Area = tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]]
SCOPE: dict[str, Area] = {
    "permissions": ((("bots/permissions.py", ("*",)),),
                    ("tests/bots/test_permissions_all_commands.py", "tests/bots/test_moderator_rights.py",
                     "tests/bots/test_rights_over_time.py")),
    "outbox": ((("bots/outbox.py", ("*",)),), OUTBOX),
    "outbox storage": (
        (
            ("bots/storage/sqlite/store.py", tuple(f"xǁSQLiteStorageǁ{name}" for name in (
                "pending_outbox", "outbox_entries", "mark_posted", "posted_ids", "mark_attempt",
                "set_outbox_status", "_update_entry", "get_outbox", "held_outbox", "decide_outbox",
            ))),
            ("bots/storage/sqlite/writer.py", ("x__apply_steps", "x__apply_steps_together", "x__outbox_by_keys")),
            ("bots/storage/sqlite/statements.py", ("x_select_outbox_by_keys",)),
            ("bots/storage/rows.py", ("x_outbox_params", "x_outbox_from_row")),
        ),
        OUTBOX,
    ),
    "verification pipeline": ((("bots/verification/pipeline.py", ("*",)),), VERIFICATION),
    "verification process": ((("bots/verification/process.py", ("*",)),), ("tests/bots/verification/test_process.py",)),
    "secrets": ((("bots/verification/checks/secrets.py", ("*",)),),
                (f"{CHECK_TESTS}/test_secrets.py", f"{CHECK_TESTS}/test_secret_spans.py",
                 f"{CHECK_TESTS}/test_secret_rules.py", f"{CHECK_TESTS}/test_secret_skips.py",
                 "tests/bots/verification/test_text.py", "tests/bots/test_secrets_never_leak.py", CORPUS)),
    "pii": ((("bots/verification/checks/pii.py", ("*",)),),
            (f"{CHECK_TESTS}/test_pii.py", f"{CHECK_TESTS}/test_pii_edges.py", f"{CHECK_TESTS}/test_pii_skips.py",
             "tests/bots/verification/test_text.py", CORPUS)),
    "mentions": ((("bots/verification/checks/platform.py", ("*",)),),
                 (f"{CHECK_TESTS}/test_platform.py", f"{CHECK_TESTS}/test_platform_results.py", CORPUS)),
    "links": ((("bots/verification/checks/links.py", ("*",)),),
              (f"{CHECK_TESTS}/test_links.py", f"{CHECK_TESTS}/test_links_results.py", CORPUS)),
    "budget": ((("simulation/llm/budget.py", ("*",)),),
               ("tests/simulation/llm/test_budget_caps.py", "tests/simulation/llm/test_usage_budget.py")),
    "retry": ((("simulation/llm/retry.py", ("*",)),),
              ("tests/simulation/llm/test_retry.py", "tests/simulation/llm/test_retry_schedule.py")),
    "slack signatures and repeats": (
        (("adapters/slack.py",
          ("xǁ_Seenǁ*", *(f"xǁSlackAdapterǁ{name}" for name in ("connect", "_by_a_person", "_on_message")))),),
        ("tests/adapters/test_slack.py", "tests/adapters/test_slack_units.py", "tests/adapters/test_contract.py"),
    ),
    "repeated messages": (
        (("bots/session.py",
          tuple(f"xǁChannelSessionǁ{name}" for name in ("hear", "heard", "_note_heard", "_index_heard"))),),
        ("tests/bots/test_outbox_exactly_once.py", "tests/bots/test_app.py", "tests/bots/test_hostile_input.py"),
    ),
}

#: mutmut's verdicts, counted as the summary counts them.
KILLED = {"killed", "caught by type check", "segfault"}
TIMEOUT = {"timeout"}
#: A mutant no test ran ("no tests") survives: nothing would notice it.
SURVIVED = {"survived", "no tests", "suspicious"}


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def patterns(scope: dict[str, Area]) -> list[str]:
    """mutmut's names of every mutant in ``scope``, as globs."""
    return [f"{module_of(path)}.{function}__mutmut_*"
            for places, _ in scope.values() for path, functions in places for function in functions]


def in_scope(key: str, path: str, functions: tuple[str, ...]) -> bool:
    """Whether ``key`` (a mutant's or a function's name) is one of ``functions`` in ``path``."""
    name = key.split("__mutmut_")[0]
    return any(fnmatch.fnmatchcase(name, f"{module_of(path)}.{function}") for function in functions)


def check_configuration() -> None:
    """Every file and test file in scope must be in mutmut's settings, or it would silently be missing."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    missing = sorted({path for places, _ in SCOPE.values() for path, _ in places} - set(config["only_mutate"]))
    missing_tests = sorted({t for _, tests in SCOPE.values() for t in tests}
                           - set(config["pytest_add_cli_args_test_selection"]))
    if missing or missing_tests:
        sys.exit(f"add {', '.join(missing + missing_tests)} to only_mutate or pytest_add_cli_args_test_selection "
                 "under [tool.mutmut] in pyproject.toml")


def keep_the_tests_that_matter() -> None:
    """Leave each function in scope the tests of its module that call it (mutmut recorded all that do)."""
    stats_path = MUTANTS / "mutmut-stats.json"
    stats = json.loads(stats_path.read_text())
    tests_by_function: dict[str, list[str]] = stats["tests_by_mangled_function_name"]
    for function, tests in tests_by_function.items():
        for places, area_tests in SCOPE.values():
            if any(in_scope(function, path, functions) for path, functions in places):
                tests_by_function[function] = [t for t in tests if t.split("::")[0] in area_tests]
    stats_path.write_text(json.dumps(stats, indent=1))


def verdicts(scope: dict[str, Area]) -> dict[str, dict[str, str]]:
    """Each module's mutants in ``scope`` and mutmut's verdict on each (so far)."""
    from mutmut.stats import status_by_exit_code

    found: dict[str, dict[str, str]] = {}
    for label, (places, _) in scope.items():
        found[label] = {}
        for path, functions in places:
            try:
                meta = json.loads((MUTANTS / f"{path}.meta").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            for key, code in meta["exit_code_by_key"].items():
                if in_scope(key, path, functions):
                    found[label][key] = status_by_exit_code[code]
    return found


def summary(found: dict[str, dict[str, str]]) -> dict:
    def counts(statuses: list[str]) -> dict:
        tally = Counter(statuses)
        killed = sum(tally[s] for s in KILLED)
        timeout = sum(tally[s] for s in TIMEOUT)
        survived = sum(tally[s] for s in SURVIVED)
        total = len(statuses)
        score = round((killed + timeout) / total, 4) if total else 1.0
        return {"mutants": total, "killed": killed, "survived": survived, "timeout": timeout, "score": score}

    everything = counts([s for module in found.values() for s in module.values()])
    return {**everything, "by_module": {label: counts(list(module.values())) for label, module in found.items()}}


def mutmut(workers: int, names: list[str], log: Path, scope: dict[str, Area], progress_every: float | None = None) -> None:
    """``mutmut run`` on the mutants ``names`` (globs); exits with its output's tail when it fails."""
    command = [str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", str(workers), *names]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            time.sleep(progress_every or 1)
            if progress_every:
                statuses = [s for module in verdicts(scope).values() for s in module.values()]
                done = sum(s != "not checked" for s in statuses)
                print(f"  {done} of {len(statuses)} mutants tested", flush=True)
    if process.returncode != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
        sys.exit(f"mutmut failed (exit {process.returncode}); its whole output is in {log.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 when the score is lower")
    parser.add_argument("--progress-every", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument("--area", action="append", choices=list(SCOPE), metavar="AREA",
                        help="test only this area (repeatable): " + ", ".join(SCOPE))
    parser.add_argument("--report", action="store_true",
                        help="summarise the verdicts already in mutants/ (after `mutmut run NAMES` retried some)")
    args = parser.parse_args(argv)

    scope = {area: SCOPE[area] for area in args.area} if args.area else SCOPE
    os.chdir(ROOT)
    check_configuration()
    if args.report:
        return report(scope, args.fail_under, None)
    shutil.rmtree(MUTANTS, ignore_errors=True)
    MUTANTS.mkdir()
    started = time.monotonic()
    print(f"Mutation testing with {args.workers} workers; mutmut's output goes to {LOG.relative_to(ROOT)}", flush=True)
    # First the mutants are made and every listed test is run once, recording which functions it
    # calls (one mutant is tested along the way); then each function keeps its module's tests only.
    mutmut(args.workers, [patterns(scope)[0].replace("__mutmut_*", "__mutmut_1")], MUTANTS / "mutmut-setup.log", scope)
    keep_the_tests_that_matter()
    print(f"  mutants made and tests mapped in {(time.monotonic() - started) / 60:.1f} minutes", flush=True)
    mutmut(args.workers, patterns(scope), LOG, scope, args.progress_every)
    return report(scope, args.fail_under, time.monotonic() - started)


def report(scope: dict[str, Area], fail_under: float, seconds: float | None) -> int:
    """Print each module's figures, list the survivors, and print the JSON summary last."""
    found = verdicts(scope)
    result = summary(found)
    survivors = sorted(key for module in found.values() for key, status in module.items() if status in SURVIVED)
    SURVIVORS.write_text("".join(f"{key}\n" for key in survivors))
    for label, figures in result["by_module"].items():
        print(f"  {label:30} {figures['killed'] + figures['timeout']:5} of {figures['mutants']:5} killed  "
              f"score {figures['score']:.2f}")
    took = f"; took {seconds / 60:.1f} minutes" if seconds is not None else ""
    print(f"{len(survivors)} survivors listed in {SURVIVORS.relative_to(ROOT)} (`mutmut show NAME` shows one){took}")
    print(json.dumps(result))
    return 1 if result["score"] < fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
