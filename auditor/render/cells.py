"""Text cells made inert for spreadsheets and terminals (CSV, xlsx and reports share this)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# A cell starting with one of these is run as a formula by spreadsheet programs (OWASP CSV
# injection); names come from captures, so they are attacker-controlled.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# C0/C1 control characters but tab and newlines: terminal escape sequences in a cell
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"

# per UTF-8 byte: may it start a formula / be (part of) a control character? C1 controls
# (U+0080-U+009F) are 0xC2 0x80-0x9F in UTF-8: any 0xC2 sends the column to the exact check.
_STARTS = np.zeros(256, bool)
_STARTS[np.frombuffer("".join(FORMULA_START).encode(), np.uint8)] = True
_CONTROLS = np.zeros(256, bool)
_CONTROLS[[*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xC2]] = True


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells made inert for spreadsheets and terminals (a new frame if any changed).

    A cell a spreadsheet would run as a formula gets a quote in front (as the reports do), and
    control characters (terminal escape sequences) are shown as \\xNN. Arrow-backed text
    columns are first scanned in their buffers (first bytes, control bytes): only a column
    that may hold such a cell goes through the cell-by-cell check.
    """
    from auditor.render.text import controls_escaped

    out = None
    for col in frame.columns:
        values = frame[col]
        if values.dtype != object and not isinstance(values.dtype, pd.StringDtype):
            continue
        if _clean_arrow_text(values):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_START).fillna(False).to_numpy(bool)
        controls = text.str.contains(CONTROL, regex=True).fillna(False).to_numpy(bool)
        if risky.any() or controls.any():
            out = frame.copy() if out is None else out
            fixed = values.astype(object).copy()
            for i in np.flatnonzero(risky | controls):
                cell = controls_escaped(str(fixed.iat[i]))
                fixed.iat[i] = "'" + cell if risky[i] else cell
            out[col] = fixed.astype(values.dtype)
    return frame if out is None else out


def _clean_arrow_text(values: pd.Series) -> bool:
    """True when an Arrow-backed text column surely has no cell starting like a formula and no
    control character (False: it may, or it is not Arrow-backed; check each cell)."""
    dtype = values.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return False
    import pyarrow as pa

    arr = pa.array(values.array)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for chunk in chunks:
        if pa.types.is_string(chunk.type):
            width = np.int32
        elif pa.types.is_large_string(chunk.type):
            width = np.int64
        else:
            return False
        _, off_buf, data_buf = chunk.buffers()
        if off_buf is None or len(chunk) == 0:
            continue
        offsets = np.frombuffer(off_buf, width)[chunk.offset: chunk.offset + len(chunk) + 1]
        if data_buf is None or offsets[-1] == offsets[0]:
            continue  # every cell empty
        data = np.frombuffer(data_buf, np.uint8)[offsets[0]: offsets[-1]]
        starts = offsets[:-1][offsets[1:] > offsets[:-1]] - offsets[0]
        if _STARTS[data[starts]].any():
            return False
        if (data.min() < 0x20 or data.max() >= 0x7F) and _CONTROLS[data].any():
            return False
    return True
