"""Frames as CSV: ISO-8601 UTC times, inert text cells, one pass of pyarrow's writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from auditor.render.cells import formula_safe

_DAY_US = 86_400_000_000


def csv_table(frame: pd.DataFrame) -> pa.Table:
    """The Arrow table that `write_csv` writes: times as ISO text, text cells made inert."""
    return pa.Table.from_pandas(formula_safe(iso_times(frame)), preserve_index=False)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as CSV (UTF-8, a header line, text quoted) in memory."""
    return piece_csv(frame, header=True)


def write_csv(frame: pd.DataFrame, path) -> None:
    """A frame as CSV into a file."""
    pa_csv.write_csv(csv_table(frame), str(path))


def piece_csv(frame: pd.DataFrame, header: bool) -> bytes:
    """One piece of a table as CSV bytes, with the header line or without: the pieces of a
    table written one after the other are the bytes `write_csv` gives for the whole table."""
    return piece_buffer(frame, header).to_pybytes()


def piece_buffer(frame: pd.DataFrame, header: bool) -> pa.Buffer:
    """`piece_csv`'s bytes in the Arrow buffer its writer made them in (no copy)."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(csv_table(frame), sink, pa_csv.WriteOptions(include_header=header))
    return sink.getvalue()


def write_csv_pieces(table, out) -> None:
    """A table in pieces (flows/pieces.py FlowPieces) as one CSV into a binary file object:
    each piece's bytes made on every core (in threads: Arrow writes them), written here in
    order from the buffers Arrow made them in (a copy of each as Python bytes cost a memcpy of
    the whole CSV and held every piece in flight twice)."""
    for data in table.mapped(piece_buffer, threads=True):
        out.write(memoryview(data))
        del data


def iso_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Datetime columns as ISO-8601 UTC text with microseconds ('2024-01-31T09:30:00.000000Z')."""
    out = frame.copy(deep=False)  # new columns replace, never write into, the caller's
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            values = out[col].dt.tz_convert(None).to_numpy()
            out[col] = pd.array(iso_text(values), dtype="str")
    return out


def iso_text(values: np.ndarray) -> pa.Array:
    """datetime64 values as np.datetime_as_string(unit="us", timezone="UTC") gives them, as
    one Arrow string array: no Python string per cell.

    Each cell is three looked-up pieces: its day ('YYYY-MM-DD', from the few days a capture
    spans), its second of the day ('THH:MM:SS.') and its microseconds (two groups of three).
    """
    values = np.asarray(values, "datetime64[ns]")
    ns = values.view(np.int64)
    n = len(ns)
    if not n or ns.min() < 0:  # NaT or before 1970: numpy's formatter knows those
        return pa.array(np.datetime_as_string(values, unit="us", timezone="UTC"))
    days, of_day = np.divmod(ns // 1000, _DAY_US)
    first = int(days.min())
    span = int(days.max()) - first + 1
    if span > n:  # days spread wider than the cells: format each cell's own day
        span, day_of = None, np.arange(n)
    else:
        day_of = days - first
    dates = _dates(first, span, days).view("S10").ravel()
    secs, micro = np.divmod(of_day, 1_000_000)
    cells = np.empty(n, _CELL)  # one 27-byte record per cell, filled field by field
    cells["date"] = dates[day_of]
    cells["clock"] = _clock().view("S10").ravel()[secs]
    cells["ms"] = _THREE.view("S3").ravel()[micro // 1000]
    cells["us"] = _THREE.view("S3").ravel()[micro % 1000]
    cells["z"] = b"Z"
    text = cells.view(np.uint8)
    offsets = np.arange(0, 27 * (n + 1), 27, dtype=np.int64)
    if offsets[-1] < 1 << 31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)),
                                           pa.py_buffer(text))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(len(values), width) ASCII decimal digits of non-negative integers, zero-padded."""
    out = np.empty((len(values), width), np.uint8)
    values = np.asarray(values, np.int64)
    for k in range(width - 1, -1, -1):
        out[:, k] = 48 + values % 10
        values = values // 10
    return out


def _dates(first: int, span: int | None, days: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD' of days first .. first + span - 1 (span None: of each of `days`)."""
    year, month, day = _civil(np.arange(first, first + span) if span is not None else days)
    dash = np.full((len(year), 1), ord("-"), np.uint8)
    return np.hstack([_digits(year, 4), dash, _digits(month, 2), dash, _digits(day, 2)])


_THREE = _digits(np.arange(1000), 3)
_CELL = np.dtype([("date", "S10"), ("clock", "S10"), ("ms", "S3"), ("us", "S3"), ("z", "S1")])
_CLOCK: list[np.ndarray] = []


def _clock() -> np.ndarray:
    """'THH:MM:SS.' of every second of a day (86400 rows), built on first use."""
    if not _CLOCK:
        s = np.arange(86_400)
        t = np.full((86_400, 1), ord("T"), np.uint8)
        colon = np.full((86_400, 1), ord(":"), np.uint8)
        dot = np.full((86_400, 1), ord("."), np.uint8)
        _CLOCK.append(np.hstack([t, _digits(s // 3600, 2), colon, _digits(s // 60 % 60, 2),
                                 colon, _digits(s % 60, 2), dot]))
    return _CLOCK[0]


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's
    civil_from_days, for days >= 0)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day
