"""PostgreSQL binary COPY payloads built from NumPy arrays, without a Python loop per row.

The binary format is a header, then per tuple a field count (int16) and per field a
length (int32, -1 for NULL) followed by the value in network byte order, then a trailer.
Fixed-width columns make every tuple of one NULL pattern the same size, so each pattern
is one NumPy structured array; nullable float columns use NaN for NULL.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_NUMPY_TYPE = {"int4": ">i4", "int8": ">i8", "float8": ">f8"}


@dataclass(frozen=True)
class Field:
    """One column: `kind` is int4, int8, float8 or text; a text value is one constant."""

    kind: str
    values: npt.NDArray[np.generic] | str
    nullable: bool = False  # float8 only: NaN is written as NULL


def payload(rows: int, fields: Sequence[Field]) -> bytes:
    null_masks = [
        np.isnan(np.asarray(f.values, dtype=np.float64)) if f.nullable else None for f in fields
    ]
    pattern = np.zeros(rows, dtype=np.int64)
    for bit, mask in enumerate(null_masks):
        if mask is not None:
            pattern |= mask.astype(np.int64) << bit
    parts = [HEADER]
    for code in np.unique(pattern):
        selected = pattern == code
        parts.append(_tuples(int(selected.sum()), fields, selected, int(code)))
    parts.append(TRAILER)
    return b"".join(parts)


def _tuples(
    count: int, fields: Sequence[Field], selected: npt.NDArray[np.bool_], code: int
) -> bytes:
    layout: list[tuple[str, str]] = [("n", ">i2")]
    for index, field in enumerate(fields):
        layout.append((f"l{index}", ">i4"))
        if code >> index & 1:
            continue  # NULL: length -1, no data
        if isinstance(field.values, str):
            layout.append((f"v{index}", f"S{len(field.values.encode())}"))
        else:
            layout.append((f"v{index}", _NUMPY_TYPE[field.kind]))
    rows = np.empty(count, dtype=np.dtype(layout))
    rows["n"] = len(fields)
    for index, field in enumerate(fields):
        if code >> index & 1:
            rows[f"l{index}"] = -1
        elif isinstance(field.values, str):
            data = field.values.encode()
            rows[f"l{index}"] = len(data)
            rows[f"v{index}"] = data
        else:
            rows[f"l{index}"] = np.dtype(_NUMPY_TYPE[field.kind]).itemsize
            rows[f"v{index}"] = np.asarray(field.values)[selected]
    return rows.tobytes()
