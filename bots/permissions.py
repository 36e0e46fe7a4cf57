"""Who may change a channel's world: moderators by user id, by role, or by platform permission."""

from __future__ import annotations

from adapters.base import UserRef
from config.settings import BotSettings


class ModeratorPolicy:
    def __init__(self, settings: BotSettings) -> None:
        self.user_ids = {u.strip() for u in settings.moderator_user_ids}
        self.roles = {r.strip() for r in settings.moderator_roles}
        self.managers = settings.managers_are_moderators

    def is_moderator(self, user: UserRef, platform: str) -> bool:
        if user.is_bot:
            return False
        if user.id in self.user_ids or f"{platform}:{user.id}" in self.user_ids:
            return True
        if self.roles.intersection(user.roles):
            return True
        return self.managers and user.can_manage

    def refusal(self, command: str) -> str:
        return (
            f"Only moderators can use `{command}`. Ask a moderator, or have an admin add your user id "
            "to bot.moderator_user_ids (or one of your roles to bot.moderator_roles) in troupe.yaml."
        )
