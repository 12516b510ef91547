"""Output files of the results commands: checked before anything slow runs."""

from __future__ import annotations

from pathlib import Path

from studies._errors import StudyError


def check_output(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """The output path, once its suffix is known and its folder exists.

    Raises:
        StudyError: for another suffix or a missing folder.
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise StudyError(
            f"cannot write '{path}': use a name ending in {', '.join(suffixes)}, "
            f"e.g. -o best{suffixes[0]}"
        )
    try:
        if not path.parent.is_dir():
            raise StudyError(f"cannot write '{path}': the folder '{path.parent}' does not exist")
        if path.is_dir():
            raise StudyError(f"cannot write '{path}': it is a folder; give a file name")
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise StudyError(
            f"cannot write '{path}': {exc.strerror or exc}; choose a path you can write to"
        ) from None
    return path
