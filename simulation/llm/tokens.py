"""Token counts with o200k_base, the encoding of OpenAI's current models.

Used to size prompts and to estimate usage where a server reports none. A request counts every
token of every message's content, plus the JSON of the response_format schema when one is sent;
the few tokens of per-message framing a provider adds are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from bpe_openai import Encoding, get_encoding

from simulation.llm.base import Message

ENCODING_NAME = "o200k_base"
# The encoder refuses to produce more tokens than this from one text; a token is never
# shorter than one character, so texts are counted in pieces of this many characters.
_PIECE_CHARS = 200_000


@lru_cache(maxsize=1)
def encoding() -> Encoding:
    """The shared encoder; built once, since loading its vocabulary takes a moment."""
    return get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens in ``text``; special-token markers such as ``<|endoftext|>`` count as plain text."""
    if not text:
        return 0
    enc = encoding()
    if len(text) <= _PIECE_CHARS:
        return len(enc.encode_ordinary(text))
    total = 0
    start = 0
    while start < len(text):
        end = min(len(text), start + _PIECE_CHARS)
        if end < len(text):
            # Cut at whitespace so the pieces tokenize as the whole text would.
            space = text.rfind(" ", start + _PIECE_CHARS // 2, end)
            end = space if space > start else end
        total += len(enc.encode_ordinary(text[start:end]))
        start = end
    return total


def count_request_tokens(
    messages: Iterable[Message | Mapping[str, Any]],
    response_format: Mapping[str, Any] | None = None,
) -> int:
    """Prompt tokens of a request: all message contents, plus the response_format schema's JSON."""
    total = 0
    for message in messages:
        content = message.content if isinstance(message, Message) else message.get("content")
        if isinstance(content, str):
            total += count_tokens(content)
    schema = _schema_of(response_format)
    if schema is not None:
        total += count_tokens(json.dumps(schema))
    return total


def _schema_of(response_format: Mapping[str, Any] | None) -> Any:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    return (response_format.get("json_schema") or {}).get("schema")


#: Other models' tokenizers split text finer than o200k_base (a 32k or 49k vocabulary takes up to a
#: quarter more tokens for English): a prompt sized for another server's window counts this many
#: times its o200k_base tokens.
FOREIGN_TOKENIZER_MARGIN = 1.25
#: Tokens a chat template adds around each message (role markers, separators), at most.
MESSAGE_FRAMING_TOKENS = 6


def estimated_prompt_tokens(messages: Iterable[Message]) -> int:
    """A cautious estimate of a prompt's tokens on any server: o200k_base counts with a margin for
    finer tokenizers, plus each message's template framing. Used to fit a prompt to a context window
    known in another tokenizer's tokens."""
    messages = list(messages)
    counted = count_request_tokens(messages)
    return int(counted * FOREIGN_TOKENIZER_MARGIN) + MESSAGE_FRAMING_TOKENS * (len(messages) + 1)
