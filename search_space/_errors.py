"""`SpaceError`, and the small helpers that phrase its problems."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# A problem found below some key: (where, what). `where` is relative to the thing checked ("" for
# the thing itself, or a sub-key such as "when.optimizer"), so the caller can prefix its own path.
Problem = tuple[str, str]


class SpaceError(ValueError):
    """A search space that cannot be used; the message lists every problem, one per line.

    Attributes:
        problems: The problems, each led by its key path (e.g. ``space.lr: ...``).
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid search space:\n  - " + "\n  - ".join(self.problems))


class ParamError(SpaceError):
    """A parameter's problems, kept relative so that a search space can prefix its own path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.relative = problems
        super().__init__(at("", problems))


def at(path: str, problems: Iterable[Problem]) -> list[str]:
    """Phrases relative problems under a key path (``path`` may be empty)."""
    out = []
    for where, what in problems:
        key = ".".join(part for part in (path, where) if part)
        out.append(f"{key}: {what}" if key else what)
    return out


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known word, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
