"""Judge each flow by the catalogue of the Exchange versions at its two ends (coexistence).

Inventory hosts may carry `version:` (2010, 2013, 2016, 2019; default: the catalogue's first
version). The audit works on *qualified* roles: an Exchange role of a host becomes
`mailbox@2016`, and each rule's Exchange roles are qualified with the versions the rule is for
(its file's `versions`, or a coexistence rule's `source_versions`/`destination_versions`).
Non-Exchange roles (client, domain_controller, internet, ...) have no version and stay as they
are. The matching in `verdicts` is then unchanged: a 2010 rule can only match a flow whose
Exchange ends are 2010 hosts, a coexistence rule only the version pair it names, and missing
checks apply per version pair. `finish` turns the qualified roles back into plain roles plus
`src_version`/`dst_version` columns.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from auditor.schema import EXCHANGE_ROLES

# The bundled catalogue that describes each version; 2019 (and SE) are in exchange2016.
VERSION_CATALOGUES = {"2010": "exchange2010", "2013": "exchange2013", "2016": "exchange2016",
                      "2019": "exchange2016"}
COEXISTENCE = "coexistence"
FALLBACK_VERSION = "2010"  # a catalogue file without versions (local rules only)
_QUALIFIED = re.compile(r"\b([a-z_]+)@(\d{4})\b")


def qualified(role: str, version: str) -> str:
    """`mailbox@2016` for an Exchange role, the role itself otherwise."""
    return f"{role}@{version}" if role in EXCHANGE_ROLES and version else role


def split_role(text: str) -> tuple[str, str]:
    """(role, version) of a qualified role; ('client', '') for a plain one."""
    role, _, version = str(text).partition("@")
    return role, version


def default_version(catalogue) -> str:
    """The version hosts without `version:` have: the catalogue's first file's."""
    return getattr(catalogue, "default_version", "") or FALLBACK_VERSION


def host_version(host, default: str) -> str:
    """An Exchange host's version ('' for a host with no Exchange role)."""
    if not set(host.roles) & EXCHANGE_ROLES:
        return ""
    return getattr(host, "version", "") or default


def inventory_versions(inventory, default: str) -> list[str]:
    """The Exchange versions present: hosts' versions; networks with Exchange roles count as the default."""
    found = {host_version(h, default) for h in inventory.hosts} - {""}
    entries = [n.roles for n in inventory.networks] + [tuple(inventory.default_roles or ())]
    if any(set(roles) & EXCHANGE_ROLES for roles in entries):
        found.add(default)
    return sorted(found)


def with_version_catalogues(catalogue, inventory):
    """The catalogue plus the bundled catalogue of every inventory version it lacks, and the
    coexistence rules when the inventory holds more than one catalogue's versions."""
    from auditor.catalogue.loader import Catalogue, load_catalogue

    default = default_version(catalogue)
    present = inventory_versions(inventory, default)
    # A version is covered by its own rules: coexistence rules (those naming both ends'
    # versions) only add the pairs between versions, so `--catalogue coexistence` alone still
    # brings in the catalogue of each version present.
    covered = {v for r in catalogue.rules if not (r.source_versions or r.destination_versions)
               for v in r.versions}
    names = {VERSION_CATALOGUES[v] for v in present if v not in covered}
    generations = {VERSION_CATALOGUES[v] for v in present}
    if len(generations) > 1 and not any(r.source_versions for r in catalogue.rules):
        names.add(COEXISTENCE)
    if not names:
        return catalogue
    order = [n for n in (*VERSION_CATALOGUES.values(), COEXISTENCE) if n in names]
    extra = load_catalogue(list(dict.fromkeys(order)), replace=True)
    taken = {r.id for r in catalogue.rules}
    rules = catalogue.rules + tuple(r for r in extra.rules if r.id not in taken)
    citations = dict(extra.citations) | dict(catalogue.citations)
    return Catalogue(rules, catalogue.sources + extra.sources, tuple(citations.items()),
                     catalogue.default_version or default)


@dataclasses.dataclass(frozen=True)
class VersionPlan:
    """The qualified inventory and catalogue of one audit, and how to undo the qualification."""

    inventory: object
    catalogue: object
    original: object  # the catalogue before qualification (rule texts for the rules frame)
    default: str
    versions: tuple[str, ...]  # Exchange versions in the inventory
    by_ip: dict[str, str]  # address -> version of the Exchange host there

    @property
    def mixed(self) -> bool:
        """More than one version: findings' details then name each end's version."""
        return len(self.versions) > 1

    def qualify_hosts(self, hosts: pd.DataFrame) -> pd.DataFrame:
        """The audit's per-address frame (ip, name, roles) with qualified roles and a version."""
        version = pd.Series([self.by_ip.get(ip, self.default) for ip in hosts["ip"]],
                            index=hosts.index, dtype=object)
        roles = [tuple(qualified(r, v) for r in rs) for rs, v in zip(hosts["roles"], version,
                                                                       strict=True)]
        has_exchange = np.array([bool(set(rs) & EXCHANGE_ROLES) for rs in hosts["roles"]], bool)
        return hosts.assign(roles=roles, version=np.where(has_exchange, version, ""))


