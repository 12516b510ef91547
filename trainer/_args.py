"""`ModelArgs`: the keyword arguments of a model factory, as a frozen, hashable mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# Names the trainer itself passes to a factory; model_args may not set them.
RESERVED_ARGS = ("input_shape", "num_classes", "dropout", "batch_norm", "activation")


class ModelArgs(Mapping[str, Any]):
    """A read-only table of TOML scalars and lists of them; lists are kept as tuples.

    It compares equal to a dict with the same items and hashes, so a `TrainConfig` holding it
    stays frozen and hashable.

    Raises:
        TypeError: a key that is not a string, or a value that is not a scalar or a list of
            scalars.
    """

    __slots__ = ("_items",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        items: dict[str, Any] = {}
        for key, value in (values or {}).items():
            if not isinstance(key, str):
                raise TypeError(f"model_args keys must be strings, got {key!r}")
            items[key] = _frozen(key, value)
        self._items = items

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[type[ModelArgs], tuple[dict[str, Any]]]:
        return ModelArgs, (self._items,)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, tuples as lists (TOML/JSON-ready)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._items.items()}


def _frozen(key: str, value: Any) -> Any:
    if _is_scalar(value):
        return value
    if isinstance(value, list | tuple) and all(_is_scalar(v) for v in value):
        return tuple(value)
    raise TypeError(
        f"model_args.{key} must be a string, number, boolean or a list of them, got {value!r}"
    )


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)  # bool is an int
