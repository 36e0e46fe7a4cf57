"""The turn-taking policies by name: who answers a human message in a world.

The settings name one (``bot.default_policy``), moderators choose one (``policy NAME``, Discord's
choices), scenarios name one and the simulation builds one; all take the names from here, so a new
policy is added once. The names live with the settings because the simulation reads its settings,
not the other way round.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["POLICY_DESCRIPTIONS", "POLICY_NAMES", "PolicyName"]

PolicyName = Literal["everyone", "addressed", "round_robin", "moderator", "model"]

#: The policies, in the order they are offered.
POLICY_NAMES: tuple[PolicyName, ...] = get_args(PolicyName)

#: What each policy means for the people in the channel.
POLICY_DESCRIPTIONS: dict[str, str] = {
    "everyone": "every persona answers a message",
    "addressed": "only personas named or mentioned answer",
    "round_robin": "personas take turns, one per step",
    "moderator": "only personas you `pick` answer",
    "model": "the model picks who speaks next",
}
