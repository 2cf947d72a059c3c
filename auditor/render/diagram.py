"""The role diagram: Exchange roles as boxes, documented and observed paths as labelled arrows.

Boxes sit in a fixed layout (Internet | Edge | Hub | Client Access | Mailbox | UM across the middle,
clients on top, domain controllers along the bottom) so diagrams of different audits compare at a
glance. Arrows are quadratic curves computed here, clipped to the boxes; arrows between the top and
bottom rows are routed through the gaps of the middle row, and labels are nudged along their arrow
until they stop overlapping boxes and other labels.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path

from auditor.audit.verdicts import without_control_messages
from auditor.render.diagram_layout import (
    LAYOUT,
    ROLE_ORDER,
    ROLE_TITLES,
    XLIM,
    YLIM,
    Scene,
    role_sort_key,
)

__all__ = ["ROLE_ORDER", "ROLE_TITLES", "edge_label", "plot_role_diagram", "role_sort_key"]

_FACE = {
    "internet": "#fde2e4", "voip_gateway": "#fde2e4", "ocs": "#fde2e4",
    "domain_controller": "#fff4cc", "dns": "#fff4cc", "witness": "#fff4cc",
    "client": "#eeeeee", "admin": "#eeeeee", "unknown": "#eeeeee",
}
_STYLE = {  # category -> colour, line style, legend text
    "design": ("#37474f", "-", "documented path"),
    "seen": ("#2e7d32", "-", "documented, seen"),
    "missing": ("#9e9e9e", "--", "documented, not seen (missing)"),
    "unexpected": ("#d62728", "-", "undocumented (unexpected)"),
    "blocked": ("#7f0000", ":", "refused / unanswered (blocked)"),
}
_CATEGORY_ORDER = ("design", "seen", "missing", "unexpected", "blocked")
_LABEL_FONTSIZE = 6.5
_VERDICT_CATEGORY = {"expected": "seen", "unexpected": "unexpected", "rejected": "blocked",
                     "unanswered": "blocked"}


@dataclass(frozen=True)
class _Rule:
    id: str
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    protos: tuple[str, ...]
    tokens: tuple[str, ...]
    expected: bool
    status: str


def _split(value) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(v for v in re.split(r"[;,/\s]+", value.strip()) if v)
    return tuple(str(v) for v in value)


def _port_tokens(ports) -> tuple[str, ...]:
    """Catalogue ports (numbers, 'a-b' ranges, rpc-dynamic) as label tokens ('RPC' for dynamic)."""
    items = re.split(r"[,;\s]+", ports.strip()) if isinstance(ports, str) else list(ports or ())
    out = []
    for item in items:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            item = f"{item[0]}-{item[1]}" if item[0] != item[1] else str(item[0])
        text = str(item).strip()
        if not text:
            continue
        out.append("RPC" if "dynamic" in text.lower() else text)
    return tuple(out)


def _catalogue_rules(catalogue) -> list[_Rule]:
    """Normalise a Catalogue, an iterable of rules or a rule-status frame into _Rule records."""
    if catalogue is None:
        return []
    if isinstance(catalogue, pd.DataFrame):
        records = catalogue.to_dict("records")
    else:
        records = [
            {k: getattr(r, k, None) for k in
             ("id", "source", "destination", "proto", "ports", "expected", "status")}
            for r in getattr(catalogue, "rules", catalogue)
        ]
    return [
        _Rule(
            id=str(r.get("id") or ""),
            sources=_split(r.get("source")),
            destinations=_split(r.get("destination")),
            protos=_split(r.get("proto")) or ("tcp",),
            tokens=_port_tokens(r.get("ports")),
            expected=bool(r.get("expected", True)) if r.get("expected") is not None else True,
            status=str(r.get("status") or ""),
        )
        for r in records
    ]


def _token_for_port(port: int, rule: _Rule | None, rpc: bool) -> str:
    """The label token of an observed destination port, in the rule's own terms where possible."""
    if rule is not None:
        for tok in rule.tokens:
            if tok == str(port):
                return tok
            m = re.fullmatch(r"(\d+)-(\d+)", tok)
            if m and int(m[1]) <= port <= int(m[2]):
                return tok
        if "RPC" in rule.tokens:
            return "RPC"
    if rpc and port != 135:
        return "RPC"
    return str(port)


