"""The flow table made a piece at a time (flows/pieces.py) equals the one made whole, and its
CSV and JSON written piece by piece, in one thread, in threads (CSV) or forked workers (JSON),
are the whole table's bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from packet_factory import random_traffic, table

from auditor import build_flows, read_packets
from auditor.cli.output import _pieces_to
from auditor.engine.run import stream_flows
from auditor.flows.partial import finish_pieces, fold_chunk
from auditor.options import EngineOptions, FlowOptions
from auditor.render.csv_file import csv_bytes
from auditor.render.json_tables import records, to_json
from auditor.schema import FLOW_COLUMNS, PACKET_COLUMNS, column_names

PCAPS = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.is_file()
                  and p.suffix in (".pcap", ".pcapng", ".cap") and "truncated" not in p.name)
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def _in_pieces(pieces, rows: int) -> pd.DataFrame:
    pieces.piece_rows = rows
    return pd.concat(list(pieces.pieces()), ignore_index=True)


def _written(pieces, fmt: str, workers: int | None = None) -> bytes:
    out = io.BytesIO()
    pieces.workers = workers
    _pieces_to(pieces, fmt, out, FLOW_COLUMNS)
    return out.getvalue()


def test_flows_in_pieces_of_a_few_rows_equal_the_whole_table_though_listeners_span_pieces():
    rng = np.random.default_rng(5)
    options = FlowOptions(tcp_idle_timeout_s=5, udp_idle_timeout_s=3)
    listened = 0
    for round_ in range(10):
        rows = random_traffic(rng, 200, 4, [50001, 50002, 50003, 135], [6, 6, 17],
                              [SYN, SYN | ACK, ACK, FIN | ACK, RST, 0])
        tab = table(rows)
        expected = build_flows(tab, options)
        pk = tab.packets[column_names(PACKET_COLUMNS)]
        parts, _ = fold_chunk({c: pk[c].to_numpy() for c in pk.columns},
                              np.arange(len(pk), dtype=np.int64), options)
        pieces, _ = finish_pieces(parts, tab.files, options)
        listened += int((expected["orientation"] == "listener").sum())
        # pieces of 1 and 3 flows on the first table only: a piece costs 7-17 ms, so on every
        # table they took most of a minute
        for size in ((1, 3) if round_ == 0 else ()) + (7, len(expected)):
            pd.testing.assert_frame_equal(_in_pieces(pieces, size), expected)
            pieces.piece_rows = size  # frame() joins the pieces a column at a time
            pd.testing.assert_frame_equal(pieces.frame(), expected)
    assert listened > 10  # flows whose listener another piece's flow showed


@pytest.mark.filterwarnings("ignore::auditor.CaptureWarning")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_pieces_of_every_fixture_write_the_whole_tables_csv_and_json(path):
    expected = build_flows(read_packets([path]))
    pieces = stream_flows([path], engine=EngineOptions(workers=1, flow_pieces=True)).flows
    pd.testing.assert_frame_equal(_in_pieces(pieces, 2), expected)
    assert _written(pieces, "csv", 1) == csv_bytes(expected)
    assert _written(pieces, "json", 1).decode() == to_json(records(expected, FLOW_COLUMNS))


def test_threads_and_forked_workers_write_the_same_csv_and_json_as_one_thread():
    path = PCAPS / "pilot" / "pilot.pcapng"
    pieces = stream_flows([path], engine=EngineOptions(workers=1, flow_pieces=True)).flows
    pieces.piece_rows = 5
    assert len(pieces.bounds()) > 4
    whole = pieces.frame()
    assert _written(pieces, "csv", 2) == _written(pieces, "csv", 1) == csv_bytes(whole)
    text = _written(pieces, "json", 2).decode()
    assert text == to_json(records(whole, FLOW_COLUMNS))
    assert len(json.loads(text)) == len(whole)


def test_pieces_made_in_threads_are_at_most_the_thread_piece_size(monkeypatch):
    # the pieces in flight in threads hold their temporaries at once: theirs are smaller than
    # the pieces forked workers make, and the CSV is the same bytes
    from auditor.flows import pieces as pieces_mod

    path = PCAPS / "pilot" / "pilot.pcapng"
    pieces = stream_flows([path], engine=EngineOptions(workers=1, flow_pieces=True)).flows
    pieces.piece_rows = 12
    monkeypatch.setattr(pieces_mod, "THREAD_PIECE_ROWS", 5)
    whole = pieces.frame()
    sizes = {}
    for threads in (True, False):
        sizes[threads] = [len(p) for p in pieces.mapped(lambda piece, first: piece, workers=1,
                                                        threads=threads)]
    assert max(sizes[True]) <= 5 < max(sizes[False]) <= 12
    assert sum(sizes[True]) == sum(sizes[False]) == len(whole)
    assert _written(pieces, "csv", 2) == csv_bytes(whole)


def test_on_several_cores_pieces_asked_of_threads_are_made_in_threads_and_come_in_order():
    path = PCAPS / "pilot" / "pilot.pcapng"
    pieces = stream_flows([path], engine=EngineOptions(workers=1, flow_pieces=True)).flows
    pieces.piece_rows = 5
    made = list(pieces.mapped(_made_where, workers=2, threads=True))
    assert [start for start, _ in made] == [start for start, _ in pieces.bounds()]
    assert {name for _, name in made} <= {"auditor-piece_0", "auditor-piece_1"}
    assert {name for _, name in pieces.mapped(_made_where, workers=1, threads=True)} == {
        "MainThread"}


def _made_where(piece, first):
    import threading

    return int(piece["flow_id"].iloc[0]), threading.current_thread().name


def test_without_flow_pieces_the_engine_gives_one_frame():
    got = stream_flows([PCAPS / "pilot" / "pilot.pcapng"], engine=EngineOptions(workers=1))
    assert isinstance(got.flows, pd.DataFrame)


@pytest.mark.parametrize("workers", [2, 3])
def test_listener_facts_made_in_threads_give_the_one_thread_table(workers):
    # the facts of slices of 2-3 rows made in threads while this one numbers the addresses
    # (pieces.py _prepare): the same table and CSV as one thread, though listeners span slices
    path = PCAPS / "pilot" / "pilot.pcapng"
    one = stream_flows([path], engine=EngineOptions(workers=1, flow_pieces=True)).flows
    for rows in (2, 3):
        many = stream_flows([path], engine=EngineOptions(workers=1, flow_pieces=True)).flows
        many.piece_rows, many.workers = rows, workers
        assert len(many.bounds()) > 20
        pd.testing.assert_frame_equal(many.frame(), one.frame())
        assert (many.handshake == one.handshake).all() and (many.evidence == one.evidence).all()
        assert _written(many, "csv", workers) == _written(one, "csv", 1)


def test_the_engines_workers_option_reaches_the_finish():
    path = PCAPS / "pilot" / "pilot.pcapng"
    for workers, expected in ((1, 1), (2, 2), (0, None)):
        got = stream_flows([path], engine=EngineOptions(workers=workers, flow_pieces=True))
        assert got.flows.workers == expected


def test_pieces_are_of_equal_sizes_at_most_piece_rows_and_cover_the_table():
    pieces = stream_flows([PCAPS / "pilot" / "pilot.pcapng"],
                          engine=EngineOptions(workers=1, flow_pieces=True)).flows
    n = len(pieces)
    for rows in (1, 2, 5, 7, n - 1, n, n + 3):
        pieces.piece_rows = rows
        bounds = pieces.bounds()
        sizes = [b - a for a, b in bounds]
        assert len(bounds) == -(-n // rows) and max(sizes) <= rows
        assert max(sizes) - min(sizes) <= 1
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
