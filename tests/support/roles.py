"""A second PostgreSQL user for tests: a login role on the test server, with grants of the test's
choosing, and the URL Troupe would be given to connect as it."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlsplit

import asyncpg

from tests.support.postgres import PostgresServer


async def create_role(server: PostgresServer, password: str, *grants: tuple[str, str]) -> str:
    """A new login role (its name made unique: roles belong to the whole server, which every test
    shares) with ``password``; each grant is ``(database URL, SQL)`` run there as the owner, the
    SQL's ``{role}`` being the role's name. Returns the name."""
    name = f"troupe_user_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password.replace(chr(39), chr(39) * 2)}'")
    finally:
        await admin.close()
    for url, sql in grants:
        owner = await asyncpg.connect(url)
        try:
            await owner.execute(sql.format(role=name))
        finally:
            await owner.close()
    return name


def url_as(url: str, role: str, password: str | None) -> str:
    """``url`` (the owner's) for ``role``, with ``password`` percent-encoded in the user part (or none)."""
    parts = urlsplit(url)
    secret = f":{quote(password, safe='')}" if password is not None else ""
    return f"{parts.scheme}://{quote(role, safe='')}{secret}@{parts.hostname}:{parts.port}{parts.path}"


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")
