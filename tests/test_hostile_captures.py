"""Seeded mutations of real captures: the reader either reads them or says why in one line.

Bytes flipped and files cut at random (seeded, so failures reproduce) must end in flows or in a
CaptureError, never in another exception.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from auditor import CaptureError, build_flows, read_packets

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ROOT / "fixtures" / "pcaps" / "edge" / "two_interfaces.pcapng",
    ROOT / "fixtures" / "pcaps" / "edge" / "vlan_qinq.pcap",
    ROOT / "fixtures" / "pcaps" / "edge" / "ipv6_ext_headers.pcap",
    ROOT / "fixtures" / "pcaps" / "edge" / "icmp_admin_prohibited.pcap",
    ROOT / "fixtures" / "pcaps" / "rpc" / "epm_fragmented.pcap",
    ROOT / "fixtures" / "pcaps" / "public" / "dcerpc_msnrpc.pcapng",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    if rng.random() < 0.3:
        out = out[: rng.randrange(len(out))]
    return bytes(out)


@pytest.mark.parametrize("seed", range(8))
def test_mutated_captures_give_flows_or_a_capture_error(tmp_path, seed):
    rng = random.Random(seed)
    outcomes = {"read": 0, "refused": 0}
    for i in range(15):
        src = rng.choice(SOURCES)
        path = tmp_path / f"m{i}{src.suffix}"
        path.write_bytes(mutate(src.read_bytes(), rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # skipped parts warn by design
                build_flows(read_packets([path]))
            outcomes["read"] += 1
        except CaptureError as exc:
            assert "\n" not in str(exc) and path.name in str(exc)
            outcomes["refused"] += 1
    assert sum(outcomes.values()) == 15


def test_an_archive_member_whose_name_is_not_utf8_is_read_and_named_escaped(tmp_path):
    # a tar written elsewhere may name a member in Latin-1 (byte 0x9f): Python keeps such bytes
    # as surrogates, which no output can encode; flows come out with the byte as an escape
    import io
    import json
    import tarfile

    from click.testing import CliRunner

    from auditor.cli import cli

    data = SOURCES[3].read_bytes()
    tar = tmp_path / "ring.tar"
    with tarfile.open(tar, "w", encoding="utf-8", errors="surrogateescape") as tf:
        info = tarfile.TarInfo(b"ping\x9f.pcap".decode("utf-8", "surrogateescape"))
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    expected = len(build_flows(read_packets([SOURCES[3]])))
    for fmt in ("csv", "json", "table"):
        res = CliRunner().invoke(cli, ["flows", str(tar), "--format", fmt, "-o",
                                       str(tmp_path / f"out.{fmt}")])
        assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == expected
    assert {r["capture"] for r in rows} == {"ping\\x9f.pcap"}
    assert "ping\\x9f.pcap" in (tmp_path / "out.csv").read_text()
