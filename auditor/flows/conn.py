"""What Zeek's conn.log needs of each flow beyond the flow table, folded with the partials.

Per canonical direction (0: from side a, as `partial.canonical` says) and per history letter:
the pid of the first packet that showed it (BIG: none), and the direction's IP bytes (frame
length minus the link-layer header). The pid is the packet's place in time order, so the
first pids order a flow's letters as its packets did. A fold takes the minimum (or sum) over a
partial's packets, a merge over the partials it joins: associative, as the partials' own
columns. Only under `FlowOptions.zeek` (`auditor flows --format zeek`); the other outputs
never carry these columns.

`records` turns a piece of flows' columns into conn_state, history and IP bytes per side,
originator first (the flow's src is Zeek's orig), for all flows at once.
"""

from __future__ import annotations

import numpy as np

BIG = np.iinfo(np.int64).max
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
# history letters in the order Zeek checks a packet's flags
LETTERS = ("q", "i", "s", "h", "d", "f", "r", "a")
# the first pid of each (canonical direction, letter), direction-major
AT_COLUMNS = [f"z{d}{letter}" for d in (0, 1) for letter in LETTERS]
IP_COLUMNS = ["ip_bytes0", "ip_bytes1"]
CONN_COLUMNS = AT_COLUMNS + IP_COLUMNS
# what `records` adds to a piece of the flow table
RECORD_COLUMNS = ["conn_state", "history", "orig_ip_bytes", "resp_ip_bytes", "orig_icmp",
                  "resp_icmp"]


def packet_letters(flags: np.ndarray, payload: np.ndarray, tcp: np.ndarray,
                   udp: np.ndarray) -> np.ndarray:
    """(packets, letters) booleans: which history letters each packet contributes."""
    syn, fin, rst, ack = ((flags & f) != 0 for f in (_SYN, _FIN, _RST, _ACK))
    multi = tcp & syn & (fin | rst)
    incons = tcp & fin & rst & ~syn
    data = (payload > 0) & (tcp | udp)
    return np.column_stack([
        multi, incons, tcp & syn & ~ack & ~multi, tcp & syn & ack & ~multi, data,
        tcp & fin & ~incons & ~multi, tcp & rst & ~incons & ~multi,
        tcp & ack & ~syn & ~fin & ~rst & ~data,
    ])


def fold(flags: np.ndarray, payload: np.ndarray, proto: np.ndarray, d1: np.ndarray,
         pid: np.ndarray, ip_bytes: np.ndarray, bounds: np.ndarray) -> dict[str, np.ndarray]:
    """The CONN_COLUMNS of the partials starting at `bounds` (packets in partial order; d1: 1
    where a packet goes from side b)."""
    letters = packet_letters(flags, payload, proto == 6, proto == 17)
    out = {}
    for d in (0, 1):
        mine = d1 == d
        for j, letter in enumerate(LETTERS):
            out[f"z{d}{letter}"] = np.minimum.reduceat(np.where(letters[:, j] & mine, pid, BIG),
                                                       bounds)
    one = np.add.reduceat(ip_bytes * d1, bounds)
    out["ip_bytes0"], out["ip_bytes1"] = np.add.reduceat(ip_bytes, bounds) - one, one
    return out


def merge(cols: dict[str, np.ndarray], bounds: np.ndarray) -> dict[str, np.ndarray]:
    """The CONN_COLUMNS of merged partials (rows `bounds[i]` .. `bounds[i+1] - 1` join)."""
    out = {c: np.minimum.reduceat(cols[c], bounds) for c in AT_COLUMNS}
    out.update({c: np.add.reduceat(cols[c], bounds) for c in IP_COLUMNS})
    return out


def shifted(col: np.ndarray, rows) -> np.ndarray:
    """A position column (pids, BIG for none) moved on by `rows` packets."""
    return np.where(col < BIG, col + rows, BIG)


