"""Text columns of the flow table as Arrow arrays, never a Python string per flow.

A flow table of a big capture has a few hundred thousand rows and seven text columns. Each is
a small vocabulary (protocol names, states, capture names, distinct addresses) taken by integer
codes, or hex digits written straight into an Arrow buffer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

# "%02x" of every byte value, as two ASCII digits in one uint16
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), np.uint16)


def _utf8_text(word: str) -> str:
    """word, with each byte that is not UTF-8 (a file or archive member name's, which Python
    keeps as a surrogate) written as an escape."""
    try:
        return word.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return word.encode("utf-8", "backslashreplace").decode("utf-8")


def _arrow_words(vocabulary) -> pa.Array:
    words = list(vocabulary)
    try:
        return pa.array(words, pa.string())
    except UnicodeEncodeError:  # rare: only then is each word looked at
        return pa.array([_utf8_text(w) for w in words], pa.string())


def taken(vocabulary, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """vocabulary[codes] as a pandas "str" array (Arrow-backed), copying bytes, not objects."""
    words = vocabulary if isinstance(vocabulary, pa.Array) else _arrow_words(vocabulary)
    return pd.array(words.take(pa.array(np.asarray(codes, np.int64))), dtype="str")


def hex_prefix(b: np.ndarray, length: np.ndarray, kept: int) -> pd.api.extensions.ExtensionArray:
    """Each row's first min(length, kept) bytes of the (n, kept) matrix `b` as lower-case hex
    ('' when none), as one Arrow string array."""
    n = len(b)
    nbytes = np.clip(np.asarray(length, np.int64), 0, kept)
    b = np.asarray(b, np.uint8).reshape(n, kept)
    # the bytes each row keeps, row by row, then two hex digits each
    data = _HEX_PAIRS[b[np.arange(kept) < nbytes[:, None]]].view(np.uint8)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(nbytes * 2, out=offsets[1:])
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pd.array(arr.cast(pa.string()) if len(data) < 1 << 31 else arr, dtype="str")
