"""Which handler runs each command, and running one: parsed, authorised, run, and every failure
turned into a private explanation for the one who asked."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from adapters.base import Adapter, CommandInvocation, inert, literal
from bots import branch_commands, compare, moderation, research
from bots.commands import SPECS, CommandError, CommandSpec, parse_command
from bots.context import CommandContext, CommandServices, Handler
from bots.moderation import over_budget
from bots.persona_admission import PersonaRefusedError
from bots.reply import Reply
from bots.storage import StorageError
from simulation.file_access import FileRefusedError
from simulation.llm.errors import BudgetExceededError, LLMError
from simulation.persona import PersonaError
from simulation.scenario import ScenarioError
from simulation.world import WorldError

log = logging.getLogger(__name__)

#: Every command's handler, by the command's name.
HANDLERS: dict[str, Handler] = {**moderation.HANDLERS, **research.HANDLERS, **branch_commands.HANDLERS,
                                 **compare.HANDLERS}

NO_WORLD = ("This channel has no world. Start one with `start NAME`, then add personas with "
            "`persona add NAME` (`personas` lists the bundled ones).")


class CommandRegistry:
    """The handler of every command in ``specs``: each has one, and nothing else is registered."""

    def __init__(self, services: CommandServices, handlers: Mapping[str, Handler] = HANDLERS,
                 specs: Mapping[str, CommandSpec] = SPECS) -> None:
        missing = sorted(set(specs) - set(handlers))
        unknown = sorted(set(handlers) - set(specs))
        if missing or unknown:
            raise ValueError(f"commands without a handler: {missing or 'none'}; handlers without a command: "
                             f"{unknown or 'none'}")
        self.services = services
        self.handlers = dict(handlers)

    async def run(self, adapter: Adapter, invocation: CommandInvocation, *, interviewed: str | None = None) -> Reply:
        """Parse, authorise and run one command; every failure becomes a private explanation.

        ``interviewed``: the persona whose interview thread the command was written in, as a question.
        """
        services = self.services
        try:
            command = parse_command(invocation.text, max_run_steps=services.settings.max_run_steps)
        except CommandError as error:
            return _failure(str(error))
        spec = command.spec
        if not services.permissions.may_run(command, invocation.user, invocation.channel.platform):
            # In an interview thread the words were not a command: say what they were not.
            act = None if interviewed is None else (f"question {literal(interviewed)} in this interview thread, so "
                                                    "your message was not passed on")
            return Reply(services.permissions.refusal(command.name, invocation.user, invocation.channel.platform,
                                                      act=act), private=True, failed=True)
        # In a branch's thread, commands act on the branch.
        session = services.branches.hearing(invocation.channel)
        stopped = services.branches.stopped_in(invocation.channel)
        if stopped is not None and spec.needs_world:
            return Reply(f"The branch “{stopped}” of this thread was stopped, so `{command.name}` has no world here; "
                         "commands for the channel's world are written in the channel.", private=True, failed=True)
        if spec.needs_world and session is None:
            return Reply(NO_WORLD, private=True, failed=True)
        context = CommandContext(invocation, spec, adapter, services, session, interviewed)
        try:
            return await self.handlers[command.name](context, **command.args)
        except (CommandError, FileRefusedError, PersonaError, PersonaRefusedError, ScenarioError, WorldError) as error:
            return _failure(str(error))
        except BudgetExceededError as error:
            if session is not None and (spent := over_budget(services, session)) is not None:
                return spent
            return _failure(f"`{command.name}` could not finish: {error.reason or error}.")
        except LLMError as error:
            # The one who asked is told; the log keeps it for whoever runs the bot.
            log.info("%s failed: %s", command.name, error)
            return _failure(f"`{command.name}` could not finish: {error}. Nothing was changed; try again, or "
                            "`usage` shows the budget.")
        except StorageError as error:
            log.exception("storage failed on %s", command.name)
            return _failure(f"Could not save that change: {error}. Nothing was changed.")


def _failure(explanation: str) -> Reply:
    """A failure told to the one who asked. An error's words may quote a file's fields, a model
    server's answer or what was typed, so none of it can form a link or a mention there."""
    return Reply(inert(explanation), private=True, failed=True)
