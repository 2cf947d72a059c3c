"""The few packets per flow that discovery may hand to tshark, kept while the capture streams.

Per flow: the first payload packets of conversations on EPM and name ports (as many as
`dissect.select` takes there), the first two of UDP flows that may be connectionless DCE/RPC, and
the runs of packets from each bind-like PDU of TCP flows (at most four runs' worth, as `select`
takes). A superset of what `select` picks,
bounded per flow, so memory is O(candidate flows), never O(packets).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from auditor.capture.records_at import spans_known
from auditor.dissect.select import (
    LOCAL_NAME_PACKETS,
    LOCAL_NAME_PORTS,
    SMB_NAME_PACKETS,
    TLS_NAME_PACKETS,
    TLS_NAME_PORTS,
)
from auditor.flows.partial import BIG, CERTAIN, SYN_DECIDES, bind_like
from auditor.options import RpcOptions
from auditor.schema import PACKET_COLUMNS, column_names, empty_frame

EPM_PORTS = (135, 593)
PAIR_PORTS = (25, 587, 2525, 389, 3268)  # SMTP and LDAP: select takes a pair's first flow


def _pair_firsts(parts: pd.DataFrame | dict, options: RpcOptions,
                 seen: dict | None = None) -> np.ndarray:
    """False for TCP flows the per-pair name sources can never pick, else True.

    `select` takes the first flow (by first_seen) of each (src_ip, dst_ip) to a TLS, SMB, SMTP or
    LDAP port, and of those the first `name_flows`. A flow whose start and SYN are in these
    partials (or that begins with its SYN) knows its direction: it is never picked when an
    earlier flow of its pair (same direction, same service group) exists, or when `name_flows`
    pairs began before it. `seen` (service group -> (pairs, earliest start of each)) carries what
    partials no longer in `parts` showed, and is updated with these.
    """
    n = _rows(parts)
    keep = np.ones(n, bool)
    syn_dir = np.asarray(parts["syn_dir"])
    # a piece starting with its SYN starts a flow of that pair, or (continuing another file's
    # flow of the same 5-tuple) follows one: either way a pair's flow began by its start
    known = (np.isin(np.asarray(parts["kind"]), (CERTAIN, SYN_DECIDES))
             & (np.asarray(parts["proto_num"]) == 6) & (syn_dir >= 0))
    if not known.any():
        return keep
    a_side = syn_dir == 0  # side a sent the SYN: a is the client
    dport = np.where(a_side, np.asarray(parts["b_port"]), np.asarray(parts["a_port"]))
    # every service group's flows at once: one lookup per flow, the address halves gathered once
    group = _PAIR_GROUP_OF[dport]
    taken = np.flatnonzero(known & (group >= 0))
    if not len(taken):
        return keep
    group, side_all = group[taken], a_side[taken]
    halves = [np.asarray(parts[c])[taken] for c in ("a_hi", "a_lo", "b_hi", "b_lo")]
    first_all = np.asarray(parts["first_ns"])[taken].astype(np.int64)
    for g in range(len(_PAIR_GROUPS)):
        mine = np.flatnonzero(group == g)
        if not len(mine):
            continue
        sel, side = taken[mine], side_all[mine]
        cols = [h[mine] for h in halves]
        pair = np.empty(len(sel), _PAIR)  # (client, server) halves
        pair["sh"] = np.where(side, cols[0], cols[2])
        pair["sl"] = np.where(side, cols[1], cols[3])
        pair["dh"] = np.where(side, cols[2], cols[0])
        pair["dl"] = np.where(side, cols[3], cols[1])
        t = first_all[mine]
        old = seen.get(g) if seen is not None else None
        pair = _compact_pairs(pair, None if old is None else old[0])
        if old is not None:
            pair_all = np.concatenate([_wide_pairs(old[0]) if pair.dtype == _PAIR else old[0],
                                       pair])
            t_all = np.concatenate([old[1], t])
        else:
            pair_all, t_all = pair, t
        pairs, inverse = np.unique(pair_all, return_inverse=True)
        inverse = inverse.reshape(-1)
        firsts = np.full(len(pairs), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(firsts, inverse, t_all)
        if seen is not None:
            seen[g] = (pairs, firsts)
        later_in_pair = t > firsts[inverse[len(pair_all) - len(pair):]]
        starts = np.unique(firsts)  # the distinct times a pair began
        before = np.searchsorted(starts, t, side="left")
        keep[sel[later_in_pair | (before >= options.name_flows)]] = False
    return keep


def _rows(parts: pd.DataFrame | dict) -> int:
    """Rows of partials given as a frame or a dict of columns."""
    return len(parts) if isinstance(parts, pd.DataFrame) else len(next(iter(parts.values()), ()))


# the per-pair name sources' service groups (TLS, SMB, SMTP, LDAP), and per port number its
# group (-1: none); the groups' ports are distinct
_PAIR_GROUPS = (TLS_NAME_PORTS, (445,), (25, 587, 2525), (389, 3268))


def _group_of_port() -> np.ndarray:
    table = np.full(1 << 16, -1, np.int8)
    for group, ports in enumerate(_PAIR_GROUPS):
        table[list(ports)] = group
    table.flags.writeable = False
    return table


_PAIR_GROUP_OF = _group_of_port()

_PAIR = np.dtype([("sh", np.uint64), ("sl", np.uint64), ("dh", np.uint64), ("dl", np.uint64)])
_V4 = np.uint64(0xFFFF << 32)  # the upper half of an IPv4-mapped address's low 64 bits


def _compact_pairs(pair: np.ndarray, old: np.ndarray | None) -> np.ndarray:
    """(client, server) pairs of IPv4 addresses as one uint64 each (client << 32 | server),
    which np.unique sorts far faster than 32-byte records; the records themselves when an
    address is IPv6 or the pairs seen before are records. Only equality matters to the
    caller, and the two forms are never mixed (`_wide_pairs` turns keys back into records)."""
    if old is not None and old.dtype == _PAIR:
        return pair
    v4 = ((pair["sh"] == 0) & (pair["dh"] == 0) & ((pair["sl"] >> np.uint64(32)) == 0xFFFF)
          & ((pair["dl"] >> np.uint64(32)) == 0xFFFF))
    if not v4.all():
        return pair
    low = np.uint64(0xFFFFFFFF)
    return ((pair["sl"] & low) << np.uint64(32)) | (pair["dl"] & low)


def _wide_pairs(keys: np.ndarray) -> np.ndarray:
    """`_compact_pairs` keys as the records they stand for (records stay as they are)."""
    if keys.dtype == _PAIR:
        return keys
    out = np.zeros(len(keys), _PAIR)
    out["sl"] = _V4 | (keys >> np.uint64(32))
    out["dl"] = _V4 | (keys & np.uint64(0xFFFFFFFF))
    return out


# the packet columns, where the record lies in its file (engine.fileread), packet and partial
CANDIDATE_COLUMNS = column_names(PACKET_COLUMNS) + ["rec_off", "rec_len", "pid", "part"]


def empty_candidates() -> pd.DataFrame:
    """A candidate-packet frame with no rows."""
    return empty_frame(PACKET_COLUMNS).assign(
        rec_off=np.zeros(0, np.int64), rec_len=np.zeros(0, np.int64),
        pid=np.zeros(0, np.int64), part=np.zeros(0, np.int64))


def record_spans(cands: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(file offset, captured length) of each candidate's record, None unless every one is known
    (a cache entry written before they were kept has none)."""
    if "rec_off" not in cands or cands["rec_off"].isna().any():
        return None
    off = cands["rec_off"].to_numpy(np.int64)
    return (off, cands["rec_len"].to_numpy(np.int64)) if spans_known(off) else None