def plan_versions(inventory, catalogue) -> VersionPlan:
    """Qualify the inventory's Exchange roles with host versions, and the rules with theirs."""
    catalogue = with_version_catalogues(catalogue, inventory)
    default = default_version(catalogue)
    present = inventory_versions(inventory, default) or [default]
    hosts, by_ip = [], {}
    for host in inventory.hosts:
        version = host_version(host, default)
        hosts.append(dataclasses.replace(host, roles=tuple(qualified(r, version) for r in host.roles)))
        by_ip.update({ip: version for ip in host.addresses if version})
    networks = tuple(dataclasses.replace(n, roles=_qualify(n.roles, [default]))
                     for n in inventory.networks)
    inv = dataclasses.replace(inventory, hosts=tuple(hosts), networks=networks,
                              default_roles=_qualify(inventory.default_roles or (), [default]))
    rules, seen = [], set()
    for rule in catalogue.rules:
        src = _qualify(rule.source, _versions_for(rule.source_versions or rule.versions, present))
        dst = _qualify(rule.destination,
                       _versions_for(rule.destination_versions or rule.versions, present))
        key = (src, dst, rule.proto, rule.ports, rule.icmp_types)
        if key in seen:  # the same path from another version's file (AD, clients): once is enough
            src = dst = ()
        seen.add(key)
        rules.append(dataclasses.replace(rule, source=src, destination=dst))
    qualified_cat = dataclasses.replace(catalogue, rules=tuple(rules))
    return VersionPlan(inv, qualified_cat, catalogue, default, tuple(present), by_ip)


def _versions_for(versions: Iterable[str], present: list[str]) -> list[str]:
    """The rule's versions among those present (all present when the rule names none)."""
    versions = tuple(versions)
    return [v for v in present if not versions or v in versions]


def _qualify(roles: Iterable[str], versions: list[str]) -> tuple[str, ...]:
    """Each Exchange role once per version (none when no version applies); other roles as they are."""
    out = []
    for role in roles:
        out += [qualified(role, v) for v in versions] if role in EXCHANGE_ROLES else [role]
    return tuple(dict.fromkeys(out))


# ---- back to plain roles ----


def plain_roles(values: pd.Series) -> pd.Series:
    """Qualified role text (also ';'/'|'-joined lists) without the versions."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
    plain = np.array([_plain_text(u) for u in uniques], dtype=object)
    return pd.Series(plain[codes], index=values.index, dtype=object)


def _plain_text(text: object) -> str:
    """'mailbox@2016|mailbox@2019' -> 'mailbox'; 'a@2016;b@2016' -> 'a;b'."""
    text = _QUALIFIED.sub(r"\1", str(text))
    for sep in (";", "|"):
        if sep in text:
            text = sep.join(dict.fromkeys(text.split(sep)))
    return text


def _label(role: str, version: str) -> str:
    return f"{role} {version}" if version else role


def finish(result, plan: VersionPlan):
    """Findings, rules and hosts of a qualified audit with plain roles and each end's version."""
    findings = finish_findings(result.findings, plan)
    by_id = {r.id: r for r in plan.original.rules}
    rules = result.rules.assign(
        source=result.rules["id"].map(lambda i: ";".join(by_id[i].source)).astype(object),
        destination=result.rules["id"].map(lambda i: ";".join(by_id[i].destination)).astype(object),
    ) if not result.rules.empty else result.rules
    hosts = result.hosts.assign(roles=plain_roles(result.hosts["roles"])) if not result.hosts.empty \
        else result.hosts
    summary = {**result.summary, "versions": list(plan.versions)}
    return dataclasses.replace(result, findings=findings, rules=rules, hosts=hosts,
                               summary=summary)


def finish_findings(findings: pd.DataFrame, plan: VersionPlan) -> pd.DataFrame:
    """Plain roles, versions from the address (or the qualified role text), versioned details."""
    if findings.empty:
        return findings
    out = findings.copy()
    # a finding table repeats few role texts and details (37 details in 4348 findings): each
    # distinct one is worked out once
    version_of = functools.cache(_version_of)
    for side in ("src", "dst"):
        text = out[f"{side}_role"].astype(object)
        current = out[f"{side}_version"].astype(object).fillna("")
        out[f"{side}_version"] = [
            have or plan.by_ip.get(ip) or version_of(role)
            for have, ip, role in zip(current, out[f"{side}_ip"].tolist(), text, strict=True)]
        out[f"{side}_role"] = plain_roles(text)
    detail = functools.cache(functools.partial(_versioned_detail, mixed=plan.mixed))
    out["detail"] = [detail(*values) for values in zip(*(out[c].tolist() for c in (
        "detail", "src_role", "src_version", "dst_role", "dst_version")), strict=True)]
    return out


def _version_of(text: str) -> str:
    """The one version a qualified role text names ('' when none or several)."""
    versions = {v for _, v in _QUALIFIED.findall(str(text))}
    return versions.pop() if len(versions) == 1 else ""


def _versioned_detail(detail, src_role, src_version, dst_role, dst_version, mixed) -> str:
    """The detail with plain roles; with several versions, each end's version next to its role."""
    text = str(detail)
    if mixed and f"{src_role} -> {dst_role} on" in _QUALIFIED.sub(r"\1", text):
        text = _QUALIFIED.sub(r"\1", text).replace(
            f"{src_role} -> {dst_role} on",
            f"{_label(src_role, src_version)} -> {_label(dst_role, dst_version)} on", 1)
        return text
    if mixed:
        return _QUALIFIED.sub(r"\1 \2", text)
    return _QUALIFIED.sub(r"\1", text)
