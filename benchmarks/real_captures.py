"""What the audit says on captures other people made: the figures of issue 10, reproducibly.

For every public capture in `fixtures/pcaps/public/` (and the two-DC mid-stream recording):
- how many flows each `orientation` decided, and how many of the flows tshark's protocol
  evidence decides agree with it (the oracle of tests/test_orientation_oracle.py);
- the role proposal's hits against each capture's known servers (tests/test_roles_public.py);
- HIGH and MEDIUM findings with a sensible inventory per capture (the DC, its LAN as clients,
  `default_roles: [internet]`), through the CLI's JSON, so any older revision can be measured
  the same way: `--before REV` runs REV's `auditor audit` on the same files and inventories and
  says, for every HIGH finding that went away, what today's audit makes of the same traffic.

    python benchmarks/real_captures.py [--before REV] [--only orientation,midstream,roles,findings]

`midstream` repeats the orientation check on copies of the captures cut so that every TCP flow
starts at the server's first payload packet: the case orientation from evidence is for.

Needs tshark. Takes a minute or two. Nothing here is a test: the tests assert the same facts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections import Counter
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "fixtures" / "pcaps" / "public"
MIDSTREAM = ROOT / "fixtures" / "pcaps" / "midstream" / "midstream.pcap"
sys.path.insert(0, str(ROOT / "tests"))

# capture -> (domain controllers, client networks): what a user who knows the capture would write
INVENTORIES = {
    "CVE-2020-1472_exploit_win2019.pcap": (["172.16.5.58"], ["172.16.0.0/16"]),
    "suricata-verify_bug-5162_input.pcap": (["192.168.56.102"], ["192.168.56.0/24"]),
    "dcerpc_privacy_krb.pcapng": (["192.168.0.100"], ["192.168.0.0/24"]),
    "dcerpc_msnrpc.pcapng": (["192.168.122.17"], ["192.168.122.0/24"]),
    "kerberos.pcap": (["172.16.8.8"], ["172.16.8.0/24"]),
    "dcerpc.pcap": ([], ["192.168.1.0/24"]),
    "aduser1.pcap": (["192.168.226.136"], ["192.168.226.0/24"]),
    "kerberos_tso.pcapng": (["172.16.0.100"], ["172.16.0.0/24"]),
    "cldap-leak.pcap": (["192.168.122.3"], ["192.168.122.0/24"]),
    "NTP_sync.pcap": ([], ["192.168.0.0/16"]),
    "smtp.pcap": ([], ["10.10.1.0/24", "192.168.0.0/16"]),
    "smtp-starttls.pcap": ([], ["10.0.0.0/8", "2003:de:2016:125::/64"]),
    "sip.pcap": ([], ["192.168.1.0/24"]),
    "smb3_multichannel.pcap": ([], ["172.17.0.0/24"]),
}


def inventory_yaml(dcs: list[str], nets: list[str]) -> str:
    """The inventory of one capture, as YAML every revision of the tool reads."""
    lines = ["hosts:"] if dcs else ["hosts: []"]
    for i, ip in enumerate(dcs, 1):
        lines += [f"  - name: DC{i}", f"    addresses: [{ip}]",
                  "    roles: [domain_controller, dns]"]
    lines.append("networks:")
    for net in nets:
        lines += [f"  - cidr: {net}", "    roles: [client]"]
    lines.append("default_roles: [internet]")
    return "\n".join(lines) + "\n"


def captures() -> list[Path]:
    return [PUBLIC / name for name in INVENTORIES] + [MIDSTREAM]


# --- orientation -------------------------------------------------------------------------------

# Run by this tree or an older one: per packet, its record number, and its flow's
# (id, src ip, src port, orientation); the flows table's size goes first.
_PER_PACKET = """
import json, sys, warnings
warnings.simplefilter("ignore")
import auditor
table = auditor.read_packets([sys.argv[1]])
flows, labels = auditor.build_flows_labelled(table)
orient = flows["orientation"] if "orientation" in flows else ["-"] * len(flows)
print(json.dumps([len(flows), list(orient)]))
src, port = flows["src_ip"].tolist(), flows["src_port"].tolist()
for rec, lab in zip((table.packets["record_index"] + 1).tolist(), labels.tolist()):
    print(rec, lab, src[lab], port[lab])
"""


def _per_packet(path: Path, tree: Path | None, cwd: Path):
    env = None if tree is None else dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", _PER_PACKET, str(path)], capture_output=True,
                         text=True, env=env, cwd=cwd, check=True).stdout.splitlines()
    _, orient = json.loads(out[0])
    rows = [line.split(" ") for line in out[1:]]
    return orient, [(int(r), int(lab), ip, int(port)) for r, lab, ip, port in rows]


def _agreement(claims: dict, orient: list, rows: list) -> tuple[Counter, Counter]:
    """Per orientation: flows tshark's evidence decides, and of those, how many agree."""
    clients: dict[int, set] = {}
    first: dict[int, tuple] = {}
    for rec, lab, ip, port in rows:
        first.setdefault(lab, (ip, port))
        claim = claims.get(rec)
        if claim is not None:
            clients.setdefault(lab, set()).add(claim)
    decided, agree = Counter(), Counter()
    for lab, who in clients.items():
        if len(who) == 1:
            decided[orient[lab]] += 1
            agree[orient[lab]] += next(iter(who)) == first[lab]
    return decided, agree


