"""How a demo answer to a yes/no question opens, and the vote that opening stands for.

Replies open with these leads; polls and summaries read them back to know how a persona answered.
"""

from __future__ import annotations

YES_LEADS = ("Yes, I think so.", "I'd say yes.", "Yes — with one condition.")
NOT_YET_LEADS = ("Not yet, in my view.", "I'd hold off.")
NO_LEADS = ("Honestly, no — not like this.",)


def lead_kind(text: str) -> str | None:
    """How a demo answer to a yes/no question opened: "yes", "wait" or "no" (None: no such opening)."""
    for kind, leads in (("yes", YES_LEADS), ("wait", NOT_YET_LEADS), ("no", NO_LEADS)):
        if text.startswith(leads):
            return kind
    return None


#: The options an opening answer stands for, most fitting first (the last is a summary's word for it).
_LEAD_VOTES = {
    "yes": ("yes", "yeah", "yep", "sure", "agree", "for it"),
    "wait": ("later", "not yet", "wait", "no", "nope", "disagree", "would wait"),
    "no": ("no", "nope", "disagree", "not yet", "later", "against it"),
}


def lead_vote(line: str, options: list[str]) -> str | None:
    """The option an answer's yes/no opening stands for, if one of them is on offer."""
    kind = lead_kind(line)
    if kind is None:
        return None
    offered = {o.casefold().strip(" .!"): o for o in options}
    return next((offered[v] for v in _LEAD_VOTES[kind] if v in offered), None)
