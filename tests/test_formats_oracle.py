"""Real captures converted with the tools users have read exactly like the originals.

Each capture is rewritten by editcap (modified pcap, the other pcap variants, NetMon 2.x, snoop)
or compressed by the zstd, lz4, bzip2 and xz command-line tools. The oracle is twofold: the flow
table must equal the original capture's, and tshark's own conversations on the converted file.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from test_flows_oracle import tshark_conversations

from auditor import FlowOptions, build_flows, read_packets

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "fixtures" / "pcaps" / "public"
CAPTURES = [PUBLIC / "smtp.pcap", PUBLIC / "aduser1.pcap", PUBLIC / "kerberos_tso.pcapng",
            ROOT / "fixtures" / "pcaps" / "edge" / "ipv4_fragments.pcap"]
EDITCAP = ("modpcap", "suse6_3pcap", "rh6_1pcap", "nokiapcap", "netmon2", "snoop", "netmon1")
# more formats only wiretap reads, on two captures: HP-UX nettl and CommView have encapsulations
# pcapng cannot name (converted with -T ether), k12text and the Sniffer formats keep less time
MORE_EDITCAP = ("nettl", "commview-ncf", "k12text", "5views", "lanalyzer", "ngsniffer",
                "ngwsniffer_2_0")
LOSSY_TIMES = ("netmon1", "k12text", "lanalyzer", "ngsniffer", "ngwsniffer_2_0")
COMPRESSORS = {"zstd": ["zstd", "-q", "-c"], "lz4": ["lz4", "-q", "-c"],
               "bzip2": ["bzip2", "-c"], "xz": ["xz", "-c"], "gzip": ["gzip", "-c"]}
WIRETAP_DECOMPRESSES = ("zstd", "lz4", "gzip")  # tshark reads these itself; bzip2 and xz it cannot
NATIVE = {"modpcap": "pcap-modified", "suse6_3pcap": "pcap-ss990915", "rh6_1pcap": "pcap-ss990417",
          "nokiapcap": "pcap-nokia", "netmon2": "netmon2.0"}
IGNORED = ["flow_id", "capture"]


def flows_of(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the conversion path warns by design
        table = read_packets([path])
    flows = build_flows(table, FlowOptions(float("inf"), float("inf")))
    return table, flows.drop(columns=[c for c in IGNORED if c in flows]).reset_index(drop=True)


def ours_as_conversations(flows):
    from collections import Counter

    flows = flows[flows["proto"].isin(["tcp", "udp"])]
    return Counter((r.proto, frozenset({(r.src_ip, int(r.src_port)), (r.dst_ip, int(r.dst_port))}),
                    int(r.src_packets + r.dst_packets), int(r.src_bytes + r.dst_bytes))
                   for r in flows.itertuples(index=False))


def check(original: Path, converted: Path, fmt: str | None = None, *, tshark_reads: Path | None = None,
          lossy_times: bool = False):
    """Flows of `converted` equal the original's and tshark's on `tshark_reads` (default: itself)."""
    _, want = flows_of(original)
    table, got = flows_of(converted)
    if fmt:
        assert table.files[0].format == fmt
    assert len(want) > 0
    if lossy_times:  # e.g. NetMon 1.x keeps milliseconds only
        want, got = (f.drop(columns=["first_seen", "last_seen"]) for f in (want, got))
    assert got.equals(want), f"{converted.name}: flow table differs from {original.name}"
    assert ours_as_conversations(got) == tshark_conversations(tshark_reads or converted)


# pcap variants are made from pcap sources only: a one-interface pcapng converts the same way
CONVERSIONS = [(c, t) for c in CAPTURES for t in EDITCAP
               if not (t.endswith("pcap") and c.suffix == ".pcapng")]


@pytest.mark.tshark
@pytest.mark.parametrize(("capture", "target"), CONVERSIONS,
                         ids=[f"{c.name}-{t}" for c, t in CONVERSIONS])
def test_editcap_conversions_read_like_the_original(tmp_path, capture, target):
    out = tmp_path / f"{capture.stem}.{target}"
    done = subprocess.run(["editcap", "-F", target, str(capture), str(out)], capture_output=True)
    assert done.returncode == 0, done.stderr
    check(capture, out, NATIVE.get(target), lossy_times=target in LOSSY_TIMES)


@pytest.mark.tshark
@pytest.mark.parametrize("target", MORE_EDITCAP)
@pytest.mark.parametrize("capture", CAPTURES[:2], ids=lambda p: p.name)
def test_more_wiretap_formats_read_like_the_original(tmp_path, capture, target):
    out = tmp_path / f"{capture.stem}.{target}"
    subprocess.run(["editcap", "-F", target, str(capture), str(out)], check=True,
                   capture_output=True)
    check(capture, out, f"{target} via editcap", lossy_times=target in LOSSY_TIMES)


@pytest.mark.tshark
@pytest.mark.parametrize("tool", sorted(COMPRESSORS))
@pytest.mark.parametrize("capture", CAPTURES[:3], ids=lambda p: p.name)
def test_compressed_with_the_command_line_tools_reads_like_the_original(tmp_path, capture, tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is required (make test-deps installs it)")
    out = tmp_path / f"{capture.name}.{tool}"
    with open(out, "wb") as fh:
        subprocess.run([*COMPRESSORS[tool], str(capture)], stdout=fh, check=True)
    plain = None
    if tool not in WIRETAP_DECOMPRESSES:  # tshark reads what the tool itself decompresses
        plain = tmp_path / capture.name
        with open(plain, "wb") as fh:
            subprocess.run([tool, "-dc", str(out)], stdout=fh, check=True)
    check(capture, out, f"{'pcapng' if capture.suffix == '.pcapng' else 'pcap'}+{tool}",
          tshark_reads=plain)
