"""The label every research result carries: which model produced it, and that it is simulated.

Summaries, polls, focus-group reports and extractions are read by people who may take them for
real opinions; one shared line keeps the warning identical wherever a result is shown.
"""

from __future__ import annotations

from pydantic import BaseModel

DISCLAIMER = "Simulated answers from {model}; they may not reflect what real people think."


def disclaimer(model_name: str) -> str:
    """The one-line warning for results produced by ``model_name``."""
    # The offline demo model's name is "demo" (as in exports and usage); in a sentence it is named.
    named = "the offline demo model" if model_name == "demo" else model_name
    return DISCLAIMER.format(model=named or "an unknown model")


class Labelled(BaseModel):
    """Base for user-facing results: the model's name and the disclaimer travel with the data."""

    model_name: str
    disclaimer: str = ""

    def model_post_init(self, context: object) -> None:
        if not self.disclaimer:
            # Filled from the model name so a result can never be shown without its warning.
            object.__setattr__(self, "disclaimer", disclaimer(self.model_name))
