"""Every turn-taking policy is offered, accepted and explained the same way wherever a person meets it:
the settings, the ``policy`` command and its help, scenarios and the simulation itself."""

from __future__ import annotations

import pytest

from bots.commands import help_text, parse_command
from config.settings import load_settings
from config.turn_taking import POLICY_DESCRIPTIONS, POLICY_NAMES
from simulation.turn_taking import POLICY_CLASSES, make_policy
from tests.support.testbot import demo_settings, start_bot


def test_the_simulation_has_a_policy_for_every_name_and_no_other():
    assert POLICY_NAMES == ("everyone", "addressed", "round_robin", "moderator", "model")
    assert set(POLICY_CLASSES) == set(POLICY_NAMES) == set(POLICY_DESCRIPTIONS)
    for name in POLICY_NAMES:
        assert make_policy(name).kind == name
    assert make_policy(" Round-Robin ").kind == "round_robin"
    with pytest.raises(ValueError, match="choose one of: everyone, addressed, round_robin, moderator, model"):
        make_policy("sometimes")


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_each_policy_is_a_default_the_settings_accept_and_a_command_argument(monkeypatch, name):
    monkeypatch.setenv("TROUPE_BOT_DEFAULT_POLICY", name)
    assert load_settings().bot.default_policy == name
    assert parse_command(f"policy {name}").args == {"policy": name}


def test_the_help_lists_every_policy():
    assert "policy [everyone|addressed|round_robin|moderator|model] [--exchanges N]" in help_text("policy")


async def test_the_policy_command_explains_each_policy(tmp_path):
    bot = await start_bot(demo_settings(tmp_path))
    try:
        await bot.command("start Launch review")
        for name in POLICY_NAMES:
            reply = await bot.reply(f"policy {name}")
            assert reply.startswith(f"Policy: {name} — {POLICY_DESCRIPTIONS[name]};"), reply
    finally:
        await bot.app.stop()
