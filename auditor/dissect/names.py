"""Host names and role hints from tshark's JSON trees (the packets select.py picks for names).

Sources, each a `source` value of schema.HOST_NAME_COLUMNS: DNS A/AAAA/PTR answers (also over
mDNS and LLMNR), NBNS, browser announcements, Kerberos (machine accounts, service principals,
the realm a KDC serves), SMTP greeting and EHLO, TLS SNI and certificate subject/SAN, the DHCP
host name, the DC-locator (CLDAP netlogon) reply, cleartext LDAP rootDSE `dnsHostName` and SMB
tree connects. The same packets give role hints (`hint`): a DC-locator reply, a browser
announcement with the domain-controller bit, DNS SRV `_ldap._tcp.dc._msdcs` answers, Exchange
SMTP extensions, SMTP AUTH by a mail client, Kerberos service principals (exchangeMDB, ...).
Every string is capture data: only names that look like host names are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from auditor.dissect.tshark import _first, _int, _nodes, _Packet, _values

# Capture sources of names, best first (the audit and the proposal pick a host's name by it).
NAME_SOURCES = ("cldap", "dns", "ldap", "nbns", "browser", "smtp-ehlo", "smtp-banner",
                "kerberos", "smb", "tls-certificate", "tls-sni", "dhcp", "llmnr", "mdns")

# Plain `||` chains: the set syntax changed between tshark 3.x ({a b}) and 4.x ({a, b}).
NAMES_FILTER = " || ".join(
    ["(dns.flags.response == 1 && dns.count.answers > 0)", "smtp.response.code == 220",
     "smtp.response.code == 250", 'upper(smtp.req.command) == "EHLO"',
     'upper(smtp.req.command) == "HELO"', 'upper(smtp.req.command) == "AUTH"', "nbns.addr",
     "mscldap.netlogon.flags", "browser.server", "dhcp.option.hostname",
     "tls.handshake.extensions_server_name", "tls.handshake.type == 11", "ldap.protocolOp == 4",
     "smb2.tree"]
    + [f"kerberos.msg_type == {t}" for t in (10, 11, 12, 13)]
)

# EHLO keywords only Exchange sends ([MS-OXSMTP]: X-EXPS, X-ANONYMOUSTLS; XEXCH50 up to 2007)
EXCHANGE_SMTP = ("X-EXPS", "X-ANONYMOUSTLS", "XEXCH50", "X-EXCHANGEAUTH", "X-LINK2STATE")
EXCHANGE_BANNER = "Microsoft ESMTP MAIL Service"
_SPN_SERVICES = ("exchangemdb", "exchangeab", "exchangerfr", "smtpsvc", "smtp", "ldap", "gc",
                 "host", "cifs", "http", "dns", "sip")

_HOSTNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NETBIOS = re.compile(r"^(?P<name>.+?)<(?P<suffix>[0-9a-fA-F]{2})>")
_SMB_TREE = re.compile(r"^\\\\(?P<host>[^\\]+)\\")
_CN = "2.5.4.3"


def host_rows(pkt: _Packet) -> Iterator[dict]:
    """(ip, name, source, hint) rows one dissected packet gives."""
    for proto, reader in _READERS:
        for tree in pkt.layers.get(proto, ()):
            for row in reader(pkt, tree):
                yield {"hint": ""} | row
    for proto in ("mdns", "llmnr"):
        for tree in pkt.layers.get(proto, ()):
            for row in _dns_names(pkt, tree):
                yield row | {"source": proto, "hint": ""}


def _name(text) -> str:
    text = str(text or "").strip().rstrip(".")
    return text if _HOSTNAME.match(text) and not text.replace(".", "").isdigit() else ""


def _row(ip, name, source: str, hint: str = "") -> dict:
    return {"ip": str(ip or ""), "name": name, "source": source, "hint": hint}


# --- DNS ------------------------------------------------------------------------------------------


def _dns_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    aliases: dict[str, list[str]] = {}  # CNAME target -> the names pointing at it
    for node in _nodes(tree):
        if "dns.cname" in node:
            aliases.setdefault(_name(node["dns.cname"]).lower(), []).append(
                _name(node.get("dns.resp.name")))
    for node in _nodes(tree):
        name = _name(node.get("dns.resp.name"))
        for key in ("dns.a", "dns.aaaa"):
            if key in node and name:
                for alias in [name, *aliases.get(name.lower(), ())]:
                    if alias:
                        yield _row(node[key], alias, "dns")
        if "dns.ptr.domain_name" in node:
            ip = _reverse_ip(str(node.get("dns.resp.name", "")))
            ptr = _name(node["dns.ptr.domain_name"])
            if ip and ptr:
                yield _row(ip, ptr, "dns")
        if "dns.srv.target" in node:
            owner = _srv_owner(node)
            target = _name(node["dns.srv.target"])
            if target and owner.startswith("_ldap._tcp.") and "dc._msdcs" in owner:
                yield _row("", target, "dns", "srv-dc:" + target)


def _srv_owner(node: dict) -> str:
    """An SRV record's owner name: tshark 3.x/4.0 split it into service, proto and the rest
    (`_ldap`, `_tcp`, `dc._msdcs.corp.test`), later versions give it whole."""
    parts = [str(node.get(k) or "") for k in ("dns.srv.service", "dns.srv.proto")]
    rest = str(node.get("dns.srv.name") or node.get("dns.resp.name") or "")
    if all(parts) and not rest.lower().startswith(parts[0].lower() + "."):
        rest = ".".join([*parts, rest])
    return rest.lower()


def _reverse_ip(name: str) -> str:
    labels = name.lower().rstrip(".").split(".")
    if labels[-2:] == ["in-addr", "arpa"] and len(labels) == 6:
        return ".".join(reversed(labels[:4]))
    if labels[-2:] == ["ip6", "arpa"] and len(labels) == 34:
        nibbles = "".join(reversed(labels[:32]))
        return ":".join(nibbles[i:i + 4] for i in range(0, 32, 4))
    return ""


# --- SMTP -----------------------------------------------------------------------------------------


def _smtp_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    for node in _nodes(tree):
        code = _int(node.get("smtp.response.code"))
        if code == 220:
            banner = str(_first(node, "smtp.rsp.parameter", ""))
            words = banner.split()
            name = _name(words[0]) if words else ""
            if name:
                yield _row(pkt.src, name, "smtp-banner")
            if EXCHANGE_BANNER in banner:  # Exchange's default greeting, unless changed
                yield _row(pkt.src, "", "smtp-banner", "exchange-smtp:Microsoft ESMTP banner")
        if code == 250:
            lines = [str(v).split()[0].upper() for v in _values(node, "smtp.rsp.parameter")
                     if str(v).split()]
            for keyword in dict.fromkeys(k for k in lines if k in EXCHANGE_SMTP):
                yield _row(pkt.src, "", "smtp-ehlo", "exchange-smtp:" + keyword)
        command = str(node.get("smtp.req.command", "")).upper()
        if command in ("EHLO", "HELO"):
            name = _name(node.get("smtp.req.parameter"))
            if name:
                yield _row(pkt.src, name, "smtp-ehlo")
        elif command == "AUTH":
            yield _row(pkt.src, "", "smtp-ehlo", "smtp-auth")


# --- NetBIOS, browser, SMB --------------------------------------------------------------------------


def _nbns_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    for node in _nodes(tree):
        if "nbns.addr" not in node or "nbns.name" not in node:
            continue
        match = _NETBIOS.match(str(node["nbns.name"]))
        group = _int(_first(node, "nbns.nb_flags.group"), 1)
        # <00> workstation and <20> server names are per host; group names are not
        if match and match["suffix"] in ("00", "20") and group == 0:
            name = _name(match["name"].strip())
            for addr in _values(node, "nbns.addr"):
                if name:
                    yield _row(addr, name, "nbns")


def _browser_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    # a Domain/Workgroup Announcement (0x0c) names the workgroup in `server`: its sender is the
    # master browser named in `mb_server`
    workgroup = _int(_first(tree, "browser.command")) == 0x0C
    name = _name(_first(tree, "browser.mb_server" if workgroup else "browser.server"))
    if not name:
        return
    dc = any(_int(v) for key in ("browser.server_type.domain_controller",
                                 "browser.server_type.backup_controller")
             for v in _values(tree, key))
    yield _row(pkt.src, name, "browser", "browser-dc:" + name if dc else "")


def _smb2_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    if _int(_first(tree, "smb2.flags.response")):
        return
    for value in _values(tree, "smb2.tree"):
        match = _SMB_TREE.match(str(value))
        name = _name(match["host"]) if match else ""
        if name:
            yield _row(pkt.dst, name, "smb")


# --- Kerberos ---------------------------------------------------------------------------------------


def _kerberos_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    msg_type = _int(_first(tree, "kerberos.msg_type"))
    if msg_type == 10:  # AS-REQ: the client's NetBIOS address and machine account
        for value in _values(tree, "kerberos.addr_nb"):
            name = _name(str(value).strip())
            if name:
                yield _row(pkt.src, name, "kerberos")
    if msg_type in (11, 13):  # a reply: the sender is the KDC of that realm
        realm = _name(_first(tree, "kerberos.crealm") or _first(tree, "kerberos.realm"))
        if realm:
            yield _row(pkt.src, "", "kerberos", "kdc:" + realm.upper())
    if msg_type == 12:  # TGS-REQ: the service principal names the host serving it
        for node in _nodes(tree):
            body = node.get("kerberos.req_body_element")
            if not isinstance(body, dict):
                continue
            parts = [str(v) for v in _values(body.get("kerberos.sname_element", {}),
                                             "kerberos.SNameString")]
            if len(parts) >= 2 and parts[0].lower() in _SPN_SERVICES:
                host = _name(parts[1].split(":")[0])
                if host:
                    yield _row("", host, "kerberos", "spn:" + parts[0])
    client = pkt.src if msg_type in (10, 12) else pkt.dst  # replies go to the client
    for value in _values(tree, "kerberos.CNameString"):
        text = str(value)
        if text.endswith("$"):  # a machine account names the host itself
            name = _name(text[:-1].upper())
            if name:
                yield _row(client, name, "kerberos")


# --- CLDAP and LDAP -----------------------------------------------------------------------------------


def _cldap_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    """A DC-locator reply ([MS-ADTS] 6.3.3): the DC's DNS and NetBIOS names and its flags."""
    for node in _nodes(tree):
        if "mscldap.netlogon.flags" not in node:
            continue
        host = _name(node.get("mscldap.hostname"))
        flags = node.get("mscldap.netlogon.flags_tree", {})
        is_dc = any(_int(flags.get(f"mscldap.netlogon.flags.{f}")) for f in ("ds", "kdc", "pdc"))
        if host:
            yield _row(pkt.src, host, "cldap", "dc-locator:" + host if is_dc else "")
        elif is_dc:
            yield _row(pkt.src, "", "cldap", "dc-locator:" + pkt.src)
        nb = _name(node.get("mscldap.nb_hostname"))
        if nb:
            yield _row(pkt.src, nb, "cldap")


