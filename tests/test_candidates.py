"""The candidate rules keep the same rows however the rows and pairs come to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor.engine import candidates, fileread
from auditor.engine.run import stream_flows
from auditor.flows.partial import CERTAIN
from auditor.options import EngineOptions, RpcOptions

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot" / "pilot.pcapng"
V4 = 0xFFFF << 32


@pytest.mark.filterwarnings("ignore::auditor.CaptureWarning")
def test_kept_candidates_do_not_depend_on_how_the_rows_come(monkeypatch):
    calls = []
    real = candidates.chunk_candidates

    def spy(cols, pay, pid, part, parts, options, seen, names):
        rows = pd.DataFrame({c: cols[c][pay] for c in names})
        rows["pid"], rows["part"] = pid[pay], part[pay]
        calls.append((rows, parts, options))
        got = real(cols, pay, pid, part, parts, options, None, names)
        # a chunk's arrays give what its frame of every payload row gives
        pd.testing.assert_frame_equal(got, candidates.keep_candidates(rows, parts, options))
        return real(cols, pay, pid, part, parts, options, seen, names)

    monkeypatch.setattr(fileread, "chunk_candidates", spy)
    stream_flows([PILOT], engine=EngineOptions(workers=1, chunk_bytes=1 << 16))
    assert len(calls) > 3
    for i, (rows, parts, options) in enumerate(calls):
        want = candidates.keep_candidates(rows, parts, options)
        shuffled = rows.sample(frac=1, random_state=i).reset_index(drop=True)
        got = candidates.keep_candidates(shuffled, parts, options)
        pd.testing.assert_frame_equal(got, want)
        key = want[["part", "pid"]].to_numpy()
        assert (np.diff(key[:, 0]) >= 0).all()  # sorted by (part, pid)
    assert sum(len(candidates.keep_candidates(r, p, o)) for r, p, o in calls) < sum(
        len(r) for r, _, _ in calls)  # the rules do drop rows


def _tls_syns(pairs: list[tuple[tuple[int, int], tuple[int, int], int]]) -> pd.DataFrame:
    """Partials of TLS connections opened with a SYN: ((client hi, lo), (server hi, lo), start)."""
    return pd.DataFrame({
        "kind": np.full(len(pairs), CERTAIN, np.int8), "proto_num": np.full(len(pairs), 6, np.uint8),
        "syn_dir": np.zeros(len(pairs), np.int8),
        "a_port": np.full(len(pairs), 50000, np.uint16), "b_port": np.full(len(pairs), 443, np.uint16),
        "a_hi": np.array([c[0] for c, _, _ in pairs], np.uint64),
        "a_lo": np.array([c[1] for c, _, _ in pairs], np.uint64),
        "b_hi": np.array([s[0] for _, s, _ in pairs], np.uint64),
        "b_lo": np.array([s[1] for _, s, _ in pairs], np.uint64),
        "first_ns": np.array([t for _, _, t in pairs], np.int64),
    })


@pytest.mark.parametrize("name_flows, want", [(100, [False, True, False, True]),
                                               (1, [False, False, False, False])])
def test_pair_firsts_carry_ipv4_pairs_seen_before_into_a_chunk_with_ipv6(name_flows, want):
    client, server = (0, V4 | 0xC6120001), (0, V4 | 0xC6120002)
    client6, server6 = (0x20010DB800000000, 1), (0x20010DB800000000, 2)
    seen: dict = {}
    options = RpcOptions(name_flows=name_flows)
    first = candidates._pair_firsts(_tls_syns([(client, server, 1)]), options, seen)
    assert first.tolist() == [True]
    later = _tls_syns([(client, server, 5), (client6, server6, 6), (client, server, 7),
                       (server, client, 8)])
    # a later flow of a pair seen before is never its first; a new pair is, unless
    # name_flows pairs began before it
    assert candidates._pair_firsts(later, options, seen).tolist() == want
