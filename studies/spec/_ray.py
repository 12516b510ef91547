"""`[study] ray`: run the study's workers as Ray tasks, on this machine or on a cluster.

    ray = true                                   # a local Ray instance
    ray = "auto"                                 # the cluster this machine belongs to
    ray = { address = "ray://head:10001", cpus_per_worker = 1, gpus_per_worker = 0.25 }

The command line's `--ray [ADDRESS]`, `--cpus-per-worker` and `--gpus-per-worker` override it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from studies._errors import ParameterError, did_you_mean

RAY_KEYS = ("address", "cpus_per_worker", "gpus_per_worker")
SHARES = ("cpus_per_worker", "gpus_per_worker")  # also parameters of their own in the API


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """Where and with what share of a node each Ray worker runs."""

    address: str | None = None  # None: start a local Ray instance; "auto", "ray://head:10001"
    cpus_per_worker: float = 1.0  # Ray's num_cpus per task; also its torch thread count
    gpus_per_worker: float = 0.0  # Ray's num_gpus per task; 0.25 packs four on one device

    def to_dict(self) -> dict[str, Any]:
        """The TOML-ready form (`address` left out when local), as `read_ray` reads it."""
        data: dict[str, Any] = {
            "cpus_per_worker": self.cpus_per_worker,
            "gpus_per_worker": self.gpus_per_worker,
        }
        if self.address is not None:
            data["address"] = self.address
        return data

    def replace(self, **changes: Any) -> RaySettings:
        return dataclasses.replace(self, **changes)


def read_ray(value: Any, problems: list[str], *, prefix: str = "study.ray") -> RaySettings | None:
    """The spec's (or the API's) `ray` value as settings; None for no Ray (absent or false).

    Args:
        value: true, false, an address string, or a table with `RAY_KEYS`.
        problems: where a bad value adds its message (naming the key and the fix).
        prefix: the spec's key that holds the value; "" for the API's parameters, named as
            a `ParameterError` names them.
    """
    if value is None or value is False:
        return None
    if value is True:
        return RaySettings()
    if isinstance(value, str):
        return _settings({"address": value}, problems, prefix)
    if isinstance(value, RaySettings):
        return value
    if not isinstance(value, dict):
        problems.append(
            f'{prefix or "`ray`"}: true, an address ("auto", "ray://head:10001") or a table with '
            f"{', '.join(RAY_KEYS)}; got {value!r}"
        )
        return None
    return _settings(value, problems, prefix)


def _settings(table: dict[str, Any], problems: list[str], prefix: str) -> RaySettings | None:
    found: list[str] = []
    for key in table:
        if key not in RAY_KEYS:
            found.append(
                f"{_key(prefix, key)}: unknown key{did_you_mean(str(key), RAY_KEYS)}; "
                f"valid keys: {', '.join(RAY_KEYS)}"
            )
    address = table.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        found.append(
            f'{_key(prefix, "address")}: a Ray address ("auto", "ray://head:10001", '
            f'"10.0.0.1:6379"), or leave it out for a local Ray instance; got {address!r}'
        )
    cpus = table.get("cpus_per_worker", 1.0)
    if not _number(cpus) or cpus <= 0:
        found.append(
            f"{_key(prefix, 'cpus_per_worker')}: CPUs per worker, a number > 0; got {cpus!r}"
        )
    gpus = table.get("gpus_per_worker", 0.0)
    if not _number(gpus) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        found.append(
            f"{_key(prefix, 'gpus_per_worker')}: GPUs per worker, 0 (none), a share of one GPU "
            f"such as 0.25 (four workers per device) or a whole number; got {gpus!r}"
        )
    problems += found
    if found:
        return None
    return RaySettings(
        address=None if address is None else address.strip(),
        cpus_per_worker=float(cpus),
        gpus_per_worker=float(gpus),
    )


def _key(prefix: str, key: str) -> str:
    """`key` of the spec's table at `prefix`, or of the API's `ray` (a share: its parameter)."""
    if prefix:
        return f"{prefix}.{key}"
    return f"`{key}`" if key in SHARES else f"`ray` {key}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ray_settings(
    spec_ray: RaySettings | None,
    ray: Any = None,
    *,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float | None = None,
) -> RaySettings | None:
    """The Ray settings of a run: the spec's, overridden by the command line's or the API's.

    Args:
        spec_ray: the spec's `ray` (None: none).
        ray: None (keep the spec's), True (Ray; a local one unless the spec names an
            address), an address, a table as in the spec, or `RaySettings`.
        cpus_per_worker, gpus_per_worker: override either value.

    Raises:
        ParameterError: for a bad value, or shares given without Ray, naming the fix.
    """
    settings = spec_ray
    if ray is not None and ray is not False:
        problems: list[str] = []
        given = read_ray(ray, problems, prefix="")
        if problems or given is None:
            raise ParameterError("; ".join(problems))
        if spec_ray is not None and ray is True:
            given = spec_ray  # ray=True: the spec's settings, address included
        elif spec_ray is not None and isinstance(ray, str):
            given = spec_ray.replace(address=given.address)  # ray=ADDRESS: the spec's shares
        settings = given
    shares = {"cpus_per_worker": cpus_per_worker, "gpus_per_worker": gpus_per_worker}
    chosen = {key: value for key, value in shares.items() if value is not None}
    if not chosen:
        return settings
    if settings is None:
        named = " and ".join(f"`{key}`" for key in chosen)
        raise ParameterError(
            f"{named}: only for Ray workers; add `ray=True` (or set ray in [study])"
        )
    problems = []
    checked = read_ray({**settings.to_dict(), **chosen}, problems, prefix="")
    if problems or checked is None:
        raise ParameterError("; ".join(problems))
    return checked
