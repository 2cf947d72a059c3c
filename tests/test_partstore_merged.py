"""A store fed ranges already merged among themselves (`add(..., merged=True)`, as the joins of
byte ranges and of a set's files do) gives the flows of the whole table: conversations shared by
many ranges, port reuse at a range's edge, and key hashes that collide."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditor.engine import fileread, partstore


def _merged_ranges(seed: int, ranges: int):
    """Random traffic (few ports: every conversation in most ranges, SYN/FIN/RST reusing ports)
    cut into `ranges` pieces, each folded and merged on its own; and the packet table."""
    from packet_factory import random_traffic, table

    from auditor.flows.partial import fold_chunk, merge_partials
    from auditor.options import FlowOptions
    from auditor.schema import PACKET_COLUMNS, column_names

    rng = np.random.default_rng(seed)
    flags = [0x02, 0x12, 0x10, 0x11, 0x04, 0x14, 0]
    tab = table(random_traffic(rng, 500, 4, [1025, 1026, 135, 80], [6, 6, 6, 17], flags,
                               seq=True))
    options = FlowOptions(tcp_idle_timeout_s=5, udp_idle_timeout_s=3)
    pk = tab.packets[column_names(PACKET_COLUMNS)]
    cuts = [0, *sorted(rng.choice(np.arange(1, len(pk)), ranges - 1, replace=False)), len(pk)]
    out = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = pk.iloc[lo:hi]
        parts, _ = fold_chunk({c: chunk[c].to_numpy() for c in chunk.columns},
                              np.arange(lo, hi, dtype=np.int64), options)
        out.append(merge_partials(parts, options)[0])
    return out, tab, options


def _flows_of_store(ranges, tab, options, rpc):
    from auditor.flows.partial import finish_flows, merge_partials

    store = partstore.PartialStore(options, rpc)
    for parts in ranges:
        store.add(parts, fileread.empty_candidates(), merged=True)
        assert store.rows == sum(seg.live for seg in store.segments)
    parts, _ = store.finish()
    # the very partials one merge of every range gives (not only the same flows)
    want = merge_partials(pd.concat(ranges, ignore_index=True), options)[0]
    pd.testing.assert_frame_equal(parts, want, check_dtype=False)
    return finish_flows(parts, tab.files, options, merged=True)[0]


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
@pytest.mark.parametrize("candidates", [False, True])
@pytest.mark.parametrize("collide", [False, True])
def test_merged_ranges_sharing_conversations_give_the_flows_of_the_whole_table(
        seed, candidates, collide, monkeypatch):
    from auditor import build_flows
    from auditor.options import RpcOptions

    ranges, tab, options = _merged_ranges(seed, 5)
    keys = [set(map(tuple, p[partstore.KEY].to_numpy().tolist())) for p in ranges]
    assert any(sum(k in ks for ks in keys) >= 3 for k in keys[0])  # shared by 3+ ranges
    if collide:  # four hashes for every conversation: only the keys tell them apart
        real = partstore.key_hash
        monkeypatch.setattr(partstore, "key_hash", lambda p: real(p) & np.uint64(3))
    got = _flows_of_store(ranges, tab, options, RpcOptions(candidates=candidates))
    pd.testing.assert_frame_equal(got, build_flows(tab, options))


def test_a_take_gives_the_hashes_of_the_live_rows_it_took():
    parts = pd.DataFrame({k: np.arange(6, dtype=np.uint64) % 3 for k in partstore.KEY})
    parts["pid"] = np.arange(6)
    seg = partstore._Segment(parts, fileread.empty_candidates())
    h = partstore.key_hash(parts)
    got = seg.take(np.sort(h[[0]]))
    assert got[0]["pid"].tolist() == [0, 3] and got[2].tolist() == [h[0], h[0]]
    got = seg.take(np.sort(h[[0, 1]]))  # key 0's rows are dead: only key 1's
    assert got[0]["pid"].tolist() == [1, 4] and got[2].tolist() == [h[1], h[1]]
