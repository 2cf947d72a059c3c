"""A table's columns (`Column`) and frames built to them; the tables themselves are in schema.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, dtype, unit and meaning."""

    name: str
    dtype: str
    unit: str
    description: str
    sep: str = ""  # a text column holding a list joined by this; JSON outputs give an array


def _table(*cols: tuple) -> tuple[Column, ...]:
    return tuple(Column(*c) for c in cols)


def empty_frame(columns: tuple[Column, ...]) -> pd.DataFrame:
    """Return an empty frame with the given columns and dtypes."""
    data = {}
    for col in columns:
        if col.dtype.startswith("datetime64"):
            data[col.name] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif col.dtype in ("str", "object", "Int64", "string"):
            data[col.name] = pd.Series([], dtype=col.dtype)
        else:
            data[col.name] = pd.Series(np.array([], dtype=col.dtype))
    return pd.DataFrame(data)


def typed_frame(data, columns: tuple[Column, ...]) -> pd.DataFrame:
    """Exactly the table's columns with its dtypes, from a frame, a dict of columns or row dicts.

    Datetime columns accept timestamps or integer nanoseconds since the epoch (UTC).
    """
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    if frame.empty:
        return empty_frame(columns)
    out = {}
    for col in columns:
        values = frame[col.name]
        if col.dtype.startswith("datetime64"):
            unit = "ns" if pd.api.types.is_integer_dtype(values) else None
            out[col.name] = pd.to_datetime(values, unit=unit, utc=True)
        else:
            out[col.name] = values.astype(col.dtype)
    return pd.DataFrame(out).reset_index(drop=True)


def column_names(columns: tuple[Column, ...]) -> list[str]:
    """Return the names of a table's columns, in order."""
    return [c.name for c in columns]
