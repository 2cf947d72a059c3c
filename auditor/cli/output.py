"""Writing frames and text to stdout or a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from auditor.atomic import atomic_path, write_text

if TYPE_CHECKING:  # pandas loads with the first frame written, not with the command line
    import pandas as pd


def write_frame(frame: pd.DataFrame, fmt: str, output: Path | None, columns=None) -> None:
    """Write a frame as csv, json or parquet to a file or standard output.

    JSON follows `columns` (a schema table) when given: list columns become arrays. A table
    in pieces (flows/pieces.py FlowPieces) is written a piece at a time as csv or json."""
    from auditor.flows.pieces import FlowPieces

    if isinstance(frame, FlowPieces):
        if fmt == "csv" or (fmt == "json" and columns is not None):
            _write_pieces(frame, fmt, output, columns)
            return
        frame = frame.frame()
    if fmt == "parquet":
        if output is None:
            raise click.UsageError("--format parquet needs -o FILE")
        with atomic_path(output) as tmp:
            frame.to_parquet(tmp, index=False)
        return
    if fmt == "csv":
        _write_csv(frame, output)
        return
    if columns is not None:
        from auditor.render.json_tables import records, to_json

        emit(to_json(records(frame, columns)), output)
        return
    from auditor.render.csv_file import iso_times

    emit(iso_times(frame).to_json(orient="records", indent=1) + "\n", output)


def _write_csv(frame: pd.DataFrame, output: Path | None) -> None:
    """CSV through pyarrow's writer (render/csv_file.py), text cells made inert."""
    from auditor.render import csv_file

    if output is None:
        click.echo(csv_file.csv_bytes(frame), nl=False)  # bytes: no decode and re-encode
    else:
        with atomic_path(output) as tmp:
            csv_file.write_csv(frame, tmp)
        click.echo(f"wrote {output}", err=True)


def _write_pieces(table, fmt: str, output: Path | None, columns) -> None:
    """A FlowPieces table as CSV (render/csv_file.py) or JSON records, a piece at a time: the
    same bytes as the whole frame's."""
    if output is None:
        _pieces_to(table, fmt, _Echo(), columns)
        return
    with atomic_path(output) as tmp, open(tmp, "wb") as out:
        _pieces_to(table, fmt, out, columns)
    click.echo(f"wrote {output}", err=True)


class _Echo:
    """Bytes to standard output through click (as the whole-frame CSV goes)."""

    def write(self, data) -> None:
        """`data`: bytes, or a buffer of them (a memoryview of an Arrow buffer)."""
        click.echo(data if isinstance(data, bytes) else bytes(data), nl=False)


def _pieces_to(table, fmt: str, out, columns) -> None:
    if fmt == "csv":
        from auditor.render.csv_file import write_csv_pieces

        write_csv_pieces(table, out)
        return
    from functools import partial

    empty = True
    for data in table.mapped(partial(_json_piece, columns=columns)):
        out.write(data)
        empty = False
    out.write(b"[]\n" if empty else b"\n]\n")


def _json_piece(piece, first: bool, columns) -> bytes:
    """A piece's records as the lines `to_json` of the whole list has for them: that text is
    '[\n' + the records joined by ',\n' + '\n]\n'."""
    from auditor.render.json_tables import records, to_json

    text = to_json(records(piece, columns))
    return (("[\n" if first else ",\n") + text[2:-3]).encode()


def emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        click.echo(f"wrote {output}", err=True)


def table_text(frame: pd.DataFrame, title: str) -> str:
    """A plain-text rendering of a small frame under a title."""
    from auditor.render.text import printable

    body = frame.map(printable).to_string(index=False) if not frame.empty else "(none)"
    return f"{title}\n{body}\n"
