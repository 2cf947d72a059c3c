"""Write a seeded, Exchange-like benchmark capture (~1M packets) with numpy, in seconds.

Hosts: DCs, CAS, hubs, mailbox servers and a few hundred clients in 198.18.0.0/15. Traffic: TCP
sessions with handshakes, data and FIN (443, 25, 389, 3268, 88, 445, 135 then a dynamic RPC port,
64327 bulk), RST-rejected and unanswered SYNs, UDP DNS / CLDAP / Kerberos / 3343 heartbeats.
The frames are structurally valid Ethernet/IPv4/TCP|UDP; payload bytes are zero apart from a
DCE/RPC bind header on the dynamic-port sessions.

    python benchmarks/make_capture.py OUT.pcap [--packets 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import struct

import numpy as np

SERVERS = {  # service port -> (server addresses, mean data packets per session, mean payload)
    443: (["198.18.1.31", "198.18.1.32"], 30, 900),
    25: (["198.18.1.41", "198.18.1.42"], 20, 1200),
    389: (["198.18.1.10", "198.18.1.11"], 8, 300),
    3268: (["198.18.1.10", "198.18.1.11"], 8, 400),
    88: (["198.18.1.10", "198.18.1.11"], 4, 600),
    445: (["198.18.1.10", "198.18.1.21"], 16, 1000),
    135: (["198.18.1.31", "198.18.1.10"], 4, 150),
    59531: (["198.18.1.31"], 24, 800),
    64327: (["198.18.1.22"], 200, 1400),
}
WEIGHTS = {443: 30, 25: 10, 389: 12, 3268: 10, 88: 8, 445: 8, 135: 8, 59531: 8, 64327: 1}


def ip_int(text: str) -> int:
    """Dotted quad to int."""
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def plan_packets(n_target: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Choose every packet's fields (as columns) for about n_target packets."""
    ports = np.array(list(WEIGHTS))
    p = np.array([WEIGHTS[x] for x in ports], dtype=float)
    p /= p.sum()
    mean_pk = sum(p[i] * (7 + SERVERS[port][1]) for i, port in enumerate(ports))
    n_tcp = int(n_target * 0.9 / mean_pk)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("t", "src", "dst", "sp", "dp", "proto", "flags", "plen")}
    clients = np.array([ip_int(f"198.18.{10 + i // 250}.{1 + i % 250}") for i in range(600)])
    duration = 3600.0

    def add(t, src, dst, sp, dp, proto, flags, plen):
        t = np.asarray(t, dtype=float)
        for key, val in zip(cols, (t, src, dst, sp, dp, proto, flags, plen), strict=True):
            cols[key].append(np.broadcast_to(np.asarray(val), t.shape))

    svc = rng.choice(ports, size=n_tcp, p=p)
    start = np.sort(rng.uniform(0, duration, n_tcp))
    cli = rng.choice(clients, n_tcp)
    sport = rng.integers(49152, 65535, n_tcp)
    kind = rng.choice(3, size=n_tcp, p=[0.96, 0.02, 0.02])  # ok, rst-rejected, unanswered
    for port in ports:
        sel = svc == port
        addrs, mean_data, mean_len = SERVERS[int(port)]
        k = int(sel.sum())
        srv = rng.choice(np.array([ip_int(a) for a in addrs]), k)
        t0, c, sp, kd = start[sel], cli[sel], sport[sel], kind[sel]
        ok = kd == 0
        # handshake
        add(t0, c, srv, sp, port, 6, 0x02, 0)
        add(t0[ok] + 0.0005, srv[ok], c[ok], port, sp[ok], 6, 0x12, 0)
        add(t0[ok] + 0.0010, c[ok], srv[ok], sp[ok], port, 6, 0x10, 0)
        rej = kd == 1
        add(t0[rej] + 0.0005, srv[rej], c[rej], port, sp[rej], 6, 0x14, 0)
        un = kd == 2
        add(t0[un] + 1.0, c[un], srv[un], sp[un], port, 6, 0x02, 0)
        # data: alternate directions
        n_data = rng.poisson(mean_data, k) * ok
        idx = np.repeat(np.arange(k), n_data)
        seq = np.arange(len(idx)) - np.repeat(np.cumsum(n_data) - n_data, n_data)
        from_client = (seq % 2) == 0
        t = t0[idx] + 0.002 + seq * 0.003
        a, b = c[idx], srv[idx]
        src = np.where(from_client, a, b)
        dst = np.where(from_client, b, a)
        spp = np.where(from_client, sp[idx], port)
        dpp = np.where(from_client, port, sp[idx])
        plen = np.clip(rng.exponential(mean_len, len(idx)).astype(np.int64), 1, 1460)
        add(t, src, dst, spp, dpp, 6, 0x18, plen)
        # close
        tend = t0[ok] + 0.002 + n_data[ok] * 0.003
        add(tend, c[ok], srv[ok], sp[ok], port, 6, 0x11, 0)
        add(tend + 0.0005, srv[ok], c[ok], port, sp[ok], 6, 0x11, 0)
        add(tend + 0.0010, c[ok], srv[ok], sp[ok], port, 6, 0x10, 0)

    n_tcp_pk = sum(len(x) for x in cols["t"])
    n_udp = max(n_target - n_tcp_pk, 0) // 2
    udp_ports = rng.choice(np.array([53, 389, 88, 3343, 123]), n_udp, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    srv = np.where(udp_ports == 3343, ip_int("198.18.1.22"), ip_int("198.18.1.10"))
    c = np.where(udp_ports == 3343, ip_int("198.18.1.21"), rng.choice(clients, n_udp))
    sp = np.where(np.isin(udp_ports, (3343, 123)), udp_ports, rng.integers(49152, 65535, n_udp))
    t0 = rng.uniform(0, duration, n_udp)
    plen = rng.integers(30, 400, n_udp)
    add(t0, c, srv, sp, udp_ports, 17, 0, plen)
    answered = rng.random(n_udp) < 0.97
    add(t0[answered] + 0.0004, srv[answered], c[answered], udp_ports[answered], sp[answered], 17, 0,
        plen[answered] + 40)
    out = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(out["t"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def write_pcap(path: str, cols: dict[str, np.ndarray]) -> int:
    """Serialise the planned packets as an Ethernet pcap; return the packet count."""
    n = len(cols["t"])
    tcp = cols["proto"] == 6
    l4 = np.where(tcp, 20, 8)
    plen = cols["plen"].astype(np.int64)
    dyn_bind = tcp & (cols["dp"] == 59531) & (plen >= 72)
    frame = 14 + 20 + l4 + plen
    rec = 16 + frame
    off = np.concatenate(([24], 24 + np.cumsum(rec)[:-1])).astype(np.int64)
    buf = np.zeros(24 + int(rec.sum()), dtype=np.uint8)
    buf[:24] = np.frombuffer(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), np.uint8)

    def put(rel: np.ndarray | int, values: np.ndarray, width: int, big: bool = True,
            mask: np.ndarray | None = None) -> None:
        pos = off + rel
        vals = np.asarray(values, dtype=np.int64)
        if mask is not None:
            pos, vals = pos[mask], np.broadcast_to(vals, mask.shape)[mask]
        for i in range(width):
            shift = 8 * (width - 1 - i) if big else 8 * i
            buf[pos + i] = (vals >> shift) & 0xFF

    ts = 1_700_000_000 + cols["t"]
    put(0, np.floor(ts).astype(np.int64), 4, big=False)
    put(4, ((ts % 1) * 1e6).astype(np.int64), 4, big=False)
    put(8, frame, 4, big=False)
    put(12, frame, 4, big=False)
    e = 16
    buf[(off + e)[:, None] + np.arange(6)] = np.array([0x02, 0, 0, 0, 0, 1], np.uint8)
    buf[(off + e + 6)[:, None] + np.arange(6)] = np.array([0x02, 0, 0, 0, 0, 2], np.uint8)
    put(e + 12, np.full(n, 0x0800), 2)
    ip = e + 14
    put(ip, np.full(n, 0x45), 1)
    put(ip + 2, 20 + l4 + plen, 2)
    put(ip + 4, np.arange(n) & 0xFFFF, 2)
    put(ip + 8, np.full(n, 64), 1)
    put(ip + 9, cols["proto"], 1)
    put(ip + 12, cols["src"], 4)
    put(ip + 16, cols["dst"], 4)
    l4o = ip + 20
    put(l4o, cols["sp"], 2)
    put(l4o + 2, cols["dp"], 2)
    put(l4o + 12, np.full(n, 0x50), 1, mask=tcp)
    put(l4o + 13, cols["flags"], 1, mask=tcp)
    put(l4o + 14, np.full(n, 65535), 2, mask=tcp)
    put(l4o + 4, 8 + plen, 2, mask=~tcp)
    # a DCE/RPC bind header (v5.0, type 11) at the start of dynamic-port client payloads
    pay = l4o + 20
    put(pay, np.full(n, 0x05000B03), 4, mask=dyn_bind)
    with open(path, "wb") as fh:
        fh.write(buf.tobytes())
    return n


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    cols = plan_packets(args.packets, np.random.default_rng(args.seed))
    n = write_pcap(args.out, cols)
    print(f"wrote {args.out}: {n} packets")


if __name__ == "__main__":
    main()
