"""Worker results come back through a shared-memory file: equal, writable, and never left behind."""

import os

import numpy as np
import pandas as pd

from auditor.engine import shipping
from auditor.engine.fileread import read_file_partial
from auditor.engine.shipping import discard, pack, ship, unship


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"a": rng.integers(0, 1 << 60, n, dtype=np.uint64),
                         "b": rng.integers(0, 9, n).astype(np.int8),
                         "c": rng.random(n), "d": rng.integers(0, 9, n).astype(bool),
                         "e": np.array([f"x{i % 7}" for i in range(n)], dtype=object)})


def test_a_big_result_comes_back_equal_through_a_file_that_is_then_gone():
    frame = _frame(300_000)
    shipped = pack({"frame": frame, "n": 7})
    assert shipped.path is not None and os.path.exists(shipped.path)
    assert len(shipped.head) < 3_000_000  # the numeric columns travel out of band
    got = unship(shipped)
    assert not os.path.exists(shipped.path)
    pd.testing.assert_frame_equal(got["frame"], frame)
    assert got["n"] == 7
    col = got["frame"]["a"].to_numpy()
    assert col.ctypes.data % 4096 == 0  # each buffer mapped on its own pages


def test_the_mapped_arrays_are_writable_copies():
    arr = np.arange(1_000_000, dtype=np.int64)
    got = unship(pack(arr))
    assert got.flags.writeable
    got[0] = -1  # copy-on-write pages: the write stays in this array
    assert got[0] == -1 and arr[0] == 0
    np.testing.assert_array_equal(got[1:], arr[1:])


def test_a_small_result_goes_in_band():
    shipped = pack(_frame(100))
    assert shipped.path is None
    pd.testing.assert_frame_equal(unship(shipped), _frame(100))


def test_discard_removes_a_result_never_taken():
    shipped = pack(_frame(300_000))
    discard(shipped)
    assert not os.path.exists(shipped.path)
    discard(shipped)  # twice: nothing to do


def test_a_read_file_partial_survives_the_trip(tmp_path, monkeypatch):
    from pathlib import Path

    pcap = Path(__file__).parent.parent / "fixtures" / "pcaps"
    capture = sorted(pcap.rglob("*.pcap"))[0]
    monkeypatch.setattr(shipping, "MIN_BYTES", 0)  # a small fixture: through the file anyway
    direct = read_file_partial(str(capture))
    back = unship(ship(read_file_partial, str(capture)))
    pd.testing.assert_frame_equal(back.parts, direct.parts)
    pd.testing.assert_frame_equal(back.candidates, direct.candidates)
    assert back.info == direct.info