def _token_key(token: str) -> tuple[int, str]:
    m = re.match(r"\d+", token)
    if token == "RPC":
        return (136, token)  # right after 135, which it always follows
    return (int(m[0]) if m else 1 << 20, token)


def _format_tokens(tokens: Iterable[str]) -> list[str]:
    toks = sorted(set(tokens), key=_token_key)
    if "135" in toks and "RPC" in toks:
        toks.remove("RPC")
        toks[toks.index("135")] = "135+RPC"
    if len(toks) > 6:
        toks = toks[:5] + [f"+{len(toks) - 5} more"]
    return toks


def edge_label(protos: dict[str, set[str]]) -> str:
    """Merge the ports of one role pair into a compact label, e.g. '53,88/tcp+udp' + '3268/tcp'."""
    tcp, udp = protos.get("tcp", set()), protos.get("udp", set())
    both = tcp & udp
    groups = [(both, "tcp+udp"), (tcp - both, "tcp"), (udp - both, "udp")]
    groups += [(set(), p) for p in sorted(protos) if p not in ("tcp", "udp")]
    lines = []
    for tokens, proto in groups:
        if proto in ("tcp+udp", "tcp", "udp") and not tokens:
            continue
        toks = _format_tokens(tokens)
        if not toks:
            lines.append(proto)
            continue
        chunks = [toks[i:i + 3] for i in range(0, len(toks), 3)]
        for chunk in chunks[:-1]:
            lines.append(",".join(chunk) + ",")
        lines.append(",".join(chunks[-1]) + "/" + proto)
    return "\n".join(lines)


def _versioned_keys(flows: pd.DataFrame) -> tuple[pd.Series, pd.Series, dict[str, str]]:
    """Box keys of each flow's ends, and box titles, for a coexistence audit.

    When the flows hold more than one Exchange version, boxes say their version ("Mailbox 2016"
    next to "Client Access 2010"); a role seen in two versions keeps its place for the version
    with more hosts and gets a second box `role@version` for the other.
    """
    src = flows["src_role"].fillna("").replace("", "unknown").astype(object)
    dst = flows["dst_role"].fillna("").replace("", "unknown").astype(object)
    if "src_version" not in flows or "dst_version" not in flows:
        return src, dst, {}
    ends = pd.DataFrame({"role": pd.concat([src, dst], ignore_index=True),
                         "version": pd.concat([flows["src_version"], flows["dst_version"]],
                                              ignore_index=True).fillna("").astype(str),
                         "ip": pd.concat([flows["src_ip"], flows["dst_ip"]], ignore_index=True)})
    ends = ends[ends["version"] != ""]
    if ends["version"].nunique() < 2:
        return src, dst, {}
    hosts = ends.drop_duplicates().groupby(["role", "version"]).size()
    main = {role: grp.droplevel(0).sort_values(ascending=False, kind="stable").index[0]
            for role, grp in hosts.groupby(level=0)}
    titles = {}
    for role, version in hosts.index:
        key = role if version == main[role] else f"{role}@{version}"
        titles[key] = f"{ROLE_TITLES.get(role, role)} {version}"

    def keyed(roles: pd.Series, versions: pd.Series) -> pd.Series:
        return pd.Series([r if not v or main.get(r) in (None, v) else f"{r}@{v}"
                          for r, v in zip(roles, versions.fillna("").astype(str), strict=True)],
                         index=roles.index, dtype=object)

    return keyed(src, flows["src_version"]), keyed(dst, flows["dst_version"]), titles


def _pick_role(text, present: set[str]) -> str:
    """One role of a finding's 'a|b' alternatives: the first present in the flows, else the first."""
    options = [r for r in re.split(r"[|;]", str(text or "")) if r] or ["unknown"]
    return next((r for r in options if r in present), options[0])


