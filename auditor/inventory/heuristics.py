"""Role heuristics: each reads a host's evidence and returns (role, confidence, evidence text).

The strongest evidence first: RPC interfaces a host serves (DRSUAPI/NETLOGON on a domain
controller; EMSMDB/RFR on an Exchange Client Access server), DC-locator replies, browser and SRV
announcements, Exchange SMTP extensions and Kerberos service principals; then the services a
host answers. Confidence of a domain controller is graded: each piece of evidence has a weight
and they combine as independent indications (1 - prod(1 - w)), so a capture that shows a
subset (Kerberos and LDAP only, or NETLOGON only) still gives a DC, with less confidence.
"""

from __future__ import annotations

from collections.abc import Callable

from auditor.inventory.evidence import HostEvidence, _count, _n_peers, _port_text

Found = tuple[str, float, str]

SIP = (5060, 5061, 5065, 5066, 5067, 5068)
AD_PORTS = (88, 389, 3268)
DC_THRESHOLD = 0.5

# Interfaces only a domain controller registers (the NETLOGON RPC server, directory replication).
_DC_INTERFACES = {"DRSUAPI": 0.6, "NETLOGON": 0.5, "DSAOP": 0.3, "FRS": 0.3}
# Services a DC answers: (port, proto or None for both) -> weight.
_DC_PORTS = {(88, None): 0.5, (464, None): 0.2, (389, "udp"): 0.3, (389, "tcp"): 0.2,
             (3268, "tcp"): 0.3, (3269, "tcp"): 0.2, (636, "tcp"): 0.1, (53, None): 0.1,
             (135, "tcp"): 0.05, (445, "tcp"): 0.05}
# Hints from the name dissection (dissect/names.py) -> (weight, wording).
_DC_HINTS = {"dc-locator": (0.6, "answered a DC-locator (CLDAP netlogon) ping as"),
             "browser-dc": (0.4, "announces itself as a domain controller in browser "
                                 "announcements:"),
             "srv-dc": (0.5, "named by DNS SRV _ldap._tcp.dc._msdcs answers:"),
             "ldap-rootdse": (0.2, "LDAP rootDSE dnsHostName"),
             "kdc": (0.1, "Kerberos KDC for realm")}
_EXCHANGE_RPC = ("EMSMDB", "AsyncEMSMDB", "RFR")
_EXCHANGE_SPN = {"exchangemdb": "client_access", "exchangeab": "client_access",
                 "exchangerfr": "client_access", "smtpsvc": "hub_transport"}


def _noisy_or(weights) -> float:
    left = 1.0
    for w in weights:
        left *= 1.0 - w
    return 1.0 - left


def domain_controller(ev: HostEvidence, ip: str) -> Found | None:
    """DRSUAPI/NETLOGON + CLDAP + LDAP/GC + Kerberos + DNS; a subset gives less confidence."""
    weights, parts = [], []
    served = ev.serves(ip, _DC_INTERFACES)
    if served:
        weights += [_DC_INTERFACES[n] for n in served]
        parts.append("serves " + ", ".join(f"{n} ({how})" for n, how in sorted(served.items())))
    hits: dict = {}
    for (port, proto), w in _DC_PORTS.items():
        found = ev.answers(ip, (port,), proto)
        if found:
            hits.update(found)
            weights.append(w)
    if hits:
        parts.append(f"answers {_port_text(hits)} to {_count(_n_peers(hits), 'client')}")
    for hint, (w, words) in _DC_HINTS.items():
        details = ev.hint(ip, hint)
        if details:
            weights.append(w)
            parts.append(f"{words} {', '.join(sorted(details)[:3])}")
    conf = _noisy_or(weights)
    if conf < DC_THRESHOLD:
        return None
    return ("domain_controller", round(min(conf, 0.99), 2), "; ".join(parts))


def dns(ev: HostEvidence, ip: str) -> Found | None:
    """Answers DNS."""
    hits = ev.answers(ip, (53,))
    if not hits:
        return None
    n = _n_peers(hits)
    return ("dns", 0.9 if n > 1 else 0.7, f"answers {_port_text(hits)} to {_count(n, 'client')}")


def mailbox(ev: HostEvidence, ip: str) -> Found | None:
    """DAG replication or cluster heartbeats with internal peers."""
    for port, proto, conf, what in ((64327, "tcp", 0.9, "DAG replication"),
                                    (3343, "udp", 0.7, "cluster")):
        peers = ev.internal_peers(ev.answers(ip, (port,), proto), ev.talks_to(ip, (port,), proto))
        if peers:
            return ("mailbox", conf, f"{what} {port}/{proto} with {_count(len(peers), 'peer')}")
    return None