def _cl_like(head: np.ndarray) -> np.ndarray:
    head = np.asarray(head).astype(np.int64)
    return ((head >> 24) == 4) & (((head >> 16) & 0xFF) <= 1)


def _flow_facts(parts: pd.DataFrame | dict, options: RpcOptions,
                seen: dict | None) -> tuple[np.ndarray, ...]:
    """Per partial (pid, then arrays in its order): how many first payload packets it may need,
    whether it may be CL RPC, and whether it is TCP."""
    proto = np.asarray(parts["proto_num"])
    a, b = np.asarray(parts["a_port"]), np.asarray(parts["b_port"])
    tcp, udp = proto == 6, proto == 17
    # what dissect.select's plans take per flow, as per-port tables (_port_tables); the
    # per-pair name sources (SMTP, LDAP, TLS, SMB) only from flows `_pair_firsts` may pick
    pair = _pair_firsts(parts, options, seen)
    every = np.iinfo(np.int64).max  # epm_packets None: every payload packet of the conversation
    epm = every if options.epm_packets is None else options.epm_packets
    on_tcp, on_pair, on_udp = _port_tables(options.name_packets, epm)
    port = np.where(tcp, np.maximum(on_tcp[a], on_tcp[b]), 0)
    port = np.where(tcp & pair, np.maximum(port, np.maximum(on_pair[a], on_pair[b])), port)
    port = np.where(udp, np.maximum(on_udp[a], on_udp[b]), port)
    # a piece that may continue an earlier one may continue a bind's run of packets too
    port = np.where(tcp & (np.asarray(parts["kind"]) != CERTAIN),
                    np.maximum(port, options.bind_packets - 1), port)
    unknown = ((np.asarray(parts["kind"]) != CERTAIN) | (np.asarray(parts["head_pos0"]) == BIG)
               | (np.asarray(parts["head_pos1"]) == BIG))
    cl = udp & (unknown | _cl_like(np.asarray(parts["head0"])) | _cl_like(np.asarray(parts["head1"])))
    return np.asarray(parts["pid"]), port, cl, tcp


