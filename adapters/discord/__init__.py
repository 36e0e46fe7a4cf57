"""Discord, through discord.py: the adapter, the channel webhooks personas post through, cards as
embeds, and the ``/troupe`` slash commands."""

from adapters.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
