"""Property-based (hypothesis) checks of the pcapng and NetMon decoders: any option list, any
packet-block field, any frame-table entry reads or is refused with a CaptureError naming the file."""

from __future__ import annotations

import atexit
import random
import shutil
import tempfile
import warnings
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor import CaptureError, build_flows, read_packets
from tests.fuzz import capbuild as cb

U32 = st.integers(0, 2**32 - 1)
OPTIONS = st.lists(st.tuples(st.sampled_from((0, 1, 2, 9, 13, 14, 0x8000, 0xFFFF)),
                             st.binary(max_size=12), st.one_of(st.none(), st.integers(0, 0xFFFF))),
                   max_size=6)
_TMP = Path(tempfile.mkdtemp(prefix="auditor-hypothesis-"))
atexit.register(shutil.rmtree, _TMP, True)  # every run left one folder in /tmp


def _reads_or_refuses(data: bytes, suffix: str) -> None:
    path = _TMP / f"case{suffix}"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skipped parts warn by design
            build_flows(read_packets([path]))
    except CaptureError as exc:
        assert path.name in str(exc) and "\n" not in str(exc)


@settings(max_examples=80, derandomize=True, deadline=None, database=None)
@given(options=OPTIONS, ts=st.integers(0, 2**64 - 1), caplen=st.one_of(st.none(), U32),
       iface=st.integers(0, 3), order=st.sampled_from("<>"))
def test_any_interface_options_and_packet_fields_read_or_refuse(options, ts, caplen, iface,
                                                                 order):
    opts = b"".join(cb.ng_option(code, value, length, order) for code, value, length in options)
    pk = cb.sample_packets(random.Random(len(options)), 3)
    cap = cb.pcapng_of(pk, idb_options=opts, ifaces=2, o=order)
    cap.blocks[3] = cb.epb(pk[0], iface=iface, ts=ts, caplen=caplen, o=order)
    _reads_or_refuses(cap.encode(), ".pcapng")


@settings(max_examples=50, derandomize=True, deadline=None, database=None)
@given(table=st.lists(U32, max_size=8), minor=st.integers(0, 5), caplen=st.one_of(st.none(), U32),
       media=st.integers(0, 0xFFFF))
def test_any_netmon_frame_table_reads_or_refuses(table, minor, caplen, media):
    pk = cb.sample_packets(random.Random(minor), 3)
    cap = cb.netmon_of(pk, minor=minor)
    cap.frames[0].caplen, cap.frames[1].media = caplen, media
    if table:
        cap.table = table
    _reads_or_refuses(cap.encode(), ".cap")