def records(f: dict[str, np.ndarray], a_orig: np.ndarray) -> dict[str, np.ndarray]:
    """RECORD_COLUMNS of flows from their CONN_COLUMNS, packets0/1, proto_num, icmp_type0 and
    icmp_code0 (`f`), `a_orig` saying where side a is the originator.

    A flow whose two sides are one endpoint (same address and port) has all its packets from
    side a: they are all the originator's, whichever side the flow table calls its src.
    """
    one = (f["a_code"] == f["b_code"]) & (f["a_port"] == f["b_port"])
    a_orig = a_orig | one
    at = np.stack([np.stack([np.asarray(f[f"z{d}{letter}"], np.int64) for letter in LETTERS],
                            axis=1) for d in (0, 1)], axis=1)  # flow x direction x letter
    first = np.where(a_orig[:, None, None], at, at[:, ::-1])
    ip = np.stack([np.asarray(f[c], np.int64) for c in IP_COLUMNS], axis=1)
    ip = np.where(a_orig[:, None], ip, ip[:, ::-1])
    sent = np.stack([np.asarray(f["packets0"]) > 0, np.asarray(f["packets1"]) > 0], axis=1)
    sent = np.where(a_orig[:, None], sent, sent[:, ::-1])
    if one.any():  # (both directions are side a's: canonical() swaps only a greater source)
        first[one, 0] = first[one].min(axis=1)
        first[one, 1] = BIG
        ip[one, 0] = ip[one].sum(axis=1)
        ip[one, 1] = 0
        sent[one] = [True, False]
    seen = first < BIG
    proto = np.asarray(f["proto_num"]).astype(np.int64)
    names = np.where(proto == 6, "tcp", np.where(proto == 17, "udp", ""))
    return {"conn_state": conn_states(names, seen, sent), "history": histories(first, seen),
            "orig_ip_bytes": ip[:, 0], "resp_ip_bytes": ip[:, 1],
            "orig_icmp": np.asarray(f["icmp_type0"]), "resp_icmp": np.asarray(f["icmp_code0"])}


# each (side, letter) slot's character: upper case for the originator
_SLOT_CHARS = np.frombuffer(("".join(LETTERS).upper() + "".join(LETTERS)).encode(), np.uint8)


def histories(first: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Each flow's history: its letters in order of first appearance (letters of one packet in
    Zeek's order), as str. `first`: flow x side (orig, resp) x letter positions."""
    n, sides, k = first.shape
    slot = np.arange(sides * k).reshape(sides, k)  # side * 8 + letter
    letter = np.arange(k)[None, :].repeat(sides, 0)
    key = np.where(seen, first * (2 * k) + letter * 2 + np.arange(sides)[:, None], np.iinfo(
        np.int64).max).reshape(n, sides * k)
    idx = np.argsort(key, axis=1, kind="stable")
    chars = np.where(np.take_along_axis(seen.reshape(n, -1), idx, 1),
                     _SLOT_CHARS[slot.ravel()][idx], 0).astype(np.uint8)
    return chars.view(f"S{sides * k}").ravel().astype(str).astype(object)


# endpoint states (`_endpoint`)
_RESET, _CLOSED, _ESTABLISHED, _SYN_SENT, _PARTIAL, _INACTIVE = range(6)


def _endpoints(seen: np.ndarray, sent: np.ndarray, established: np.ndarray) -> np.ndarray:
    q, i, s, h, d, f, r, a = (seen[:, j] for j in range(8))
    return np.select([r | q, f | i, established, s | h, sent],
                     [_RESET, _CLOSED, _ESTABLISHED, _SYN_SENT, _PARTIAL], _INACTIVE)


def conn_states(proto: np.ndarray, seen: np.ndarray, sent: np.ndarray) -> np.ndarray:
    """Zeek's conn_state of each flow from what each side sent (seen: flow x side x letter)."""
    established = seen[:, 0, 2] & seen[:, 1, 3]  # S then h
    o, r = (_endpoints(seen[:, k], sent[:, k], established) for k in (0, 1))
    o_inactive = (o == _INACTIVE) | (o == _PARTIAL)
    r_inactive = (r == _INACTIVE) | (r == _PARTIAL)
    tcp = np.select(
        [(o == _SYN_SENT) & (r == _RESET), o == _RESET, r == _RESET,
         (o == _CLOSED) & (r == _CLOSED), o == _CLOSED, r == _CLOSED,
         (o == _SYN_SENT) & (r == _INACTIVE), (o == _ESTABLISHED) & (r == _ESTABLISHED)],
        ["REJ", np.where(r_inactive, "RSTOS0", "RSTO"), np.where(o_inactive, "RSTRH", "RSTR"),
         "SF", np.where(r_inactive, "SH", "S2"), np.where(o_inactive, "SHR", "S3"), "S0", "S1"],
        "OTH")
    udp = np.where(sent[:, 0], np.where(sent[:, 1], "SF", "S0"),
                   np.where(sent[:, 1], "SHR", "OTH"))
    return np.where(proto == "udp", udp, np.where(proto == "tcp", tcp, "OTH")).astype(object)
