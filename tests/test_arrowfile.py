"""The observation cache's table files (engine/arrowfile.py): a frame comes back exactly as it was
written, dtypes included, and a file changed since it was written is refused."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from auditor.engine import arrowfile


def mixed_frame() -> pd.DataFrame:
    frame = pd.DataFrame({
        "src_ip": pd.array(["198.18.0.1", "198.18.0.2", None, "198.18.0.1"], dtype="str"),
        "src_port": np.array([135, 49152, 0, 65535], np.uint16),
        "first_seen": pd.to_datetime([1, 2, 3, 4], unit="s", utc=True),
        "icmp_type": pd.array([3, None, None, 11], dtype="Int64"),
        "more_fragments": np.array([True, False, False, True]),
        "kind": pd.Categorical(["a", "b", "a", "b"]),
    })
    # text built in pieces: its Arrow column has several chunks
    return frame.assign(name=pd.concat([pd.Series(["x", "y"], dtype="str"),
                                        pd.Series(["z", None], dtype="str")], ignore_index=True))


def test_a_frame_comes_back_with_its_values_and_dtypes(tmp_path):
    frame = mixed_frame()
    check = arrowfile.write_frame(frame, tmp_path / "t.arrow")
    got = arrowfile.read_frame(tmp_path / "t.arrow", check)
    pd.testing.assert_frame_equal(got, frame)
    assert got["kind"].dtype == "category" and got["icmp_type"].dtype == "Int64"


def test_an_empty_frame_keeps_its_columns(tmp_path):
    frame = mixed_frame().drop(columns="kind").iloc[:0]
    check = arrowfile.write_frame(frame, tmp_path / "t.arrow")
    got = arrowfile.read_frame(tmp_path / "t.arrow", check)
    pd.testing.assert_frame_equal(got, frame)


def test_a_flipped_byte_of_the_same_size_is_refused(tmp_path):
    frame = mixed_frame()
    path = tmp_path / "t.arrow"
    check = arrowfile.write_frame(frame, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        arrowfile.read_frame(path, check)


@pytest.mark.parametrize("damage", [b"", b"not an arrow file"])
def test_a_truncated_or_foreign_file_is_refused(tmp_path, damage):
    path = tmp_path / "t.arrow"
    check = arrowfile.write_frame(mixed_frame(), path)
    path.write_bytes(damage)
    with pytest.raises(ValueError):
        arrowfile.read_frame(path, check)
    # a file that matches its record but is not Arrow at all
    with pytest.raises(ValueError):
        arrowfile.read_frame(path, {"size": len(damage), "crc32": zlib.crc32(damage)})


def test_a_frame_read_back_does_not_depend_on_its_file(tmp_path):
    """Read into memory, not mapped: truncating or removing the file under a frame in use (an
    eviction, an outside tool) cannot crash the run (a cut-off mapped page is a SIGBUS)."""
    frame = pd.DataFrame({"n": np.arange(200_000, dtype=np.int64),
                          "ip": pd.array([f"198.18.{i % 250}.{i % 7}" for i in range(200_000)],
                                         dtype="str")})
    path = tmp_path / "t.arrow"
    check = arrowfile.write_frame(frame, path)
    got = arrowfile.read_frame(path, check)
    with open(path, "r+b") as fh:
        fh.truncate(0)
    path.unlink()
    assert int(got["n"].sum()) == int(frame["n"].sum())
    assert got["ip"].iloc[-1] == frame["ip"].iloc[-1]


def test_tables_are_stored_compressed(tmp_path):
    frame = pd.DataFrame({"src_ip": pd.array(["198.18.1.21"] * 50_000, dtype="str"),
                          "dst_port": np.full(50_000, 135, np.uint16)})
    check = arrowfile.write_frame(frame, tmp_path / "t.arrow")
    assert check["size"] < frame.memory_usage(deep=True).sum() / 10
    pd.testing.assert_frame_equal(arrowfile.read_frame(tmp_path / "t.arrow", check), frame)


def test_a_file_grown_since_it_was_written_is_refused(tmp_path):
    path = tmp_path / "t.arrow"
    check = arrowfile.write_frame(mixed_frame(), path)
    with open(path, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ValueError, match="size or CRC"):
        arrowfile.read_frame(path, check)


def test_an_empty_frame_of_a_file_has_its_columns_and_dtypes(tmp_path):
    frame = mixed_frame().drop(columns="kind")  # (a categorical's categories are not kept)
    arrowfile.write_frame(frame, tmp_path / "t.arrow")
    pd.testing.assert_frame_equal(arrowfile.read_empty(tmp_path / "t.arrow"), frame.iloc[:0])
    (tmp_path / "t.arrow").write_bytes(b"not an arrow file")
    with pytest.raises(ValueError):
        arrowfile.read_empty(tmp_path / "t.arrow")


@pytest.mark.parametrize("rows", [1, 3])
def test_a_frame_written_in_batches_comes_back_whole(tmp_path, monkeypatch, rows):
    """write_frame converts BATCH_ROWS rows at a time: several batches (text in several
    chunks, a categorical's dictionary in every batch) read back as the one frame written."""
    monkeypatch.setattr(arrowfile, "BATCH_ROWS", rows)
    frame = pd.concat([mixed_frame()] * 3, ignore_index=True)
    check = arrowfile.write_frame(frame, tmp_path / "t.arrow")
    import pyarrow as pa

    with pa.OSFile(str(tmp_path / "t.arrow")) as fh:
        # at least one batch per BATCH_ROWS (a chunk boundary of a text column cuts one more)
        assert pa.ipc.open_file(fh).num_record_batches >= -(-len(frame) // rows)
    pd.testing.assert_frame_equal(arrowfile.read_frame(tmp_path / "t.arrow", check), frame)
