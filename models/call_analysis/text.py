"""Text matching for bag-of-words tags: case- and diacritic-insensitive, on word boundaries."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def normalise(text: str) -> str:
    """Compatibility-decomposed, combining marks dropped, case-folded: "Désolé" → "desole"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=4096)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A phrase as whole words; any run of spaces in it matches any run of whitespace."""
    words = normalise(phrase).split()
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w){body}(?!\w)")


def count_phrases(normalised_text: str, phrases: tuple[str, ...]) -> int:
    return sum(len(phrase_pattern(p).findall(normalised_text)) for p in phrases)
