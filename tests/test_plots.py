"""Role/host matrices and the role diagram, checked through what they put on the Axes."""

from __future__ import annotations

import io
import itertools

import matplotlib
import numpy as np
import pytest
from conftest_reports import CATALOGUE, FakeCatalogue, FakeRule, audit_flows, flow_row, make_result
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from auditor.render.diagram import edge_label, plot_role_diagram
from auditor.render.plots import (
    format_bytes,
    plot_host_matrix,
    plot_role_matrix,
    plot_role_matrix_facets,
)

matplotlib.use("Agg")

GREEN, ORANGE, DARK_RED = (0.55, 0.80, 0.55), (0.98, 0.60, 0.25), (0.55, 0.08, 0.08)


@pytest.fixture
def ax():
    return Figure(figsize=(8, 6)).add_subplot()


@pytest.fixture(autouse=True)
def _close_pyplot_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def small_flows():
    f = flow_row
    return audit_flows([
        f("198.18.1.11", "198.18.1.2", 389, rule="A01-ldap", service="ldap", n=1),
        f("198.18.1.11", "198.18.1.2", 389, rule="A01-ldap", service="ldap", n=1, seconds=5),
        f("198.18.1.11", "198.18.1.3", 88, rule="A05-kerberos", service="kerberos", n=1),
        f("198.18.10.101", "198.18.1.31", 445, verdict="unexpected", service="smb", n=1),
        f("198.18.1.41", "198.18.1.11", 25, verdict="rejected", rule="T07-um-hub-smtp",
          service="smtp", n=1),
        f("198.18.1.41", "198.18.1.11", 25, verdict="rejected", rule="T07-um-hub-smtp",
          service="smtp", n=1, seconds=9),
        f("198.18.1.41", "198.18.1.11", 25, rule="T07-um-hub-smtp", service="smtp", n=1,
          seconds=20),
    ])


def tick_texts(labels):
    return [t.get_text() for t in labels]


def cell_texts(ax):
    return {(round(t.get_position()[0], 2), round(t.get_position()[1], 2)): t.get_text()
            for t in ax.texts}


def test_role_matrix_counts_flows_and_colours_cells_by_worst_verdict(ax):
    out = plot_role_matrix(small_flows(), ax)
    assert out is ax
    rows = tick_texts(ax.get_yticklabels())
    cols = tick_texts(ax.get_xticklabels())
    assert rows == ["hub_transport", "unified_messaging", "client"]  # the fixed role order
    assert cols == ["hub_transport", "mailbox", "domain_controller"]
    texts = cell_texts(ax)
    assert texts[(2, 0)] == "3"  # hub -> DC: three flows
    assert texts[(0, 1)] == "3"  # UM -> hub: two refused and one accepted
    assert texts[(0, 1.3)] == "2 blocked"  # the mixed cell says how many earned the colour
    assert texts[(1, 2)] == "1"
    img = ax.images[0].get_array()
    assert tuple(img[0, 2]) == GREEN
    assert tuple(img[1, 0]) == DARK_RED
    assert tuple(img[2, 1]) == ORANGE
    assert tuple(img[0, 0]) != GREEN  # nothing from hub to hub: the empty colour
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_xy() == (-0.5, 0.5)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["expected (documented)", "unexpected (undocumented)",
                      "blocked (rejected / unanswered)"]


def test_role_matrix_bytes_are_human_readable(ax):
    plot_role_matrix(small_flows(), ax, value="bytes")
    texts = cell_texts(ax)
    assert texts[(1, 2)] == "4.9 kB"  # 900 + 4000 bytes
    assert texts[(2, 0)] == "14.7 kB"
    assert "bytes" in ax.get_title()


def test_missing_role_is_shown_as_unknown_and_sorted_last(ax):
    flows = audit_flows([
        flow_row("198.18.99.1", "198.18.1.2", 389, verdict="unexpected", src_role=""),
        flow_row("203.0.113.9", "198.18.1.2", 389, verdict="unexpected"),
    ])
    plot_role_matrix(flows, ax)
    assert tick_texts(ax.get_yticklabels()) == ["internet", "unknown"]


