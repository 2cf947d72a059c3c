"""Coverage-guided fuzzing of the capture reader with atheris (libFuzzer), where it installs.

`python -m tests.fuzz.coverage --seconds 60` instruments `auditor.capture` and feeds libFuzzer's
inputs, starting from the fixtures (and the structural mutators' output) as a corpus, to
`read_packets` and `build_flows`. A CaptureError is a refusal and fine; any other exception is a
crash libFuzzer reports with the input that caused it (saved as crash-*).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import warnings
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.coverage", description=__doc__)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args, rest = ap.parse_known_args(argv)
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install 'auditor[fuzz]'): skipped", file=sys.stderr)
        return 0
    with atheris.instrument_imports(include=["auditor"]):
        from auditor.capture.packets import read_packets
        from auditor.flows.build import build_flows
    from auditor.errors import CaptureError
    from tests.fuzz.mutators import FIXTURES, KINDS, fixture_bytes

    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="auditor-atheris-"))
    corpus = tmp / "corpus"
    corpus.mkdir()
    for i, path in enumerate(p for p in FIXTURES if p.stat().st_size < 20_000):
        (corpus / f"fixture{i}").write_bytes(fixture_bytes(path))
    rng = random.Random(args.seed)
    for name in ("ng_interface_options", "ng_packet_lengths", "netmon_frames", "pcap_variants",
                 "ipv6_header", "icmp_quotes", "vlan_stack"):
        for k in range(3):
            (corpus / f"{name}{k}").write_bytes(KINDS[name](rng)[0])
    case = tmp / "case.pcap"

    def one_input(data: bytes) -> None:
        case.write_bytes(data)
        try:
            build_flows(read_packets([case]))
        except CaptureError:
            pass

    atheris.Setup([sys.argv[0], f"-max_total_time={args.seconds}", f"-seed={args.seed + 1}",
                   "-rss_limit_mb=3072", "-timeout=20", f"-artifact_prefix={tmp}/", *rest,
                   str(corpus)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