def transport(ev: HostEvidence, ip: str) -> Found | None:
    """EdgeSync, Exchange SMTP extensions, SMTP with outside hosts (Edge) or inside ones (Hub)."""
    if ev.answers(ip, (50636,), "tcp"):
        return ("edge_transport", 0.9, "answers EdgeSync 50636/tcp")
    smtp = ev.answers(ip, (25, 587), "tcp")
    internal_peers = ev.internal_peers(smtp)
    both = [ev.answers(ip, (25,), "tcp"), ev.talks_to(ip, (25,))]
    outside = {p for h in both for peers in h.values() for p in peers
               if not ev.internal.get(p, True)}
    directory = bool(ev.talks_to(ip, AD_PORTS, None))
    exchange = ev.hint(ip, "exchange-smtp")
    spn = ev.hint(ip, "spn")
    if exchange or "smtpsvc" in {s.lower() for s in spn}:
        why = ("Exchange SMTP " + ", ".join(sorted(exchange))) if exchange else (
            "Kerberos service principal SMTPSVC")
        if outside and not directory:
            return ("edge_transport", 0.85, f"{why}; SMTP with "
                                            f"{_count(len(outside), 'outside host')}, no "
                                            "directory traffic")
        return ("hub_transport", 0.85, why)
    # A mail client submits with AUTH to one server; an Edge relays for many, unauthenticated.
    relays = bool(ev.answers(ip, (25,), "tcp")) or len(outside) >= 3
    if outside and relays and not directory and not ev.hint(ip, "smtp-auth"):
        return ("edge_transport", 0.5, f"SMTP with {_count(len(outside), 'outside host')} "
                                       "and no directory traffic")
    if internal_peers:
        return ("hub_transport", 0.8 if (25, "tcp") in smtp else 0.6,
                f"answers {_port_text(smtp)} to {_count(len(internal_peers), 'internal host')}")
    return None


def client_access(ev: HostEvidence, ip: str) -> Found | None:
    """Exchange RPC interfaces (EMSMDB, RFR), Exchange service principals, else HTTPS to many."""
    served = ev.serves(ip, _EXCHANGE_RPC)
    nspi = ev.serves(ip, ("NSPI",)) if not ev.serves(ip, _DC_INTERFACES) else {}
    spn = {s for s in ev.hint(ip, "spn") if _EXCHANGE_SPN.get(s.lower()) == "client_access"}
    cert = ev.hint(ip, "exchange-cert")
    if served or nspi or spn or cert:
        parts = []
        if served or nspi:
            parts.append("serves " + ", ".join(
                f"{n} ({how})" for n, how in sorted((served | nspi).items())))
        if spn:
            parts.append("Kerberos service principals " + ", ".join(sorted(spn)))
        if cert:  # weakest: a certificate name alone, last in the text
            parts.append("certificate names " + ", ".join(sorted(cert)[:3]))
        conf = min(0.95, 0.6 + 0.15 * (len(served) + len(nspi) + len(spn) + bool(cert) - 1))
        return ("client_access", round(conf, 2), "; ".join(parts))
    hits = ev.answers(ip, (443, 80, 135), "tcp")
    n = _n_peers(hits)
    if (443, "tcp") not in hits or n < 2:
        return None
    extra = 0.1 * ((80, "tcp") in hits) + 0.1 * ((135, "tcp") in hits)
    return ("client_access", min(0.95, 0.5 + 0.1 * (n - 1) + extra),
            f"answers {_port_text(hits)} to {_count(n, 'client')}")


def unified_messaging(ev: HostEvidence, ip: str) -> Found | None:
    """SIP with directory traffic is a UM server; SIP without it, a VoIP gateway."""
    answered = ev.answers(ip, SIP)
    reached = ev.talks_to(ip, SIP, None)
    if not answered and not reached:
        return None
    worker = any(p in (5065, 5066, 5067, 5068) for p, _ in answered)
    member = bool(ev.talks_to(ip, AD_PORTS, None) or ev.talks_to(ip, (25,)))
    sip = _port_text({**answered, **reached})
    if worker or member:
        return ("unified_messaging", 0.8, f"SIP {sip}" + (" with directory traffic"
                                                          if member else " (UM worker ports)"))
    return ("voip_gateway", 0.5, f"SIP {sip} without directory traffic")


SERVER_HEURISTICS: tuple[Callable[[HostEvidence, str], Found | None], ...] = (
    domain_controller, dns, mailbox, transport, client_access, unified_messaging)


def strong_server(ev: HostEvidence, ip: str) -> Found | None:
    """Server evidence that outweighs an address outside the internal networks."""
    found = domain_controller(ev, ip)
    if found:
        return found
    found = client_access(ev, ip)
    if found and not found[2].startswith(("answers", "certificate")):  # not HTTPS or a name only
        return found
    found = transport(ev, ip)
    if found and found[1] >= 0.85:
        return found
    return None


def initiator(ev: HostEvidence, ip: str) -> Found:
    """A host that only initiates: an admin workstation (RDP, WinRM) or a client."""
    admin = ev.talks_to(ip, (3389, 5985, 5986))
    if admin:
        return ("admin", 0.4, f"only initiates; management {_port_text(admin)}")
    reached = _n_peers(ev.initiated.get(ip, {}))
    how = ""
    if ev.hint(ip, "smtp-auth"):
        how = "; SMTP AUTH as a mail client"
    return ("client", 0.6, f"only initiates ({_count(ev.flows.get(ip, 0), 'flow')} to "
                           f"{_count(reached, 'host')}){how}")
