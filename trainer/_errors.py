"""The errors a caller acts on: a config that cannot run, data that cannot be trained on."""

from __future__ import annotations

from trainer._mnist import DataUnavailableError


class ConfigError(ValueError):
    """A configuration that cannot run; the message lists every problem found."""

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid training config{where}:\n  - " + "\n  - ".join(problems))


class BadDataError(DataUnavailableError):
    """Data that was read but cannot be trained on; the message names the file, the array or
    column, how many values are wrong and where the first one is."""


class WeightsError(ValueError):
    """Stored weights that cannot be used: a file that is not a state dict, or one that does not
    fit the network; the message names the file and the entries that do not fit."""
