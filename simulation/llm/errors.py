"""Typed errors of the language-model layer.

Callers (agents, worlds, bots) handle these instead of provider exceptions, so a misbehaving
model never crashes a world with an untyped traceback.
"""

from __future__ import annotations

#: What research cards say of a persona whose model gave no valid answer of the asked shape.
NOT_IN_SHAPE = "could not answer in the required shape"


class LLMError(Exception):
    """Base class for every failure of the language-model layer."""

    #: Whether retrying the same request may succeed.
    retryable: bool = False


class ModelConfigurationError(LLMError):
    """The settings do not describe a usable model (missing model name, key or endpoint)."""


class TransientLLMError(LLMError):
    """A failure that may go away on retry (rate limit, 5xx, timeout, connection)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(TransientLLMError):
    """HTTP 429. ``retry_after`` carries the server's ``Retry-After`` in seconds, when sent."""


class ServerError(TransientLLMError):
    """HTTP 5xx from the model server."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class ModelTimeoutError(TransientLLMError):
    """The model did not answer within the configured timeout."""


class ModelConnectionError(TransientLLMError):
    """The model server could not be reached or dropped the connection."""


class ModelRequestError(LLMError):
    """The server rejected the request (4xx other than 429); retrying will not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationFailedError(ModelRequestError):
    """The API key was missing or rejected."""


class ResponseFormatUnsupportedError(ModelRequestError):
    """The server refused the requested ``response_format`` (json_schema or json_object)."""


class ContextLengthExceededError(ModelRequestError):
    """The prompt does not fit the model's context window. ``limit`` is the window in tokens and
    ``requested`` what the request needed, when the server said so."""

    def __init__(
        self, message: str, *, status: int | None = None, limit: int | None = None, requested: int | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.limit = limit
        self.requested = requested


class ContentFilteredError(LLMError):
    """The provider's safety system refused the prompt or the completion.

    A safety hold, not a transient error: it is never retried.
    """


class StructuredOutputError(LLMError):
    """The model's reply could not be parsed or validated against the schema, even after a re-ask."""

    def __init__(self, message: str, *, raw: str = "", schema_name: str = "") -> None:
        super().__init__(message)
        self.raw = raw
        self.schema_name = schema_name


class BudgetExceededError(LLMError):
    """A usage budget was reached; the world that owns it must stop."""

    def __init__(self, message: str, *, scope: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope
        #: Which limit was reached and how to raise it ("its budget of 5,000 tokens (used …); raise …").
        self.reason = reason