def _clients(path: Path) -> dict[int, tuple[str, int]]:
    """record number -> the client endpoint (ip, port) tshark's evidence names in it."""
    from test_orientation_oracle import tshark_claims

    from auditor import read_packets
    from auditor.capture.packets import format_ip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = read_packets([path]).packets
    src = format_ip(pk["src_ip_hi"].to_numpy(), pk["src_ip_lo"].to_numpy())
    dst = format_ip(pk["dst_ip_hi"].to_numpy(), pk["dst_ip_lo"].to_numpy())
    sport, dport = pk["src_port"].tolist(), pk["dst_port"].tolist()
    claims = tshark_claims(path)
    out = {}
    for row, rec in enumerate((pk["record_index"] + 1).tolist()):
        claim = claims.get(rec)
        if claim is not None:
            out[rec] = (src[row], sport[row]) if claim[2] == 1 else (dst[row], dport[row])
    return out


def orientation(before: str | None, tree: Path | None, tmp: Path, cut: bool = False) -> None:
    if cut:
        print("## Orientation of the same captures cut mid-stream (each TCP flow starts at the "
              "server's first payload packet)")
    else:
        print("## Orientation: flows per orientation, and agreement with tshark's evidence")
    head = f"{'capture':40} {'flows':>6} {'decided':>8} {'agree':>6}"
    print(head + (f" {'before':>7}" if before else "") + "  per orientation")
    totals, decided_all, agree_all, old_all = Counter(), Counter(), Counter(), 0
    for path in captures():
        if cut:
            from test_orientation_oracle import cut_midstream

            path = cut_midstream(path, tmp / f"cut-{path.stem}.pcapng")
        orient, rows = _per_packet(path, None, tmp)
        claims = _clients(path)
        decided, agree = _agreement(claims, orient, rows)
        per = Counter(orient)
        totals.update(per)
        decided_all.update(decided)
        agree_all.update(agree)
        line = (f"{path.name:40} {len(orient):>6} {sum(decided.values()):>8} "
                f"{sum(agree.values()):>6}")
        if before:
            old_orient, old_rows = _per_packet(path, tree, tmp)
            old = sum(_agreement(claims, old_orient, old_rows)[1].values())
            old_all += old
            line += f" {old:>7}"
        print(line + "  " + ", ".join(f"{k} {v}" for k, v in per.most_common()))
    line = (f"{'all':40} {sum(totals.values()):>6} {sum(decided_all.values()):>8} "
            f"{sum(agree_all.values()):>6}")
    if before:
        line += f" {old_all:>7}"
    print(line + "  " + ", ".join(f"{k} {v}" for k, v in totals.most_common()))
    print("evidence-decided flows that agree, by orientation: "
          + ", ".join(f"{k} {agree_all[k]}/{v}" for k, v in decided_all.most_common()))
    if before:
        print(f"('before': how many of the same flows {before} oriented as tshark's evidence "
              "does; the evidence-decided set is today's flows')")
    print()


# --- roles -------------------------------------------------------------------------------------


def _roles_by(tree: Path | None, paths: list[Path], expected: dict, tmp: Path) -> dict:
    """The roles `auditor roles` (this tree's, or an older one's CLI) proposes for each host."""
    from test_roles_public import _roles

    from auditor import load_inventory

    env = None if tree is None else dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-m", "auditor", "roles", *map(str, paths)],
                         capture_output=True, text=True, env=env, cwd=tmp, check=False)
    proposal = tmp / "proposal.yaml"
    proposal.write_text(out.stdout if out.returncode == 0 else "hosts: []\n")
    return _roles(load_inventory(proposal), expected)


def roles(before: str | None, tree: Path | None, tmp: Path) -> None:
    from test_roles_public import KNOWN_SERVERS, RPC_SERVERS
    from tshark_helpers import CAPTURES, RPC

    print("## Role proposal (`auditor roles`) against the known servers")
    score = Counter()
    cases = [([CAPTURES / c], exp) for c, exp in KNOWN_SERVERS.items()]
    cases += [([RPC / f for f in files], exp) for files, exp in RPC_SERVERS.items()]
    for paths, expected in cases:
        runs = [("now", None)] + ([("before", tree)] if before else [])
        line = f"{paths[0].name:40}"
        for label, where in runs:
            got = _roles_by(where, paths, expected, tmp)
            ok = [ip for ip, role in expected.items() if role in got[ip]]
            score[label] += len(ok)
            score[label + " dc"] += sum(1 for ip in ok if expected[ip] == "domain_controller")
            line += f" {label} {len(ok)}/{len(expected)}"
            if label == "now":
                text = ", ".join(f"{ip}={'/'.join(got[ip]) or '-'}" for ip in expected)
        score["total"] += len(expected)
        score["dcs"] += sum(1 for r in expected.values() if r == "domain_controller")
        print(f"{line}  {text}")
    for label in ("now", "before") if before else ("now",):
        print(f"{label}: hosts with the known role {score[label]}/{score['total']}; "
              f"domain controllers {score[label + ' dc']}/{score['dcs']}")
    print()


