"""Who may change a channel's world, and see what is private to moderators: moderators by user id,
by role, or by platform permission.

The settings are read at each question, not copied once, and a right is asked again each time
something private is delivered: someone who lost it stops receiving what it gave them.
"""

from __future__ import annotations

from adapters.base import UserRef
from bots.commands import Command
from config.settings import BotSettings


class ModeratorPolicy:
    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings

    def is_moderator(self, user: UserRef, platform: str) -> bool:
        if user.is_bot:
            return False
        user_ids = {u.strip() for u in self.settings.moderator_user_ids}
        if user.id in user_ids or f"{platform}:{user.id}" in user_ids:
            return True
        if {r.strip() for r in self.settings.moderator_roles}.intersection(user.roles):
            return True
        return self.settings.managers_are_moderators and user.can_manage

    def may_run(self, command: Command, user: UserRef, platform: str) -> bool:
        """Whether ``user`` may run ``command``. Anyone may switch off what they receive (``observe NAME
        off``), so someone who is no longer a moderator can stop what they subscribed to as one."""
        if not command.spec.moderator_only:
            return True
        if command.name == "observe" and not command.args.get("on"):
            return True
        return self.is_moderator(user, platform)

    def refusal(self, command: str, user: UserRef, platform: str, *, act: str | None = None) -> str:
        """Why ``user`` may not run ``command`` (or do ``act``), with the id an admin would list to let them."""
        listed = f"{platform}:{user.id}".replace("`", "")
        return (
            f"Only moderators can {act or f'use `{command}`'}. Ask a moderator, or have an admin add your user id "
            f"(`{listed}`) to bot.moderator_user_ids (or one of your roles to bot.moderator_roles) in troupe.yaml."
        )