def _edges(catalogue, flows, findings):
    """Collect {(src_role, dst_role): {category: {proto: tokens}}} and the roles to draw."""
    rules = _catalogue_rules(catalogue)
    by_id = {r.id: r for r in rules}
    edges: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    weight: dict = defaultdict(int)
    roles: set[str] = set()

    def add(src, dst, category, proto, tokens):
        cell = edges[(src or "unknown", dst or "unknown")][category][proto]
        cell.update(tokens)

    def add_rule(rule, category, present=None):
        for s in rule.sources:
            for d in rule.destinations:
                if present is not None and not (s in present and d in present):
                    continue
                for p in rule.protos:
                    add(s, d, category, p, rule.tokens)

    if flows is None and findings is None:
        for rule in rules:
            add_rule(rule, "design")
        return edges, weight, roles

    if flows is not None and not flows.empty:
        f = without_control_messages(flows)
        src_key, dst_key, _ = _versioned_keys(f)
        roles |= set(src_key) | set(dst_key)
        cls = f["verdict"].map(_VERDICT_CATEGORY).fillna("unexpected")
        keys = pd.DataFrame({
            "src": src_key, "dst": dst_key,
            "cat": cls, "proto": f["proto"].astype(str), "port": f["dst_port"].astype(int),
            "rule": f["rule"].fillna("").astype(str),
            "rpc": f["rpc_interface"].fillna("").astype(str) != "",
        })
        for (src, dst, cat, proto, port, rule, rpc), n in keys.value_counts(sort=False).items():
            tokens = [] if proto not in ("tcp", "udp") else [
                _token_for_port(int(port), by_id.get(rule), bool(rpc))]
            add(src, dst, cat, proto, tokens)
            weight[(src, dst, cat)] += int(n)
        seen_pairs = set(zip(keys["rule"], keys["src"], keys["dst"], strict=True))
    else:
        seen_pairs = set()

    if findings is not None and not findings.empty:
        kind_cat = {"unexpected": "unexpected", "rejected": "blocked", "unanswered": "blocked",
                    "missing": "missing"}
        for row in findings.itertuples(index=False):
            cat = kind_cat.get(row.kind)
            if cat is None or (flows is not None and cat != "missing"):
                continue  # flows, when given, already say what was seen
            rule = by_id.get(str(row.rule))
            if cat == "missing" and rule is not None:
                tokens, protos = rule.tokens, rule.protos
            else:
                port = row.dst_port
                tokens = () if pd.isna(port) else (str(int(port)),)
                protos = (str(row.proto),)
            src, dst = _pick_role(row.src_role, roles), _pick_role(row.dst_role, roles)
            for p in protos:
                add(src, dst, cat, p, tokens)
            roles |= {src, dst}
        if flows is None:
            for rule in rules:
                if rule.status == "observed":
                    add_rule(rule, "seen", present=None)
    elif flows is not None:
        for rule in rules:
            if rule.status in ("observed", "not_applicable") or not rule.expected:
                continue
            for s in rule.sources:
                for d in rule.destinations:
                    if s in roles and d in roles and (rule.id, s, d) not in seen_pairs:
                        for p in rule.protos:
                            add(s, d, "missing", p, rule.tokens)
    return edges, weight, roles


def _draw_box(ax: Axes, role: str, geom, hosts: int | None, title: str | None = None) -> None:
    x, y, w, h = geom
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0.02,rounding_size=0.12",
                                facecolor=_FACE.get(role, "#e3f2fd"), edgecolor="#455a64",
                                linewidth=1.2, zorder=3))
    text = title or ROLE_TITLES.get(role, role)
    if hosts:
        text += f"\n{hosts} host{'s' if hosts != 1 else ''}"
    ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=4, parse_math=False,
            fontweight="bold" if role in LAYOUT and role not in _FACE else "normal")