# --- findings ----------------------------------------------------------------------------------


def audit_json(path: Path, inventory: Path, tree: Path | None) -> dict:
    """`auditor audit --format json` of one capture by this tree, or the one unpacked at `tree`.

    It runs in the inventory's folder: `python -m` puts the working directory first on the path.
    """
    env = None if tree is None else dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-m", "auditor", "audit", str(path), "--inventory",
                          str(inventory), "--format", "json"], capture_output=True, text=True,
                         env=env, cwd=inventory.parent, check=False)
    if out.returncode not in (0, 3):
        raise SystemExit(f"audit of {path.name} failed ({out.returncode}): {out.stderr[-400:]}")
    return json.loads(out.stdout)


def _key(f: dict) -> tuple:
    """A finding's traffic; older revisions called IP protocols by number ("2" is igmp)."""
    from auditor.flows.protocols import IP_PROTOCOLS

    proto = f["proto"]
    if str(proto).isdigit():
        proto = IP_PROTOCOLS.get(int(proto), proto)
    return (f["src_ip"], f["dst_ip"], proto, int(f["dst_port"] or 0))


def _tree_of(rev: str, into: Path) -> Path:
    """The tracked files of revision `rev`, unpacked under `into` (no checkout of ours moves)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _flows_now(path: Path, inventory: Path):
    """Today's audited flows of one capture (the JSON document leaves them out)."""
    from auditor import PipelineOptions, audit_captures, load_catalogue, load_inventory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audit_captures([path], load_inventory(inventory), load_catalogue(),
                              PipelineOptions()).flows


def _why(flows, key: tuple) -> str:
    """What today's audit makes of the traffic behind a finding that went away."""
    src, dst, proto, port = key
    same = flows[(flows["src_ip"] == src) & (flows["dst_ip"] == dst) & (flows["proto"] == proto)
                 & (flows["dst_port"].fillna(0).astype(int) == port)]
    if same.empty:
        turned = flows[(flows["src_ip"] == dst) & (flows["dst_ip"] == src)]
        if turned.empty:
            return "no such flow today"
        f = turned.iloc[0]
        return (f"turned round: {f.src_ip} -> {f.dst_ip} {f.proto}/{f.dst_port} "
                f"(orientation {f.orientation}), {f.verdict}")
    f = same.iloc[0]
    return (f"now {f.verdict} ({f.src_role} -> {f.dst_role}, rule {f.rule or '-'}, "
            f"orientation {f.orientation})")


def findings(before: str | None, tree: Path | None, tmp: Path) -> None:
    print("## HIGH and MEDIUM findings with a sensible inventory per capture")
    total = Counter()
    gone: list[tuple[str, dict, str]] = []
    for name, (dcs, nets) in INVENTORIES.items():
        inv = tmp / f"{name}.yaml"
        inv.write_text(inventory_yaml(dcs, nets))
        now = audit_json(PUBLIC / name, inv, None)
        sev = Counter(f["severity"] for f in now["findings"])
        total["high"] += sev["high"]
        total["medium"] += sev["medium"]
        line = f"{name:40} HIGH {sev['high']:>3}  MEDIUM {sev['medium']:>3}"
        if before:
            old = audit_json(PUBLIC / name, inv, tree)
            old_sev = Counter(f["severity"] for f in old["findings"])
            total["high_before"] += old_sev["high"]
            total["medium_before"] += old_sev["medium"]
            line += f"   before: HIGH {old_sev['high']:>3}  MEDIUM {old_sev['medium']:>3}"
            kept = {_key(f) for f in now["findings"] if f["severity"] == "high"}
            lost = [f for f in old["findings"] if f["severity"] == "high"
                    and _key(f) not in kept]
            flows = _flows_now(PUBLIC / name, inv) if lost else None
            gone += [(name, f, _why(flows, _key(f))) for f in lost]
        print(line)
    line = f"{'all':40} HIGH {total['high']:>3}  MEDIUM {total['medium']:>3}"
    if before:
        line += (f"   before: HIGH {total['high_before']:>3}  "
                 f"MEDIUM {total['medium_before']:>3}")
    print(line)
    if before:
        print(f"\nHIGH findings of {before} that are gone, and what the audit says now:")
        for name, f, why in gone:
            print(f"  {name}: {f['src_ip']} -> {f['dst_ip']} {f['proto']}/{f['dst_port']} "
                  f"{f['src_role']}->{f['dst_role']}: {why}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="a git revision to compare the findings with")
    ap.add_argument("--only", default="orientation,midstream,roles,findings")
    args = ap.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = _tree_of(args.before, tmp / "before") if args.before else None
        if "orientation" in only:
            orientation(args.before, tree, tmp)
        if "midstream" in only:
            orientation(args.before, tree, tmp, cut=True)
        if "roles" in only:
            roles(args.before, tree, tmp)
        if "findings" in only:
            findings(args.before, tree, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
