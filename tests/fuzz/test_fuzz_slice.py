"""A seeded 300-case slice of the fuzz campaign (`make fuzz` runs 10,000+): every case ends in
flows or in one error line naming the file and a byte offset."""

from __future__ import annotations

import warnings

from tests.fuzz.harness import FAILURES, campaign, judge
from tests.fuzz.mutators import KINDS, supported_compressions


def test_fuzz_slice_reads_or_refuses_every_case(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped records warn by design
        camp = campaign(300, seed=0, tmp=tmp_path, limit_s=20.0)
    assert len(camp.results) == 300
    bad = camp.failures()
    assert not bad, "\n".join(f"{r.kind} seed {r.seed}: {r.outcome}: {r.detail}" for r in bad[:10])
    kinds = {r.kind for r in camp.results}
    assert set(KINDS) <= kinds  # every mutation kind ran
    outcomes = {r.outcome for r in camp.results}
    assert outcomes <= {"read", "refused"} and "refused" in outcomes


def test_reader_reads_gzip_at_least():
    assert "gzip" in supported_compressions()


def test_judge_fails_internal_errors_tracebacks_and_messages_without_offset():
    name = "x.pcap"
    assert judge(0, "auditor: warning: x\n", name, None)[0] == "read"
    ok = "auditor: error: /t/x.pcap: corrupt block at byte offset 24 (...)\n"
    assert judge(2, ok, name, None)[0] == "refused"
    assert judge(2, "auditor: error: /t/x.pcap: corrupt\n", name, None)[0] == "bad-message"
    assert judge(2, ok + ok, name, None)[0] == "bad-message"
    assert judge(1, "auditor: internal error: OverflowError: big\n", name, None)[0] in FAILURES
    assert judge(0, "Traceback (most recent call last):\n", name, None)[0] == "traceback"
    assert judge(0, "", name, ValueError("boom"))[0] == "traceback"
