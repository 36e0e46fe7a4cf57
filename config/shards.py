"""Which Discord shards a process runs: ``--shard-count 4 --shards 0-1`` (or the settings
``discord.shard_count`` and ``discord.shard_ids``).

A deployment splits its guilds into ``shard_count`` shards (Discord sends a guild's events to shard
``(guild_id >> 22) % shard_count``); each process runs some of them. Every process of a deployment
must be given the same count, so a list of ids without a count is refused rather than guessed.
"""

from __future__ import annotations

import re

#: What a list of shard ids may look like, for messages.
SHARD_IDS_FORMS = "a range (0-3), a list (0,2,5), both (0-3,8) or one id (2)"

_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_shard_ids(text: str) -> list[int]:
    """``"0-3"`` → ``[0, 1, 2, 3]``, ``"0,2,5"`` → ``[0, 2, 5]``; ValueError saying what is wrong."""
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"{part or text!r} is not a shard id or range: give {SHARD_IDS_FORMS}")
        first, last = int(match.group(1)), int(match.group(2) if match.group(2) is not None else match.group(1))
        if last < first:
            raise ValueError(f"the range {part} runs backwards: write it as {last}-{first}")
        ids.extend(range(first, last + 1))
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"shard {', '.join(map(str, duplicated))} is named twice in {text!r}")
    return sorted(ids)


def check_shards(count: int | None, ids: list[int] | None) -> None:
    """ValueError unless ``ids`` (if any) are shards of a deployment of ``count`` shards."""
    if count is not None and count < 1:
        raise ValueError(f"the shard count must be 1 or more, not {count}; Discord's recommended count is a "
                         "good start (leave both shard settings out to run every shard here)")
    if ids is None:
        return
    if count is None:
        raise ValueError("shard ids need the shard count of the whole deployment too (--shard-count, "
                         "TROUPE_DISCORD_SHARD_COUNT); every process must be given the same count")
    if not ids:
        raise ValueError(f"no shard ids given: give {SHARD_IDS_FORMS}")
    beyond = [i for i in ids if i >= count]
    if beyond:
        named = f"shard {beyond[0]} does not" if len(beyond) == 1 else f"shards {_listed(beyond)} do not"
        raise ValueError(f"{named} exist in a deployment of {count} shard{'s' if count != 1 else ''} (ids run "
                         f"from 0 to {count - 1}): give ids below {count}, or a larger shard count")


def _listed(ids: list[int]) -> str:
    """``[4, 5, 6]`` → ``4-6``; ``[4, 9]`` → ``4, 9``."""
    return f"{ids[0]}-{ids[-1]}" if ids == list(range(ids[0], ids[-1] + 1)) else ", ".join(map(str, ids))
