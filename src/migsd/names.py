"""Names as modellers write them in the .mdl, and the close matches offered on a typo."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


def canonical(name: str) -> str:
    """Vensim's identity of a name: case, spaces, underscores and repeated blanks ignored."""
    return re.sub(r"[\s_]+", " ", name).strip().lower()


def snake_case(name: str) -> str:
    """Dimension name of a subscript range: ``Destination`` -> ``destination``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[\s\-]+", "_", name).lower()


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` candidates that look like ``name``, compared as Vensim compares names."""
    by_canonical = {}
    for candidate in candidates:
        by_canonical.setdefault(canonical(candidate), candidate)
    found = difflib.get_close_matches(canonical(name), list(by_canonical), n=n, cutoff=0.6)
    if not found:
        words = set(canonical(name).split())
        found = [c for c in by_canonical if words & set(c.split())][:n]
    return [by_canonical[c] for c in found]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A sentence suggesting close matches, or an empty string if none are close."""
    matches = close_matches(name, candidates)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