@functools.lru_cache(maxsize=8)
def _port_tables(names: int, epm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per port number, the payload packets a flow with that port at either end may need:
    (TCP, TCP from flows `_pair_firsts` may pick, UDP); 0 where no plan looks."""
    two = 2
    wants = {0: [(EPM_PORTS, epm), ((88,), names), ((53,), two)],
             1: [(TLS_NAME_PORTS, TLS_NAME_PACKETS), ((445,), SMB_NAME_PACKETS),
                 (PAIR_PORTS, names)],
             2: [((137, 88), names), (LOCAL_NAME_PORTS, LOCAL_NAME_PACKETS),
                 ((135, 389, 138, 53), two)]}
    tables = []
    for kind in range(3):
        table = np.zeros(1 << 16, np.int64)
        for ports, n in wants[kind]:
            at = np.asarray(ports)
            table[at] = np.maximum(table[at], n)
        table.flags.writeable = False
        tables.append(table)
    return tuple(tables)


def keep_candidates(rows: pd.DataFrame, parts: pd.DataFrame | dict, options: RpcOptions,
                    seen: dict | None = None) -> pd.DataFrame:
    """Of payload rows labelled with their partial (`part`), those a later selection may need.

    Returns them sorted by (part, pid). `seen` carries the per-pair facts of partials that are
    not in `parts` (see `_pair_firsts`). The rules read a few columns in (part, pid) order; only
    the rows kept are copied (a store re-pruning a big file's candidates would otherwise hold a
    sorted copy of all of them besides the frame and the kept rows).
    """
    if rows.empty or not _rows(parts):
        return empty_candidates()
    taken = _kept(rows["part"].to_numpy(), rows["pid"].to_numpy(),
                  rows["payload_head"].to_numpy(), rows["proto"].to_numpy(), parts, options, seen)
    return rows.take(taken).reset_index(drop=True)


def chunk_candidates(cols: dict[str, np.ndarray], pay: np.ndarray, pid: np.ndarray,
                     part: np.ndarray, parts: pd.DataFrame | dict, options: RpcOptions,
                     seen: dict | None, names: list[str]) -> pd.DataFrame:
    """keep_candidates of a folded chunk's payload rows `pay` (`names` of its columns `cols`,
    then pid and part), without a frame of them all: only the rows kept are gathered."""
    if not len(pay) or not _rows(parts):
        return empty_candidates()
    taken = pay[_kept(part[pay], pid[pay], cols["payload_head"][pay], cols["proto"][pay], parts,
                      options, seen)]
    columns = {c: cols[c][taken] for c in names} | {"pid": pid[taken], "part": part[taken]}
    # fresh arrays: copy=False keeps one block per column (no stacking them into 2-D blocks,
    # a copy of every row)
    return pd.DataFrame(columns, copy=False)


def _kept(part: np.ndarray, pid: np.ndarray, head: np.ndarray, proto: np.ndarray,
          parts: pd.DataFrame | dict, options: RpcOptions, seen: dict | None) -> np.ndarray:
    """Positions of the rows keep_candidates keeps, in (part, pid) order."""
    order = None if _in_part_order(part, pid) else np.lexsort((pid, part))
    if order is not None:
        part, head, proto = part[order], head[order], proto[order]
    pids, first, cl, tcp = _flow_facts(parts, options, seen)
    at = pd.Index(pids).get_indexer(part)  # -1: a row whose partial is not in `parts`
    known = at >= 0
    at = np.maximum(at, 0)
    first = np.where(known, first[at], 0)
    cl, tcp = known & cl[at], known & tcp[at]
    idx = np.arange(len(part))
    new = np.r_[True, part[1:] != part[:-1]]
    start = np.maximum.accumulate(np.where(new, idx, 0))
    rank = idx - start
    bp = options.bind_packets
    binds = bind_like(head) & (proto == 6)
    last_bind = np.maximum.accumulate(np.where(binds, idx, -1))
    in_run = tcp & (last_bind >= start) & (idx - last_bind < bp)
    run_n = np.cumsum(in_run)
    run_rank = run_n - 1 - (run_n[start] - in_run[start])
    keep = (rank < first) | (cl & (rank < 2)) | (in_run & (run_rank < 4 * bp))
    return np.flatnonzero(keep) if order is None else order[keep]


def _in_part_order(part: np.ndarray, pid: np.ndarray) -> bool:
    """The rows are sorted by (part, pid) already."""
    if len(part) < 2:
        return True
    up = part[1:] > part[:-1]
    return bool((up | ((part[1:] == part[:-1]) & (pid[1:] >= pid[:-1]))).all())
