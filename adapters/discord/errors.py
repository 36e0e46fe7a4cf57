"""Discord's failures as the outbox understands them: worth a retry or not, and said plainly."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

from adapters.base import AdapterError


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, discord.HTTPException):
        return error.status == 429 or error.status >= 500
    return isinstance(error, (aiohttp.ClientError, OSError, asyncio.TimeoutError))


def post_error(error: BaseException, what: str) -> AdapterError:
    if isinstance(error, discord.HTTPException):
        detail = f"HTTP {error.status}" + (f" (code {error.code})" if error.code else "") + f": {error.text or ''}"
    else:
        detail = f"{type(error).__name__}: {error}"
    return AdapterError(f"Discord refused {what}: {detail}".rstrip(": "), retryable=is_retryable(error))


#: What talking to Discord may raise besides its own refusals: the connection failing or timing out.
NETWORK_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError)
