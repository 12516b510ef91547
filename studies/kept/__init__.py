"""A script's or notebook's own model factory and data, kept with the study.

`studies.run(spec, model=build, data=(x, y))` needs no file: the function is pickled by value
(cloudpickle) and the arrays saved as an .npz (`_pack`), and each is kept as an artifact of
the study's database (`_keep`), which every worker reaches already. The layer sits on
`storage` (it writes artifacts there) and below `workers` (which restore what a spec keeps
before their first trial) and `results` (a retrain of an export).

Loading a kept function runs code: open only studies whose database you trust.
"""

from __future__ import annotations

from studies.kept._keep import (
    keep_inline,
    name_kept,
    read_kept,
    restore_for_export,
    restore_kept,
)
from studies.kept._pack import MAX_INLINE_MB, Kept, pack_data, pack_function

__all__ = [
    "MAX_INLINE_MB",
    "Kept",
    "keep_inline",
    "name_kept",
    "pack_data",
    "pack_function",
    "read_kept",
    "restore_for_export",
    "restore_kept",
]
