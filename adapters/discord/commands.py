"""``/troupe``: Discord's slash commands, built from the commands the application offers.

Each slash command's options are the command's typed options (numbers with their range, choices,
names suggested as one types); what someone picked becomes the command line it stands for, which
the application parses like any typed command.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Optional

import discord
from discord import app_commands

from adapters.menu import MenuCommand, Option, Suggest

ROOT = "troupe"
ROOT_DESCRIPTION = "Simulated personas in this channel"
#: Where a command lives under ``/troupe`` when not at its own name (Discord allows 25 sub-commands a group).
SLASH_NAMES = {
    "personas": "persona library",
    "generate": "persona generate",
    "review": "review list",
    "approve": "review approve",
    "edit": "review edit",
    "reject": "review reject",
    "focus": "focus start",
    "probe": "focus probe",
    "validate": "persona validate",
    "fork": "branch fork",
    "branch": "branch say",
    "compare": "branch compare",
}
#: The groups under ``/troupe``, with what Discord shows for each.
GROUPS = {
    "persona": "The personas of this channel's world",
    "review": "Persona messages held for a moderator",
    "focus": "Focus groups in this channel",
    "branch": "Branches of this channel's world, side by side",
}

#: Runs the command line a slash command stands for.
Invoke = Callable[[discord.Interaction, str], Awaitable[None]]
#: Suggests values for an option as one types: (interaction, what was typed so far) in, choices out.
Complete = Callable[[discord.Interaction, str], Awaitable[list[app_commands.Choice[str]]]]


def command_group(commands: Sequence[MenuCommand], invoke: Invoke, complete: dict[Suggest, Complete]) -> app_commands.Group:
    """``/troupe`` with every command of ``commands`` under it (in groups where ``SLASH_NAMES`` says)."""
    root = app_commands.Group(name=ROOT, description=ROOT_DESCRIPTION, guild_only=True)
    groups: dict[str, app_commands.Group] = {}
    for command in commands:
        *group, name = SLASH_NAMES.get(command.name, command.name).split()
        parent = root
        if group:
            parent = groups.get(group[0]) or app_commands.Group(name=group[0], description=GROUPS[group[0]],
                                                                 parent=root)
            groups[group[0]] = parent
        parent.add_command(slash_command(command, name, invoke, complete))
    return root


def slash_command(command: MenuCommand, name: str, invoke: Invoke,
                  complete: dict[Suggest, Complete]) -> app_commands.Command:
    """``command`` as a slash command called ``name``, whose options are the command's."""

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await invoke(interaction, command.line(values))

    # discord.py reads a command's options from its callback's signature.
    callback.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction),
        *(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(option),
                            default=inspect.Parameter.empty if option.required else None)
          for option in command.options),
    ])
    described = {option.name: option.description for option in command.options if option.description}
    if described:
        app_commands.describe(**described)(callback)
    slash = app_commands.Command(name=name, description=command.description, callback=callback)
    for option in command.options:
        if option.suggest is not None:
            slash.autocomplete(option.name)(complete[option.suggest])
    return slash


def _annotation(option: Option) -> Any:
    """The type discord.py makes the option of: a string, a ranged number, a choice or a boolean."""
    kind: Any = option.type
    if option.choices:
        kind = Literal[option.choices]
    elif option.type is int and (option.min_value is not None or option.max_value is not None):
        kind = app_commands.Range[int, option.min_value, option.max_value]
    return kind if option.required else Optional[kind]  # noqa: UP045 (built at run time; Range has no |)


def choices(names: list[str], current: str) -> list[app_commands.Choice[str]]:
    """Up to 25 suggestions (Discord's limit) that contain what was typed."""
    folded = current.casefold().strip()
    return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names if folded in n.casefold()][:25]