def _draw_arrow(ax: Axes, scene: Scene, src: str, dst: str, k: int, category: str, label: str,
                weight: int) -> None:
    colour, style, _ = _STYLE[category]
    lw = 1.2 + (min(math.log10(weight), 4) * 0.5 if weight > 1 else 0)
    if src == dst:
        pts, (lx, ly) = scene.loop(src, k)
        if label:
            scene.reserve(lx, ly, label, _LABEL_FONTSIZE)
    else:
        pts, span = scene.route(src, dst, k)
        if label:
            lx, ly = scene.place_label(pts, span, label, _LABEL_FONTSIZE)
    ax.add_patch(FancyArrowPatch(path=Path(pts), arrowstyle="-|>", mutation_scale=11, color=colour,
                                 linestyle=style, linewidth=lw, zorder=2, shrinkA=0, shrinkB=0,
                                 joinstyle="round", capstyle="round"))
    if category == "blocked":
        x, y = pts[int(0.85 * (len(pts) - 1))]
        ax.plot(x, y, marker="X", markersize=9, color=colour, markeredgecolor="white", zorder=5)
    if label:
        ax.text(lx, ly, label, ha="center", va="center", fontsize=_LABEL_FONTSIZE, color=colour,
                zorder=6, parse_math=False, linespacing=1.1,
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor=colour,
                          linewidth=0.5, alpha=0.92))


def _host_counts(flows: pd.DataFrame | None) -> dict[str, int]:
    if flows is None or flows.empty:
        return {}
    src_key, dst_key, _ = _versioned_keys(flows)
    both = pd.concat([
        pd.DataFrame({"role": src_key, "ip": flows["src_ip"]}),
        pd.DataFrame({"role": dst_key, "ip": flows["dst_ip"]}),
    ])
    return both.drop_duplicates().groupby("role").size().to_dict()


def _inches_per_unit(ax: Axes) -> float:
    dpi = ax.figure.dpi  # the Axes' size now; a constrained layout may still shrink it a little
    return min(ax.bbox.width / dpi / (XLIM[1] - XLIM[0]), ax.bbox.height / dpi / (YLIM[1] - YLIM[0]))


def plot_role_diagram(catalogue=None, flows: pd.DataFrame | None = None,
                      findings: pd.DataFrame | None = None, ax: Axes | None = None) -> Axes:
    """Draw roles as boxes and paths as arrows: the design (catalogue only) or what was seen."""
    if ax is None:
        import matplotlib.pyplot as plt  # only when the caller gave no Axes: a notebook wants it

        ax = plt.figure(figsize=(16, 7.8), layout="constrained").add_subplot()
    ax.set_xlim(*XLIM)
    ax.set_ylim(*YLIM)
    ax.set_aspect("equal")
    ax.set_axis_off()
    design = flows is None and findings is None
    edges, weight, roles = _edges(catalogue, flows, findings)
    for src, dst in edges:
        roles |= {src, dst}
    ax.set_title("Documented Exchange paths (catalogue)" if design
                 else "Observed paths against the catalogue", fontsize=12)
    scene = Scene(roles, _inches_per_unit(ax))
    counts = _host_counts(flows)
    titles = _versioned_keys(flows)[2] if flows is not None and not flows.empty else {}
    for role, geom in scene.boxes.items():
        _draw_box(ax, role, geom, counts.get(role), titles.get(role))
    if not edges:
        ax.text(0.5, 0.5, "no paths to draw", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontsize=11)
    items = []
    for (src, dst), cats in edges.items():
        present = [c for c in _CATEGORY_ORDER if c in cats]
        for k, cat in enumerate(present):
            items.append((src, dst, k, cat, edge_label(cats[cat])))
    scene.plan((src, dst, k) for src, dst, k, _, _ in items)
    # Loops first (their labels cannot move), then long labels: they have the fewest free spots.
    items.sort(key=lambda it: (it[0] != it[1], -len(it[4]), it[:3]))
    for src, dst, k, cat, label in items:
        _draw_arrow(ax, scene, src, dst, k, cat, label, weight.get((src, dst, cat), 1))
    used = sorted({it[3] for it in items}, key=_CATEGORY_ORDER.index) or ["design"]
    handles = [
        Line2D([], [], color=_STYLE[c][0], linestyle=_STYLE[c][1], linewidth=1.6,
               marker="X" if c == "blocked" else None, label=_STYLE[c][2])
        for c in used
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=len(handles),
              frameon=False, fontsize=8)
    return ax