def test_unknown_value_is_refused(ax):
    with pytest.raises(ValueError, match="flows, bytes"):
        plot_role_matrix(small_flows(), ax, value="packets")


def test_format_bytes_uses_decimal_units():
    assert [format_bytes(n) for n in (0, 999, 1000, 1_250_000, 3e9, 4e12)] == [
        "0 B", "999 B", "1.0 kB", "1.2 MB", "3.0 GB", "4.0 TB"]


@pytest.mark.parametrize("draw", [
    lambda flows, ax: plot_role_matrix(flows, ax),
    lambda flows, ax: plot_host_matrix(flows, ax),
    lambda flows, ax: plot_role_diagram(CATALOGUE, flows, ax=ax),
    lambda flows, ax: plot_role_diagram(None, flows, ax=ax),
])
def test_empty_flows_give_an_empty_but_labelled_plot(ax, draw):
    out = draw(audit_flows([]), ax)
    assert out is ax
    assert ax.get_title()
    ax.figure.savefig(io.BytesIO(), format="png")


def test_empty_flows_give_one_labelled_facet():
    fig = plot_role_matrix_facets(audit_flows([]), Figure(layout="constrained"))
    assert [t.get_text() for t in fig.axes[0].texts] == ["no flows"]
    fig.savefig(io.BytesIO(), format="png")


def test_facets_draw_one_matrix_per_service_family():
    flows = make_result().flows
    fig = plot_role_matrix_facets(flows, Figure(figsize=(12, 12), layout="constrained"))
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles[:3] == ["smtp (5 flows)", "ldap/gc (9 flows)", "kerberos (5 flows)"]
    assert "smb/netbios (1 flow)" in titles
    assert "sip/rtp (4 flows)" in titles  # sip and rtp share a family
    smtp = fig.axes[0]
    assert tick_texts(smtp.get_yticklabels()) == [
        "internet", "edge_transport", "hub_transport", "unified_messaging"]
    assert len(fig.legends) == 1


def test_host_matrix_labels_hosts_by_name_and_role(ax):
    plot_host_matrix(small_flows(), ax)
    rows = tick_texts(ax.get_yticklabels())
    assert rows == ["HUB1 [hub_transport]", "UM1 [unified_messaging]", "PC101 [client]"]
    assert "DC1 [domain_controller]" in tick_texts(ax.get_xticklabels())


def test_host_matrix_folds_quiet_hosts_into_other(ax):
    plot_host_matrix(make_result().flows, ax, max_hosts=4)
    labels = tick_texts(ax.get_yticklabels()) + tick_texts(ax.get_xticklabels())
    assert "other (9 hosts)" in labels
    assert "busiest 4 of 13 hosts" in ax.get_title()


