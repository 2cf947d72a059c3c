"""Geometry of the role diagram: the fixed box layout, arrow routes and label placement.

The middle row holds the Exchange roles left to right (Internet | Edge | Hub | Client Access |
Mailbox | UM), clients span the top, domain controllers the bottom. Arrows between the top and
bottom rows pass through the gaps of the middle row; arrows to DNS (left, below Internet) and from
admin workstations (top left) run along nested lanes so they do not cross each other; everything
else is a gentle curve, arching round boxes that sit in between. Labels are moved along their arrow
until they overlap no box and no other label.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

ROLE_ORDER = (
    "internet", "edge_transport", "hub_transport", "client_access", "mailbox", "unified_messaging",
    "domain_controller", "dns", "client", "admin", "voip_gateway", "ocs", "witness", "unknown",
)
ROLE_TITLES = {
    "internet": "Internet", "edge_transport": "Edge Transport", "hub_transport": "Hub Transport",
    "client_access": "Client Access", "mailbox": "Mailbox",
    "unified_messaging": "Unified Messaging",
    "domain_controller": "Domain controllers", "dns": "DNS", "client": "Clients",
    "admin": "Admin", "voip_gateway": "VoIP gateway", "ocs": "OCS / Lync",
    "witness": "File share witness", "unknown": "Unknown",
}


def role_sort_key(role: str) -> tuple[int, int, str]:
    """Sort key putting roles in ROLE_ORDER, other names after them and `unknown` last."""
    if role == "unknown":
        return (2, 0, "")
    if role in ROLE_ORDER:
        return (0, ROLE_ORDER.index(role), "")
    return (1, 0, role)


# Box centre x, y, width, height in data units; `client` and `domain_controller` are wide bars.
W, H, MID = 1.7, 0.9, 4.0
LAYOUT = {
    "internet": (0.0, MID, W, H),
    "edge_transport": (3.0, MID, W, H),
    "hub_transport": (6.0, MID, W, H),
    "client_access": (9.0, MID, W, H),
    "mailbox": (12.0, MID, W, H),
    "unified_messaging": (15.0, MID, W, H),
    "admin": (0.0, 7.4, W, H),
    "client": (8.75, 7.4, 9.1, H),
    "voip_gateway": (17.8, 6.0, W, H),
    "ocs": (17.8, 2.0, W, H),
    "dns": (0.0, 1.9, W, H),
    "domain_controller": (10.5, 0.6, 11.6, H),
    "witness": (17.8, MID, W, H),
    "unknown": (17.8, 7.4, W, H),
}
_SPARE = [(17.8, 0.6), (3.0, 7.4), (15.0, 7.4), (0.0, 0.6), (3.0, 0.6), (15.0, 6.0)]
_GAPS = (1.5, 4.5, 7.5, 10.5, 13.5, 16.4)  # x of the gaps between middle-row boxes
XLIM, YLIM = (-1.1, 18.9), (-0.1, 8.7)
_DNS_LANES = (2.28, 1.5)  # top and bottom lane y where the DNS routes enter the DNS box
_ADMIN_LANES = (5.65, 6.6)  # lowest and highest lane of the admin routes
_STEP = 0.04  # sampling distance of the dense polylines


def _densify(points: np.ndarray) -> np.ndarray:
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(2, int(np.hypot(*(b - a)) / _STEP) + 1)
        out.append(a + (b - a) * np.linspace(0, 1, n)[1:, None])
    return np.concatenate(out)


def _quad(p0, c, p2, n: int = 240) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t**2 * p2


def _rounded(waypoints, radius: float = 0.22) -> tuple[np.ndarray, list[int]]:
    """An orthogonal route with rounded corners, densified; also the index of each waypoint."""
    pts = np.asarray(waypoints, dtype=float)
    parts, marks, total = [pts[:1]], [0], 1
    for i in range(1, len(pts)):
        a, b = pts[i - 1], pts[i]
        if i < len(pts) - 1:
            nxt = pts[i + 1]
            r = min(radius, np.hypot(*(b - a)) / 2, np.hypot(*(nxt - b)) / 2)
            u_in = (b - a) / max(np.hypot(*(b - a)), 1e-9)
            u_out = (nxt - b) / max(np.hypot(*(nxt - b)), 1e-9)
            seg = _densify(np.array([parts[-1][-1], b - r * u_in]))[1:]
            arc = _quad(b - r * u_in, b, b + r * u_out, 12)[1:]
            parts += [seg, arc]
            total += len(seg) + len(arc)
        else:
            seg = _densify(np.array([parts[-1][-1], b]))[1:]
            parts.append(seg)
            total += len(seg)
        marks.append(total - 1)
    return np.concatenate(parts), marks


class Scene:
    """Box geometry, arrow routes and label placement for one diagram."""

    def __init__(self, roles: Iterable[str], inches_per_unit: float):
        self.boxes: dict[str, tuple[float, float, float, float]] = {}
        spare = iter(_SPARE)
        for role in sorted(roles, key=role_sort_key):
            x, y, w, h = LAYOUT.get(role) or (*next(spare, (17.8, 0.6)), W, H)
            self.boxes[role] = (x, y, w, h)
        self.placed: list[tuple[float, float, float, float]] = []
        self.scale = inches_per_unit
        self.lane: dict[tuple[str, str, int], tuple[int, int, str]] = {}

    # -- routes -------------------------------------------------------------------------------
    def _at_home(self, role: str) -> bool:
        return role in self.boxes and self.boxes[role] == LAYOUT.get(role)

    def _in_middle(self, role: str) -> bool:
        x, y, w, _ = self.boxes[role]
        return abs(y - MID) < 0.5 and w == W

    def _dns_exit(self, other: str) -> float | None:
        """x where a route between `other` and DNS leaves `other` downwards (None: no lane)."""
        if other == "client" and self._at_home("client"):
            return _GAPS[1]
        if other in self.boxes and self._in_middle(other) and other != "internet":
            return self.boxes[other][0] - 0.45
        return None

    def _admin_drop(self, other: str) -> float | None:
        """x where an admin route reaches `other` (None: draw a plain curve)."""
        if other in ("domain_controller", "dns") and self._at_home(other):
            return _GAPS[0]
        if other in self.boxes and self._in_middle(other) and other != "internet":
            return self.boxes[other][0] - 0.5
        return None

    def plan(self, arrows: Iterable[tuple[str, str, int]]) -> None:
        """Give every DNS and admin route its lane so nested routes never cross."""
        dns, admin = [], []
        for src, dst, k in arrows:
            if src == dst:
                continue
            if "admin" in (src, dst) and self._at_home("admin"):
                other = dst if src == "admin" else src
                x = self._admin_drop(other)
                if x is not None:
                    admin.append((x + 0.12 * k, (src, dst, k)))
                    continue
            if "dns" in (src, dst) and self._at_home("dns"):
                x = self._dns_exit(dst if src == "dns" else src)
                if x is not None:
                    dns.append((x + 0.12 * k, (src, dst, k)))
        for group, kind in ((dns, "dns"), (admin, "admin")):
            group.sort()
            for i, (_, key) in enumerate(group):
                self.lane[key] = (i, len(group), kind)

    def route(self, src: str, dst: str, k: int) -> tuple[np.ndarray, tuple[float, float]]:
        """Dense polyline of the k-th arrow of a pair, clipped to the boxes; and the label span."""
        key = (src, dst, k)
        if key in self.lane:
            i, n, kind = self.lane[key]
            pts, span = (self._dns_route if kind == "dns" else self._admin_route)(src, dst, k, i, n)
        else:
            pts, span = self._curve(src, dst, k), (0.15, 0.85)
        return self._clip(src, dst, pts), span

    def _dns_route(self, src, dst, k, i, n):
        other = dst if src == "dns" else src
        x = self._dns_exit(other) + 0.12 * k
        top, bottom = _DNS_LANES
        y = top - (top - bottom) * (i / max(n - 1, 1)) if n > 1 else (top + bottom) / 2
        dx, dy = self.boxes["dns"][:2]
        pts, marks = _rounded([(x, self.boxes[other][1]), (x, y), (dx, y)])
        if src == "dns":
            pts, marks = pts[::-1], [len(pts) - 1 - m for m in marks[::-1]]
            return pts, (marks[1] / len(pts) + 0.03, 0.95)
        return pts, (0.05, marks[1] / len(pts) - 0.03)

    def _admin_route(self, src, dst, k, i, n):
        other = dst if src == "admin" else src
        ax_, ay = self.boxes["admin"][:2]
        low, high = _ADMIN_LANES
        lane = low + (high - low) * (i / max(n - 1, 1)) if n > 1 else (low + high) / 2
        exit_x = ax_ - 0.6 + 1.2 * (i / max(n - 1, 1)) if n > 1 else ax_
        drop = self._admin_drop(other) + 0.12 * k
        ox, oy = self.boxes[other][:2]
        if other in ("domain_controller", "dns"):
            end_x = ox - self.boxes[other][2] / 2 + 0.3 if other == "domain_controller" else ox
            end_y = oy if other == "domain_controller" else oy - 0.3
            way = [(exit_x, ay), (exit_x, lane), (drop, lane), (drop, end_y), (end_x, end_y)]
            label_seg = 3
        else:
            way = [(exit_x, ay), (exit_x, lane), (drop, lane), (drop, oy)]
            label_seg = 3
        pts, marks = _rounded(way)
        span = (marks[label_seg - 1] / len(pts) + 0.02, marks[label_seg] / len(pts) - 0.02)
        if src != "admin":
            pts = pts[::-1]
            span = (1 - span[1], 1 - span[0])
        return pts, span

    def _anchor(self, role: str, other_x: float) -> np.ndarray:
        x, y, w, _ = self.boxes[role]
        if w > W:  # a bar: attach opposite the other end
            return np.array([min(max(other_x, x - w / 2 + 0.4), x + w / 2 - 0.4), y])
        return np.array([x, y])

    def _curve(self, src: str, dst: str, k: int) -> np.ndarray:
        sx, sy = self.boxes[src][:2]
        dx, dy = self.boxes[dst][:2]
        if max(sy, dy) > MID + 1.5 and min(sy, dy) < MID - 1.5:  # crosses the middle row
            gap = min(_GAPS, key=lambda g: (abs(g - (sx + dx) / 2), g))
            gap += (0.12 + 0.2 * k) * (1 if sy > dy else -1)  # down right, up left of centre
            p0, p2 = self._anchor(src, gap), self._anchor(dst, gap)
            return _quad(p0, 2 * np.array([gap, MID]) - (p0 + p2) / 2, p2)
        p2 = self._anchor(dst, sx)
        p0 = self._anchor(src, p2[0])
        p2 = self._anchor(dst, p0[0])
        d = p2 - p0
        dist = float(np.hypot(*d))
        rad = 1.9 / dist if abs(d[1]) < 0.5 and dist > 3.5 else 0.12  # arch over boxes between
        rad += 0.12 * k
        return _quad(p0, (p0 + p2) / 2 + rad * np.array([d[1], -d[0]]), p2)

    def _inside(self, role: str, pts: np.ndarray) -> np.ndarray:
        x, y, w, h = self.boxes[role]
        return (np.abs(pts[:, 0] - x) <= w / 2 + 0.05) & (np.abs(pts[:, 1] - y) <= h / 2 + 0.05)

    def _clip(self, src: str, dst: str, pts: np.ndarray) -> np.ndarray:
        out_src = np.nonzero(~self._inside(src, pts))[0]
        out_dst = np.nonzero(~self._inside(dst, pts))[0]
        a = out_src[0] if len(out_src) else 0
        b = out_dst[-1] if len(out_dst) else len(pts) - 1
        return pts[a:b + 1] if b > a + 1 else pts

    def loop(self, role: str, k: int) -> tuple[np.ndarray, tuple[float, float]]:
        """A self-loop on the box's top right, and where its label goes."""
        x, y, w, h = self.boxes[role]
        bx = x + w / 2 - 0.5 if w > W else x + 0.35
        base, lift = y + h / 2, 0.7 + 0.35 * k
        t = np.linspace(0, 1, 60)[:, None]
        ctrl = np.array([(bx - 0.25, base), (bx - 0.55, base + lift), (bx + 0.55, base + lift),
                         (bx + 0.25, base)])
        pts = ((1 - t) ** 3 * ctrl[0] + 3 * (1 - t) ** 2 * t * ctrl[1]
               + 3 * (1 - t) * t**2 * ctrl[2] + t**3 * ctrl[3])
        return pts, (bx, base + 0.75 * lift)

    # -- labels -------------------------------------------------------------------------------
    def label_size(self, text: str, fontsize: float) -> tuple[float, float]:
        """Estimated label size in data units (the text is not drawn yet)."""
        lines = text.split("\n")
        em = fontsize / 72 / self.scale
        return (max(map(len, lines)) * 0.6 * em + 0.12, len(lines) * 1.25 * em + 0.1)

    def _overlap(self, rect: tuple[float, float, float, float]) -> float:
        x0, y0, x1, y1 = rect
        total = 0.0
        boxes = [(x - w / 2, y - h / 2, x + w / 2, y + h / 2) for x, y, w, h in self.boxes.values()]
        for a0, b0, a1, b1 in boxes + self.placed:
            ox, oy = min(x1, a1) - max(x0, a0), min(y1, b1) - max(y0, b0)
            if ox > 0 and oy > 0:
                total += ox * oy
        return total

    def reserve(self, x: float, y: float, text: str, fontsize: float) -> None:
        """Mark a label's rectangle as taken."""
        w, h = self.label_size(text, fontsize)
        self.placed.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))

    def place_label(self, pts: np.ndarray, span: tuple[float, float], text: str,
                    fontsize: float) -> tuple[float, float]:
        """The point along the arrow (within span) where the label overlaps least; middle first."""
        w, h = self.label_size(text, fontsize)
        lo, hi = span
        mid = (lo + hi) / 2
        offsets = [0.0]
        for j in range(1, 7):
            offsets += [-j / 12, j / 12]
        best = None
        for off in offsets:
            frac = min(max(mid + off * (hi - lo), lo), hi)
            x, y = pts[min(int(frac * (len(pts) - 1)), len(pts) - 1)]
            rect = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            cost = self._overlap(rect)
            if best is None or cost < best[0] - 1e-9:
                best = (cost, x, y, rect)
            if cost == 0:
                break
        self.placed.append(best[3])
        return float(best[1]), float(best[2])
