"""Role and host matrices of audited flows; the role diagram lives in `auditor.render.diagram`.

Every function draws on an Axes (or Figure) it is given and returns it; with none given it makes a
new pyplot figure sized to the content. Nothing here shows, saves or changes matplotlib settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from auditor.audit.verdicts import without_control_messages
from auditor.render.diagram_layout import ROLE_ORDER, role_sort_key
from auditor.render.text import printable

__all__ = [
    "ROLE_ORDER",
    "SERVICE_FAMILIES",
    "format_bytes",
    "plot_host_matrix",
    "plot_role_matrix",
    "plot_role_matrix_facets",
]

# Cell classes, from best to worst; a cell takes the worst verdict of its flows.
CELL_CLASSES = ("expected", "unexpected", "blocked")
_VERDICT_CLASS = {"expected": 0, "unexpected": 1, "rejected": 2, "unanswered": 2, "cut_off": 0}
_CELL_COLOURS = {
    "none": (0.96, 0.96, 0.96),
    "expected": (0.55, 0.80, 0.55),
    "unexpected": (0.98, 0.60, 0.25),
    "blocked": (0.55, 0.08, 0.08),
}
_CELL_LABELS = {
    "expected": "expected (documented)",
    "unexpected": "unexpected (undocumented)",
    "blocked": "blocked (rejected / unanswered)",
}
_HATCH = "//"

# Facet families: catalogue service names grouped into one small matrix each; "other" takes
# the rest.
SERVICE_FAMILIES = {
    "smtp": ("smtp",),
    "ldap/gc": ("ldap", "gc", "ldaps"),
    "kerberos": ("kerberos", "kpasswd"),
    "rpc": ("rpc", "epm", "mapi", "dcerpc"),
    "http": ("http", "https"),
    "sip/rtp": ("sip", "rtp"),
    "replication/cluster": ("replication", "cluster"),
    "dns": ("dns",),
    "smb/netbios": ("smb", "netbios"),
    "management": ("management", "rdp", "winrm"),
}
_VALUES = ("flows", "bytes")


def format_bytes(n: float) -> str:
    """Return a byte count as a short human-readable string (decimal units)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _new_axes(width: float, height: float) -> Axes:
    import matplotlib.pyplot as plt  # only when the caller gave no Axes: a notebook wants it shown

    fig = plt.figure(figsize=(width, height), layout="constrained")
    return fig.add_subplot()


def _check_value(value: str) -> None:
    if value not in _VALUES:
        raise ValueError(f"value must be one of {', '.join(_VALUES)}, not {value!r}")


def _cells(flows: pd.DataFrame, src: pd.Series, dst: pd.Series) -> pd.DataFrame:
    """Aggregate flows per (src, dst) key: flows, bytes, worst class and its flow count."""
    cls = flows["verdict"].map(_VERDICT_CLASS).fillna(1).astype(int)
    frame = pd.DataFrame(
        {
            "src": src.to_numpy(),
            "dst": dst.to_numpy(),
            "bytes": (flows["src_bytes"].astype("int64") + flows["dst_bytes"].astype("int64"))
            .to_numpy(),
            "cls": cls.to_numpy(),
        }
    )
    grouped = frame.groupby(["src", "dst"], sort=False)
    out = grouped.agg(flows=("cls", "size"), bytes=("bytes", "sum"), cls=("cls", "max"))
    worst = frame.merge(out["cls"].rename("worst").reset_index(), on=["src", "dst"])
    out["worst_flows"] = (
        worst[worst["cls"] == worst["worst"]].groupby(["src", "dst"], sort=False).size()
    )
    return out


