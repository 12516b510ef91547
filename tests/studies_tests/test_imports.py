"""The package's public names, and the direction of imports (studies -> search_space, trainer)."""

from __future__ import annotations

import pytest

import studies


@pytest.mark.parametrize("name", sorted(studies.__all__))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(studies, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = studies.nothing_here
