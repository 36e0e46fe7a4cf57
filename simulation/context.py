"""Which persona the running code acts for, so logs written deep in the model layer can say so.

Set for the duration of a persona's turn; a task started inside the turn inherits it.
"""

from __future__ import annotations

import contextvars

current_persona: contextvars.ContextVar[str | None] = contextvars.ContextVar("troupe_persona", default=None)
