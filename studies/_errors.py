"""Errors a user can fix: the CLI prints them as one message, never a traceback."""

from __future__ import annotations

from search_space import SpaceError
from trainer import ConfigError, DataUnavailableError


class StudyError(Exception):
    """A problem with a study, its spec or its storage; the message names the fix."""


# Every error whose message is written for the user. Anything else is a bug and keeps its
# traceback.
UserError = (StudyError, ConfigError, DataUnavailableError, SpaceError)