def test_capture_names_are_drawn_literally_not_as_mathtext(ax):
    flows = audit_flows([flow_row("198.18.1.11", "198.18.1.2", 389, src_name="$\\frac{a}{$",
                                  verdict="unexpected")])
    plot_host_matrix(flows, ax)
    assert tick_texts(ax.get_yticklabels()) == ["$\\frac{a}{$ [hub_transport]"]
    ax.figure.savefig(io.BytesIO(), format="png")  # a mathtext parse would raise here


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_plots_save_as_png_and_svg(fmt, magic):
    result = make_result()
    fig = Figure(figsize=(14, 16), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    plot_role_matrix(result.flows, top.add_subplot())
    plot_role_diagram(CATALOGUE, result.flows, ax=bottom.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    assert buf.getvalue().startswith(magic)
    assert len(buf.getvalue()) > 20_000


def test_without_axes_a_new_figure_sized_to_the_matrix_is_made():
    ax = plot_role_matrix(make_result().flows)
    width, height = ax.figure.get_size_inches()
    assert width > 8 and height > 5


def test_edge_label_merges_ports_per_protocol():
    label = edge_label({"tcp": {"53", "88", "135", "RPC", "3268"}, "udp": {"53", "88"}})
    assert label == "53,88/tcp+udp\n135+RPC,3268/tcp"
    assert edge_label({"tcp": {str(p) for p in range(1, 9)}}) == "1,2,3,\n4,5,+3 more/tcp"
    assert edge_label({"icmp": set()}) == "icmp"


def arrows(ax):
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def labels(ax):
    return {t.get_text(): t for t in ax.texts if t.get_bbox_patch() is not None}


def test_design_view_draws_every_rule_pair_as_a_solid_arrow(ax):
    plot_role_diagram(CATALOGUE, ax=ax)
    pairs = {(s, d) for r in CATALOGUE.rules for s in r.source for d in r.destination}
    assert len(arrows(ax)) == len(pairs)
    assert {a.get_linestyle() for a in arrows(ax)} == {"-"}
    text = labels(ax)
    assert "25,50636/tcp" in text  # hub -> edge: SMTP and EdgeSync merged into one label
    assert "88,389/tcp+udp\n135+RPC,445,3268/tcp\n123/udp" in text
    assert "Documented" in ax.get_title()


def test_observed_view_marks_seen_missing_unexpected_and_blocked(ax):
    result = make_result()
    plot_role_diagram(CATALOGUE, result.flows, ax=ax)
    by_colour = {}
    for a in arrows(ax):
        by_colour.setdefault(matplotlib.colors.to_hex(a.get_edgecolor()), []).append(a)
    text = labels(ax)
    assert matplotlib.colors.to_hex(text["3389/tcp"].get_color()) == "#d62728"  # unexpected
    assert matplotlib.colors.to_hex(text["5061/tcp"].get_color()) == "#7f0000"  # unanswered
    assert matplotlib.colors.to_hex(text["5060/tcp"].get_color()) == "#9e9e9e"  # UM->GW missing
    assert matplotlib.colors.to_hex(text["64327/tcp\n3343/udp"].get_color()) == "#2e7d32"
    missing = by_colour["#9e9e9e"]
    assert all(a.get_linestyle() == "--" for a in missing)
    blocked_marks = [line for line in ax.lines if line.get_marker() == "X"]
    assert len(blocked_marks) == 2  # UM->hub refused, CAS->UM unanswered
    boxes = [t.get_text() for t in ax.texts if t.get_bbox_patch() is None]
    assert "Mailbox\n2 hosts" in boxes


def test_findings_view_uses_rule_status_and_findings(ax):
    result = make_result()
    plot_role_diagram(result.rules, findings=result.findings, ax=ax)
    text = labels(ax)
    assert matplotlib.colors.to_hex(text["3389/tcp"].get_color()) == "#d62728"
    assert matplotlib.colors.to_hex(text["88/udp"].get_color()) == "#9e9e9e"  # missing finding


def label_overlaps(ax):
    fig = ax.figure
    renderer = fig._get_renderer()
    fig.draw_without_rendering()
    boxes = [t.get_window_extent(renderer) for t in labels(ax).values()]
    return sum(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def test_diagram_with_forty_role_pairs_keeps_labels_apart():
    rng = np.random.default_rng(7)
    roles = ["internet", "edge_transport", "hub_transport", "client_access", "mailbox",
             "unified_messaging", "domain_controller", "dns", "client", "admin", "voip_gateway",
             "witness"]
    pairs = set()
    while len(pairs) < 42:
        a, b = rng.choice(roles, 2, replace=False)
        pairs.add((str(a), str(b)))
    rules = tuple(FakeRule(f"R{i}", (a,), (b,), "tcp", (int(rng.choice([25, 88, 135, 443])),), "x")
                  for i, (a, b) in enumerate(sorted(pairs)))
    ax = Figure(figsize=(13, 7.2), layout="constrained").add_subplot()
    plot_role_diagram(FakeCatalogue(rules), ax=ax)
    assert len(arrows(ax)) == 42
    assert label_overlaps(ax) == 0
