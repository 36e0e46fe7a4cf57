"""Branches on the console, in a real ``troupe console --script`` process: with no threads, a branch
is a section of its own, its posts labelled with its name, talked to with ``/branch NAME TEXT``."""

from __future__ import annotations

from tests.support.cli import script, troupe


async def test_a_branch_on_the_console_is_a_labelled_section_and_compare_is_a_panel(tmp_path):
    env = {"TROUPE_DATA_DIR": str(tmp_path / "data")}
    code, out, err = await troupe("console", "--script", str(script(
        tmp_path, "Would you pay $300 for the speaker?", "/fork discount",
        "/branch discount Priya, would you buy it at $199?", "/compare main discount", "/status")), env=env)
    assert code == 0, out + err
    assert "Forked the branch “discount”" in out and "Talk to it with /branch discount TEXT" in out
    after = out.split("> /branch discount", 1)[1].split("> /compare", 1)[0]
    assert "Priya Nair (branch discount, demo model): " in after
    assert "(demo model): " not in after.replace("(branch discount, demo model): ", ""), \
        "only the branch answered what was said in it"
    panel = out.split("> /compare main discount", 1)[1]
    assert "Compare “main” and “discount”" in panel and "Priya Nair" in panel and "Changed:" in panel
    assert "they may not reflect what real people think" in panel
    assert "Branches: discount (active" in panel

    # After a restart the branch is there again, and still heard on its own.
    code, out, err = await troupe("console", "--script", str(script(
        tmp_path, "/branch discount And with a free cable?", "/status")), env=env)
    assert code == 0, out + err
    assert "(branch discount, demo model): " in out and "Branches: discount (active" in out


async def test_the_console_starts_again_after_its_world_was_stopped_with_a_branch(tmp_path):
    env = {"TROUPE_DATA_DIR": str(tmp_path / "data")}
    await troupe("console", "--script", str(script(tmp_path, "Hello all", "/fork later", "/stop confirm")), env=env)
    code, out, err = await troupe("console", "--script", str(script(tmp_path, "/start --reopen", "/status")), env=env)
    assert code == 0, out + err
    assert "No world in this channel" in out and "Reopened the world “Team room”" in out
    assert "Branches: later (active" in out, "the branch comes back with its world"
