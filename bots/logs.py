"""Logging for operators: JSON lines when the output is not a terminal, short lines when it is.

Every record carries what it happened to (channel, world, persona, request) from ``log_context``,
and passes a redaction filter first, so tokens and API keys never reach a log, whatever logs them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import BaseModel, SecretStr

from config.settings import Settings
from simulation.context import current_persona

#: Context fields a record may carry.
CONTEXT_FIELDS = ("channel", "world", "persona", "request")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("troupe_log_context", default={})  # noqa: B039 (never mutated: each change sets a new dict)

REDACTED = "[redacted]"
#: Token shapes worth hiding even when not configured here (a pasted key, a key from another app).
SECRET_PATTERNS = (
    re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{8,}"),  # Slack bot/user tokens
    re.compile(r"\bxapp-[0-9A-Za-z-]{8,}"),  # Slack app-level tokens
    re.compile(r"\bsk-(?:proj-|svcacct-)?[0-9A-Za-z_-]{16,}"),  # OpenAI keys
    re.compile(r"\b[MNO][A-Za-z\d_-]{23,25}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,38}\b"),  # Discord bot tokens
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"(?i)(\bapi[-_]?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._-]{12,}"),
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within this block, every log record carries ``fields`` (channel, world, persona, request)."""
    merged = {**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings (tokens, keys, signing secrets)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value().strip()
            if len(secret) >= 6:
                found.append(secret)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(settings)
    return found


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets and token-shaped strings replaced by ``[redacted]``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments and traceback included) without secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        if record.stack_info:
            message += "\n" + record.stack_info
            record.stack_info = None
        record.msg = redact(message, self.secrets)
        record.args = None
        for name, value in _context.get().items():
            setattr(record, name, value)
        persona = current_persona.get()
        if persona is not None and getattr(record, "persona", None) is None:
            record.persona = persona
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the context fields present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``12:01:02 WARNING adapters.slack [slack:C1] message`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        where = " ".join(f"{getattr(record, n)}" for n in CONTEXT_FIELDS if getattr(record, n, None))
        where = f" [{where}]" if where else ""
        return f"{when} {record.levelname} {record.name}{where} {record.getMessage()}"


def configure_logging(settings: Settings, stream: IO[str] | None = None, *, json_lines: bool | None = None) -> logging.Handler:
    """Send Troupe's logs (and its libraries') to ``stream`` at the configured level; returns the handler."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets_of(settings)))
    handler.setFormatter(JSONFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_troupe", False)]:
        root.removeHandler(old)
    handler._troupe = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    level = logging.getLevelName(settings.log_level.upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    return handler
