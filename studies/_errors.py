"""Errors a user can fix: the CLI prints them as one message, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from search_space import SpaceError
from trainer import ConfigError, DataUnavailableError, WeightsError


class StudyError(Exception):
    """A problem with a study, its spec or its storage; the message names the fix."""


# Every error whose message is written for the user. Anything else is a bug and keeps its
# traceback.
UserError = (StudyError, ConfigError, DataUnavailableError, SpaceError, WeightsError)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of `known`, or "" when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
