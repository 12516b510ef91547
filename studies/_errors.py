"""Errors a user can fix: the CLI prints them as one message, never a traceback."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import ParamSpec, TypeVar

from search_space import SpaceError
from trainer import ConfigError, DataUnavailableError, WeightsError

P = ParamSpec("P")
R = TypeVar("R")


class UserError(Exception):
    """Any error whose message is written for the user and names the fix.

    `except studies.UserError` catches them all. hpstudy's own errors (`StudyError`,
    `SpecError`) derive from it; those of the layers below, which cannot import this package
    (the trainer's `ConfigError`, `DataUnavailableError`, `WeightsError`, the search space's
    `SpaceError`), become subclasses of both their own class and this one when they leave a
    public function (`user_errors`). Anything else is a bug and keeps its traceback.
    """


class StudyError(UserError):
    """A problem with a study, its spec or its storage; the message names the fix."""


# A parameter named in a message: `workers`, or with the value to give, `trial=N`.
_PARAMETER = re.compile(r"`(?P<name>[a-z_][a-z0-9_]*)(?:=(?P<value>[^`]+))?`")


class ParameterError(StudyError):
    """An error about parameters of the Python API: a wrong value, or one to give instead.

    The message names each parameter as the caller wrote it in Python, in backticks, alone
    (`workers`) or with a value (`trial=N`): ``ParameterError(f"`workers` must be at least 1,
    got {workers}")``. The command line, which calls the API with its flags' values, says the
    same in its own words with `worded`.
    """

    @property
    def parameters(self) -> list[str]:
        """The parameters the message names, in order."""
        return [match["name"] for match in _PARAMETER.finditer(str(self))]

    def worded(self, flags: Mapping[str, str]) -> str:
        """The message with each parameter that `flags` maps (to "--workers", say) named so:
        `workers` as --workers, `trial=N` as --trial N, `ray=True` as --ray (a flag given
        alone means True); the others as they are."""

        def word(match: re.Match[str]) -> str:
            flag, value = flags.get(match["name"]), match["value"]
            if flag is None:
                return match[0]
            return flag if value in (None, "True") else f"{flag} {value}"

        return _PARAMETER.sub(word, str(self))


# The user errors of the layers below `studies`.
LOWER_USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DataUnavailableError,
    SpaceError,
    WeightsError,
)


_AS_USER_ERROR: dict[type[Exception], type[Exception]] = {}


def _as_user_error(cls: type[Exception]) -> type[Exception]:
    """`cls` with `UserError` as a second base: `except ConfigError` and `except UserError`
    both still catch it, and it prints under its own name."""
    if cls not in _AS_USER_ERROR:
        _AS_USER_ERROR[cls] = type(cls.__name__, (cls, UserError), {"__module__": cls.__module__})
    return _AS_USER_ERROR[cls]


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Makes every user error that `func` raises an instance of `UserError` (see there)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except LOWER_USER_ERRORS as exc:
            if not isinstance(exc, UserError):
                exc.__class__ = _as_user_error(type(exc))
            raise

    return wrapper


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of `known`, or "" when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


__all__ = [
    "LOWER_USER_ERRORS",
    "ParameterError",
    "StudyError",
    "UserError",
    "did_you_mean",
    "user_errors",
]
