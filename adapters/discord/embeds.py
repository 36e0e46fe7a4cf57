"""Cards (summaries, polls, reports) as Discord embeds, cut to Discord's embed limits rather than
refused; a card's image is uploaded with the message and shown inside the embed."""

from __future__ import annotations

import io
import re

import discord

from adapters.base import Card, clip

#: Discord's embed limits; a message's embeds may hold 6,000 characters in all (title, description,
#: field names and values, footer, author).
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
#: Stands in for an empty field name or value, which Discord refuses.
_BLANK = "\u200b"


def attachment_filename(filename: str) -> str:
    """A filename an embed can reference as ``attachment://NAME``: Discord resolves only ``[A-Za-z0-9_.-]``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", filename.strip()).strip("._")
    return safe or "image.png"


def card_colour(colour: str | None) -> int | None:
    """``#rrggbb`` as the integer Discord wants; None for anything else."""
    if colour and re.fullmatch(r"#?[0-9a-fA-F]{6}", colour.strip()):
        return int(colour.strip().lstrip("#"), 16)
    return None


def _cap(lengths: list[int], budget: int) -> int | None:
    """The largest length cap that makes ``lengths`` fit ``budget`` (None when they fit as they are)."""
    if sum(lengths) <= budget:
        return None
    low, high = 0, max(lengths)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(n, middle) for n in lengths) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def card_embed(card: Card) -> discord.Embed:
    """``card`` as an embed within Discord's limits: over-long text is cut with an ellipsis, not refused.

    The title and footer (the footer says the answers are simulated) are kept whole up to their own
    limits; if everything together exceeds 6,000 characters, the longest texts (description, field
    names and values) are cut to a common length, so every field stays visible. Fields beyond 25 are
    summarised in the last one. The image, if any, is referenced as an attachment of the same message.
    """
    title = clip(card.title, EMBED_TITLE_MAX)
    footer = clip(card.footer, EMBED_FOOTER_MAX) if card.footer else ""
    fields = [(f.name, f.value, f.inline) for f in card.fields]
    if len(fields) > EMBED_FIELDS_MAX:
        hidden = len(fields) - (EMBED_FIELDS_MAX - 1)
        fields = fields[: EMBED_FIELDS_MAX - 1] + [("…", f"{hidden} more not shown", False)]
    description = clip(card.text, EMBED_DESCRIPTION_MAX)
    names = [clip(name, EMBED_FIELD_NAME_MAX) or _BLANK for name, _, _ in fields]
    values = [clip(value, EMBED_FIELD_VALUE_MAX) or _BLANK for _, value, _ in fields]
    texts = [description, *names, *values]
    cap = _cap([len(t) for t in texts], EMBED_TOTAL_MAX - len(title) - len(footer))
    if cap is not None:
        description = clip(description, cap)
        names = [clip(n, max(cap, 1)) for n in names]
        values = [clip(v, max(cap, 1)) for v in values]
    embed = discord.Embed(title=title or None, description=description or None, colour=card_colour(card.colour))
    for name, value, (_, _, inline) in zip(names, values, fields):
        embed.add_field(name=name, value=value, inline=inline)
    if footer:
        embed.set_footer(text=footer)
    if card.image is not None:
        embed.set_image(url=f"attachment://{attachment_filename(card.image[0])}")
    return embed


def card_file(card: Card) -> discord.File | None:
    """A fresh upload of the card's image (a ``discord.File`` can be sent only once)."""
    if card.image is None:
        return None
    filename, data = card.image
    return discord.File(io.BytesIO(data), filename=attachment_filename(filename))