def _ldap_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    """rootDSE searchResEntry (empty objectName) with dnsHostName, in cleartext LDAP."""
    for node in _nodes(tree):
        if "ldap.type" not in node or str(node["ldap.type"]).lower() != "dnshostname":
            continue
        for value in _values(node, "ldap.AttributeValue"):
            name = _name(_text(value))
            if name:
                yield _row(pkt.src, name, "ldap", "ldap-rootdse:" + name)


def _text(value) -> str:
    """An FT_BYTES value as tshark prints it (colon-separated hex), else the value, as text."""
    value = str(value)
    if re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*", value):
        try:
            return bytes.fromhex(value.replace(":", "")).decode("ascii")
        except (UnicodeDecodeError, ValueError):
            return ""
    return value


# --- TLS and DHCP -----------------------------------------------------------------------------------


def _tls_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    for value in _values(tree, "tls.handshake.extensions_server_name"):
        name = _name(value)
        if name:
            yield _row(pkt.dst, name, "tls-sni")
    # the first certificate of the chain is the server's own: its subject CN and SAN dNSNames
    cert = next((n["x509af.signedCertificate_element"] for n in _nodes(tree)
                 if isinstance(n.get("x509af.signedCertificate_element"), dict)), None)
    if cert is None:
        return
    names = []
    for node in _nodes(cert.get("x509af.subject_tree", {})):
        if str(node.get("x509if.id", "")) == _CN:
            names += [v for key in ("x509sat.printableString", "x509sat.uTF8String",
                                    "x509sat.teletexString") for v in _values(node, key)]
    names += _values(cert, "x509ce.dNSName")
    for value in dict.fromkeys(str(v) for v in names):
        name = _name(value)
        if name:
            # an Autodiscover name on a server's own certificate is Exchange Client Access's
            hint = "exchange-cert:" + name if name.lower().startswith("autodiscover.") else ""
            yield _row(pkt.src, name, "tls-certificate", hint)


def _dhcp_names(pkt: _Packet, tree: dict) -> Iterator[dict]:
    name = _name(_first(tree, "dhcp.option.hostname"))
    if not name:
        return
    # a server's reply (BOOTREPLY; dnsmasq echoes the client's host name in its ACK) names the
    # client it leases to, never the server that sends it
    if _int(_first(tree, "dhcp.type")) == 2:
        candidates = (_first(tree, "dhcp.ip.your"), _first(tree, "dhcp.ip.client"))
    else:
        candidates = (_first(tree, "dhcp.option.requested_ip_address"),
                      _first(tree, "dhcp.ip.client"), pkt.src)
    ip = next((str(v) for v in candidates if v and str(v) != "0.0.0.0"), "")
    if ip:
        yield _row(ip, name, "dhcp")


_READERS = (("dns", _dns_names), ("smtp", _smtp_names), ("nbns", _nbns_names),
            ("browser", _browser_names), ("kerberos", _kerberos_names), ("cldap", _cldap_names),
            ("ldap", _ldap_names), ("tls", _tls_names), ("dhcp", _dhcp_names),
            ("smb2", _smb2_names))
