"""The packets discovery hands to tshark are read at their records' known places in the file,
byte for byte what a walk over the file gives, and a file changed since it was read is caught."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from auditor.capture.packets import write_packets
from auditor.engine.run import stream_flows
from auditor.errors import CaptureError
from auditor.options import EngineOptions

PCAPS = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
PLAIN = [PCAPS / "pilot" / "pilot.pcapng", PCAPS / "public" / "dcerpc.pcap",
         PCAPS / "rpc" / "rpc_scenario_day1.pcap", PCAPS / "edge" / "bigendian.pcap",
         PCAPS / "formats" / "netmon23_mixed.cap"]


def _written(table, rows) -> bytes:
    out = io.BytesIO()
    write_packets(table, rows, out)
    return out.getvalue()


@pytest.mark.filterwarnings("ignore::auditor.errors.CaptureWarning")  # netmon: a media type
@pytest.mark.parametrize("path", PLAIN, ids=lambda p: p.name)
def test_spans_give_the_bytes_a_walk_gives(path):
    table = stream_flows([path], engine=EngineOptions(workers=1)).table
    rows = np.arange(len(table.packets))
    assert len(rows)
    walked = _written(dataclasses.replace(table, spans=None), rows)
    assert _written(table, rows) == walked


@pytest.mark.filterwarnings("ignore::auditor.errors.CaptureWarning")  # the cut zstd tail
def test_a_plain_pcap_has_spans_and_a_compressed_one_has_none():
    plain = stream_flows([PCAPS / "public" / "dcerpc.pcap"],
                         engine=EngineOptions(workers=1)).table
    assert plain.spans is not None and (plain.spans[0] > 0).all()
    packed = stream_flows([PCAPS / "formats" / "truncated_tail.zst"],
                          engine=EngineOptions(workers=1)).table
    assert packed.spans is None
    assert len(_written(packed, np.arange(len(packed.packets)))) > 24  # walked instead


def test_a_file_rewritten_since_the_read_is_walked_and_named(tmp_path):
    path = tmp_path / "day1.pcap"
    shutil.copy(PCAPS / "rpc" / "rpc_scenario_day1.pcap", path)
    table = stream_flows([path], engine=EngineOptions(workers=1)).table
    data = bytearray(path.read_bytes())
    data[24:] = b"\0" * (len(data) - 24)  # same size, every record gone
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match="day1.pcap"):
        _written(table, np.arange(len(table.packets)))
