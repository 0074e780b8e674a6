"""'Did you mean' suggestions, shared by the loader and by the models' own validators."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant (same word in another case first), or None."""
    options = [c for c in choices if isinstance(c, str)]
    folded = {c.casefold(): c for c in options}
    if word.casefold() in folded:
        return folded[word.casefold()]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` when a choice is close to word, else an empty string."""
    if not isinstance(word, str):
        return ""
    hit = closest(word, choices)
    return f"; did you mean {hit!r}?" if hit is not None and hit != word else ""