def _draw_matrix(
    ax: Axes,
    cells: pd.DataFrame,
    rows: list[str],
    cols: list[str],
    *,
    value: str,
    row_labels: list[str],
    col_labels: list[str],
    fontsize: float = 9,
    grid: tuple[int, int] | None = None,
) -> None:
    """Draw the coloured grid, cell texts, hatching for blocked cells and tick labels."""
    r_index = {r: i for i, r in enumerate(rows)}
    c_index = {c: j for j, c in enumerate(cols)}
    img = np.empty((len(rows), len(cols), 3))
    img[:] = _CELL_COLOURS["none"]
    for (src, dst), cell in cells.iterrows():
        i, j = r_index[src], c_index[dst]
        cls = CELL_CLASSES[int(cell["cls"])]
        img[i, j] = _CELL_COLOURS[cls]
        dark = cls == "blocked"
        text = str(int(cell["flows"])) if value == "flows" else format_bytes(cell["bytes"])
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black", fontweight="bold", parse_math=False)
        if cls != "expected" and int(cell["worst_flows"]) != int(cell["flows"]):
            # A mixed cell: say how many flows earned the colour.
            ax.text(j, i + 0.3, f"{int(cell['worst_flows'])} {cls}", ha="center", va="center",
                    fontsize=fontsize * 0.65, color="white" if dark else "black", parse_math=False)
        if dark:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch=_HATCH,
                                   edgecolor=(1, 1, 1, 0.35), linewidth=0))
    ax.imshow(img, aspect="auto", interpolation="nearest")
    if grid is not None:  # a shared grid size keeps cells equal across facets, top left aligned
        ax.set_xlim(-0.5, grid[1] - 0.5)
        ax.set_ylim(grid[0] - 0.5, -0.5)
        ax.xaxis.tick_top()
    top = grid is not None
    ax.set_xticks(range(len(cols)), col_labels, rotation=35, ha="left" if top else "right",
                  rotation_mode="anchor", parse_math=False)
    ax.set_yticks(range(len(rows)), row_labels, parse_math=False)
    ax.set_xticks(np.arange(-0.5, len(cols), 1), minor=True)
    ax.set_yticks(np.arange(-0.5, len(rows), 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def _legend_handles() -> list[Patch]:
    return [
        Patch(facecolor=_CELL_COLOURS[c], label=_CELL_LABELS[c],
              hatch=_HATCH if c == "blocked" else None, edgecolor="white")
        for c in CELL_CLASSES
    ]


def _empty(ax: Axes, message: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes,
            color="0.4", parse_math=False)


def _roles(flows: pd.DataFrame, column: str) -> pd.Series:
    return flows[column].fillna("").astype(str).replace("", "unknown")


def plot_role_matrix(flows: pd.DataFrame, ax: Axes | None = None, *, value: str = "flows") -> Axes:
    """Heatmap of source x destination role: flows (or bytes), coloured by the worst verdict."""
    _check_value(value)
    flows = without_control_messages(flows)
    src, dst = _roles(flows, "src_role"), _roles(flows, "dst_role")
    rows = sorted(set(src), key=role_sort_key)
    cols = sorted(set(dst), key=role_sort_key)
    if ax is None:
        ax = _new_axes(3.5 + 0.8 * max(len(cols), 2), 2.2 + 0.45 * max(len(rows), 2))
    unit = "flows" if value == "flows" else "bytes, both directions"
    ax.set_title(f"Traffic by role pair ({unit})")
    ax.set_xlabel("destination role (responder)")
    ax.set_ylabel("source role (initiator)")
    if flows.empty:
        _empty(ax, "no flows")
    else:
        cells = _cells(flows, src, dst)
        _draw_matrix(ax, cells, rows, cols, value=value, row_labels=rows, col_labels=cols)
    ax.legend(handles=_legend_handles(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
              fontsize=8, frameon=False)
    return ax


def service_family(service: str) -> str:
    """Return the facet family of a catalogue service name ("other" when unknown)."""
    for family, members in SERVICE_FAMILIES.items():
        if service in members:
            return family
    return "other"


def plot_role_matrix_facets(
    flows: pd.DataFrame, fig: Figure | None = None, *, value: str = "flows"
) -> Figure:
    """One small role matrix per service family, with one legend for the figure."""
    _check_value(value)
    flows = without_control_messages(flows)
    families = flows["service"].fillna("").astype(str).map(service_family)
    order = [f for f in (*SERVICE_FAMILIES, "other") if (families == f).any()]
    parts = []
    for family in order:
        part = flows[families == family]
        src, dst = _roles(part, "src_role"), _roles(part, "dst_role")
        parts.append((family, part, src, dst, sorted(set(src), key=role_sort_key),
                      sorted(set(dst), key=role_sort_key)))
    grid = (max((len(p[4]) for p in parts), default=1), max((len(p[5]) for p in parts), default=1))
    ncols = min(3, max(len(order), 1))
    nrows = max(1, -(-len(order) // ncols))
    if fig is None:
        import matplotlib.pyplot as plt

        size = (ncols * (1.8 + 0.55 * grid[1]), nrows * (1.6 + 0.4 * grid[0]) + 0.8)
        fig = plt.figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if not order:
        _empty(axes[0], "no flows")
        axes[0].set_title("Traffic by role pair and service")
    for ax, (family, part, src, dst, rows, cols) in zip(axes, parts, strict=False):
        _draw_matrix(ax, _cells(part, src, dst), rows, cols, value=value,
                     row_labels=rows, col_labels=cols, fontsize=8, grid=grid)
        ax.set_title(f"{family} ({len(part)} flow{'s' if len(part) != 1 else ''})", fontsize=10)
        ax.tick_params(labelsize=7)
    for ax in axes[len(order):]:
        if order:
            ax.set_visible(False)
    fig.suptitle("Traffic by role pair and service family (rows: source, columns: destination)")
    fig.legend(handles=_legend_handles(), loc="outside lower center", ncols=3, fontsize=8,
               frameon=False)
    return fig


def _host_table(flows: pd.DataFrame) -> pd.DataFrame:
    """One row per address: display label, first role, flow count and bytes (either side)."""
    def side(prefix: str) -> pd.DataFrame:
        roles = flows[f"{prefix}_roles"].fillna("").astype(str).str.split(";").str[0]
        roles = roles.where(roles != "", _roles(flows, f"{prefix}_role"))
        return pd.DataFrame({
            "ip": flows[f"{prefix}_ip"].astype(str).to_numpy(),
            "name": flows[f"{prefix}_name"].fillna("").astype(str).to_numpy(),
            "role": roles.to_numpy(),
            "bytes": (flows["src_bytes"] + flows["dst_bytes"]).astype("int64").to_numpy(),
        })

    both = pd.concat([side("src"), side("dst")], ignore_index=True)
    hosts = both.groupby("ip", sort=False).agg(
        name=("name", lambda s: next((v for v in s if v), "")),
        role=("role", "first"),
        flows=("bytes", "size"),
        bytes=("bytes", "sum"),
    )
    names = hosts["name"].where(hosts["name"] != "", hosts.index.to_series())
    hosts["label"] = (names + " [" + hosts["role"] + "]").map(printable)  # no control glyphs
    return hosts


def plot_host_matrix(
    flows: pd.DataFrame, ax: Axes | None = None, *, value: str = "flows", max_hosts: int = 30
) -> Axes:
    """Heatmap of source host x destination host for small environments (busiest max_hosts)."""
    _check_value(value)
    flows = without_control_messages(flows)
    if flows.empty:
        if ax is None:
            ax = _new_axes(6, 4)
        ax.set_title("Traffic by host pair")
        ax.set_xlabel("destination host (responder)")
        ax.set_ylabel("source host (initiator)")
        _empty(ax, "no flows")
        return ax
    hosts = _host_table(flows)
    keep = hosts.sort_values(value, ascending=False).index[:max_hosts]
    other = len(hosts) - len(keep)
    other_key = f"other ({other} hosts)"
    label = hosts["label"].to_dict()
    label[other_key] = other_key
    kept = set(keep)
    src = flows["src_ip"].astype(str).where(flows["src_ip"].astype(str).isin(kept), other_key)
    dst = flows["dst_ip"].astype(str).where(flows["dst_ip"].astype(str).isin(kept), other_key)

    def order(keys: set[str]) -> list[str]:
        return sorted(keys, key=lambda k: (k == other_key,
                                           role_sort_key(hosts["role"].get(k, "unknown")),
                                           label[k]))

    rows, cols = order(set(src)), order(set(dst))
    if ax is None:
        ax = _new_axes(4.0 + 0.38 * len(cols), 2.5 + 0.32 * len(rows))
    title = "Traffic by host pair"
    if other:
        title += f" (busiest {len(keep)} of {len(hosts)} hosts)"
    ax.set_title(title)
    ax.set_xlabel("destination host (responder)")
    ax.set_ylabel("source host (initiator)")
    _draw_matrix(ax, _cells(flows, src, dst), rows, cols, value=value,
                 row_labels=[label[r] for r in rows], col_labels=[label[c] for c in cols],
                 fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(handles=_legend_handles(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
              fontsize=8, frameon=False)
    return ax
