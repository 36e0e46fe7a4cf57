"""What a command answers, and how its hints are written on each platform."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import Card
from bots.commands import prefixed


@dataclass(frozen=True)
class Reply:
    """Text for everyone or only for its caller, maybe a file, maybe a card.

    ``card`` is the rich form of the same answer (an embed, Block Kit, a console panel); ``text``
    stays its plain equivalent.
    """

    text: str
    private: bool = False
    file: tuple[str, bytes] | None = None
    card: Card | None = None
    #: The command could not be done (a mistake, a refusal, an error); the text says why.
    failed: bool = False


def with_command_prefix(reply: Reply, prefix: str) -> Reply:
    """``reply`` (its text, and its card's text and footer) with command hints written as they are
    typed on this platform ("`/start NAME`" in the console)."""
    if not prefix:
        return reply
    card = reply.card
    if card is not None:
        card = card.model_copy(update={"text": prefixed(card.text, prefix),
                                       "footer": prefixed(card.footer, prefix) if card.footer else card.footer})
    return Reply(prefixed(reply.text, prefix), private=reply.private, file=reply.file, card=card, failed=reply.failed)
