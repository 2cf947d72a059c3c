"""PrestartedTshark: tshark waits on a FIFO, reads what it is fed, and is ended cleanly when not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from auditor.capture.packets import read_packets, write_packets
from auditor.dissect.dcerpc import display_filter_for, dissect_capture
from auditor.dissect.tshark import PrestartedTshark

PUBLIC = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "public"


@pytest.mark.tshark
def test_prestarted_tshark_dissects_what_it_is_fed_like_a_file(tmp_path):
    table = read_packets([PUBLIC / "dcerpc_msnrpc.pcapng"])
    rows = np.arange(len(table.packets))
    with PrestartedTshark(display_filter_for(False), workdir=tmp_path) as tshark:
        with tshark.open_input() as fifo:
            write_packets(table, rows, fifo)
        fed, _ = dissect_capture(tshark, names=False)
    write_packets(table, rows, tmp_path / "same.pcap")
    direct, _ = dissect_capture(tmp_path / "same.pcap", names=False)
    assert sorted(fed.epm["port"].dropna()) == sorted(direct.epm["port"].dropna())
    assert {49676, 49667} <= set(fed.epm["port"].dropna().astype(int))
    assert list(tmp_path.iterdir()) == [tmp_path / "same.pcap"]  # FIFO and output removed


@pytest.mark.tshark
def test_prestarted_tshark_never_fed_is_ended_and_cleaned_up(tmp_path):
    tshark = PrestartedTshark(display_filter_for(True), workdir=tmp_path)
    tshark.close()
    assert tshark._proc.returncode is not None
    assert list(tmp_path.iterdir()) == []


def test_write_packets_clamps_times_a_pcap_cannot_hold(tmp_path):
    import dataclasses

    from auditor.capture.packets import read_packets as read

    table = read([PUBLIC / "dcerpc_msnrpc.pcapng"])
    packets = table.packets.copy()
    packets.loc[0, "ts_ns"] = -5_000_000_000  # a corrupt record: before 1970
    packets.loc[1, "ts_ns"] = (1 << 33) * 1_000_000_000  # past 2106
    odd = dataclasses.replace(table, packets=packets)
    assert write_packets(odd, np.arange(len(packets)), tmp_path / "out.pcap") == len(packets)
    assert len(read([tmp_path / "out.pcap"]).packets) == len(packets)
