"""Several files read as one capture: flows continue across file boundaries."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd

from auditor import build_flows, read_packets

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
KEY = ["src_ip", "src_port", "dst_ip", "dst_port", "proto", "src_packets", "dst_packets",
       "src_bytes", "dst_bytes", "state", "end"]


def _view(flows: pd.DataFrame) -> pd.DataFrame:
    return flows[KEY].sort_values(KEY, kind="stable").reset_index(drop=True)


def test_ring_buffer_folder_gives_the_same_flows_as_the_whole_capture():
    whole = build_flows(read_packets([PILOT / "pilot.pcapng"]))
    ring = build_flows(read_packets([PILOT / "ring"]))
    assert len(list((PILOT / "ring").glob("*.pcapng"))) > 1
    pd.testing.assert_frame_equal(_view(ring), _view(whole))
    # a flow that spans two files is reported once, under the file it started in
    assert set(ring["capture"]) > {"pilot_00.pcapng"}


def test_files_given_out_of_order_are_read_in_time_order():
    files = sorted((PILOT / "ring").glob("*.pcapng"), reverse=True)
    pd.testing.assert_frame_equal(_view(build_flows(read_packets(files))),
                                  _view(build_flows(read_packets([PILOT / "pilot.pcapng"]))))


def test_gzip_capture_gives_the_same_flows(tmp_path: Path):
    packed = tmp_path / "pilot.pcapng.gz"
    with open(PILOT / "pilot.pcapng", "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    table = read_packets([packed])
    assert table.files[0].format.endswith("+gzip")
    pd.testing.assert_frame_equal(_view(build_flows(table)),
                                  _view(build_flows(read_packets([PILOT / "pilot.pcapng"]))))
