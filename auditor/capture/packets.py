"""Read pcap/pcapng captures (optionally gzip-compressed) into vectorised packet arrays.

`read_packets` turns capture files into a `PacketTable`: one row per IPv4/IPv6 packet with the
columns of `schema.PACKET_COLUMNS`, plus the ICMP destination-unreachable messages with the header
they quote. `reader.py` opens each file (one module per container format), `headers.py` decodes
the headers; this module reads files as one capture, writes selected packets back out and
formats addresses.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pandas as pd

from auditor.capture.bytesource import ArchiveCache, CaptureSource
from auditor.capture.headers import ICMP_DTYPES, decode_chunk
from auditor.capture.reader import RecordReader
from auditor.capture.records import fill_untimed
from auditor.capture.sets import CaptureSet, expand_sources, plan, source_sizes
from auditor.errors import CaptureError, CaptureWarning
from auditor.schema import ICMP_ERROR_COLUMNS, PACKET_COLUMNS, column_names, empty_frame


@dataclass(frozen=True)
class CaptureFile:
    """What was read from one capture file."""

    path: str  # as given (the archive, for an archive member)
    name: str  # basename (of the member, for an archive member)
    format: str  # e.g. "pcap", "pcap-modified", "pcapng", "netmon2.3", "+zstd" when compressed,
    # "snoop via editcap" when converted, "not a capture" for an archive member that is not one
    records: int  # packet records read (all link types)
    ip_packets: int  # rows this file contributed to PacketTable.packets
    non_ip: int  # valid records that are not IPv4/IPv6 (ARP, LLDP, ...)
    skipped: Mapping[str, int]  # reason -> count of what could not be read
    first_ts_ns: int | None
    last_ts_ns: int | None
    member: str | None = None  # the member's name, when `path` is a zip or tar archive
    outside_window: int = 0  # IP packets read but left out by --since/--until
    tunnelled: int = 0  # IP packets read from inside a tunnel (VXLAN, Geneve, GRE, ERSPAN)


@dataclass(frozen=True)
class PacketTable:
    """Packet rows (schema.PACKET_COLUMNS), ICMP unreachables and the files they came from."""

    packets: pd.DataFrame
    icmp_errors: pd.DataFrame
    files: tuple[CaptureFile, ...]
    left_out: tuple[str, ...] = ()  # captures not read: wholly outside --since/--until
    # (file offset, captured length) of each packet row's record, when the streaming read knew
    # them (capture.records_at): write_packets then reads those bytes instead of walking the file
    spans: tuple[np.ndarray, np.ndarray] | None = None


_MASK64 = (1 << 64) - 1
_PACKET_NAMES = column_names(PACKET_COLUMNS)


def read_packets(
    sources: Iterable[str | os.PathLike] | CaptureSet,
    *,
    progress: Callable[[int, int], None] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> PacketTable:
    """Read capture files as one capture: IP packet rows sorted by time across the files.

    `sources` are files, folders, glob patterns and zip/tar archives (or a `CaptureSet`, which
    may carry the window). With `since_ns`/`until_ns`, captures wholly outside the window are not
    read and packets outside it are left out (counted per file in `outside_window`).
    """
    if isinstance(sources, CaptureSet):
        since_ns = sources.since_ns if since_ns is None else since_ns
        until_ns = sources.until_ns if until_ns is None else until_ns
    found = expand_sources(sources)
    if not found:
        raise CaptureError("no capture files given")
    if len(found) > np.iinfo(np.uint16).max:
        raise CaptureError(f"too many capture files ({len(found)})")
    todo, left_out = plan(found, since_ns, until_ns)
    sizes = source_sizes(todo)
    total, done = sum(sizes), 0
    cols: dict[str, list[np.ndarray]] = {name: [] for name in _PACKET_NAMES}
    icmp: dict[str, list[np.ndarray]] = {c.name: [] for c in ICMP_ERROR_COLUMNS}
    files: list[CaptureFile] = []
    n_rows = 0
    with ArchiveCache() as archives:
        for file_index, source in enumerate(todo):
            reader, skipped_member = open_or_skip(source, archives)
            if reader is None:
                files.append(skipped_member)
                continue
            with reader:
                info = _read_file(reader, file_index, n_rows, cols, icmp,
                                  None if progress is None else
                                  (lambda at, base=done: progress(base + at, total)))
            files.append(info)
            n_rows += info.ip_packets
            done += sizes[file_index]
            if progress is not None:
                progress(done, total)
    packets, icmp_errors = _assemble(cols, icmp)
    if since_ns is not None or until_ns is not None:
        packets, icmp_errors, files = _window(packets, icmp_errors, files, since_ns, until_ns)
    return PacketTable(packets=packets, icmp_errors=icmp_errors, files=tuple(files),
                       left_out=tuple(s.label for s in left_out))


def open_or_skip(source, archives) -> tuple[RecordReader | None, CaptureFile | None]:
    """(a reader of the source, None); for an archive member that is no capture (a README, a
    damaged file), a warning and (None, its CaptureFile): one such member does not sink the
    archive. A plain file that cannot be read raises its CaptureError."""
    try:
        return RecordReader(source, archives), None
    except CaptureError as exc:
        if source.member is None:
            raise
        warnings.warn(f"{exc}; skipped that member", CaptureWarning, stacklevel=3)
        return None, CaptureFile(source.path, source.name, "not a capture", 0, 0, 0,
                                 {"not a capture": 1}, None, None, member=source.member)


def _read_file(reader: RecordReader, file_index: int, n_rows: int, cols, icmp, progress
               ) -> CaptureFile:
    """Decode one capture's chunks into the column lists; return what was read from it."""
    ip_rows, non_ip, tunnelled, skipped = 0, 0, 0, Counter()
    file_ts: list[np.ndarray] = []
    for chunk in reader.chunks():
        out, errs, chunk_non_ip, chunk_skipped, chunk_tunnelled = decode_chunk(chunk)
        out["file_index"] = np.full(len(out["ts_ns"]), file_index, np.uint16)
        for name in _PACKET_NAMES:
            (file_ts if name == "ts_ns" else cols[name]).append(out[name])
        errs["packet_index"] += n_rows + ip_rows
        for name, arr in errs.items():
            icmp[name].append(arr)
        ip_rows += len(out["ts_ns"])
        non_ip += chunk_non_ip
        tunnelled += chunk_tunnelled
        skipped.update(chunk_skipped)
        if progress is not None:
            progress(reader.tell())
    skipped.update(reader.skipped)
    cols["ts_ns"].extend(_fill_missing_ts(file_ts))
    source = reader.source
    info = CaptureFile(
        path=source.path, name=source.name, format=reader.format, records=reader.records,
        ip_packets=ip_rows, non_ip=non_ip, skipped=dict(skipped),
        first_ts_ns=reader.first_ts_ns, last_ts_ns=reader.last_ts_ns, member=source.member,
        tunnelled=tunnelled,
    )
    _warn_skipped(info, reader.notes, reader.path)
    for text in reader.warnings:
        warnings.warn(text, CaptureWarning, stacklevel=3)
    return info


def _window(packets: pd.DataFrame, errors: pd.DataFrame, files: list[CaptureFile],
            since_ns: int | None, until_ns: int | None):
    """Leave out the packets outside [since, until]; count them per file."""
    ts = packets["ts_ns"].to_numpy()
    keep = np.ones(len(ts), bool)
    if since_ns is not None:
        keep &= ts >= since_ns
    if until_ns is not None:
        keep &= ts <= until_ns
    if keep.all():
        return packets, errors, files
    out = np.bincount(packets["file_index"].to_numpy()[~keep].astype(np.int64),
                      minlength=len(files))
    files = [dataclasses.replace(f, outside_window=int(out[i])) for i, f in enumerate(files)]
    new_index = np.cumsum(keep) - 1
    err_keep = keep[errors["packet_index"].to_numpy()] if len(errors) else np.zeros(0, bool)
    errors = errors[err_keep].reset_index(drop=True)
    errors["packet_index"] = new_index[errors["packet_index"].to_numpy()].astype(
        errors["packet_index"].dtype)
    return packets[keep].reset_index(drop=True), errors, files


def _warn_skipped(info: CaptureFile, notes: Mapping[str, str], label: str) -> None:
    for reason, count in info.skipped.items():
        text = notes.get(reason) or f"{label}: skipped {count} records ({reason})"
        warnings.warn(text, CaptureWarning, stacklevel=4)


def _fill_missing_ts(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Give records without a timestamp (pcapng SPB) the one of the record before them in the
    file; leading ones the file's first timestamp (all 0 when it has none)."""
    return [fill_untimed(np.concatenate(parts), None).astype(np.int64, copy=False)] if parts \
        else parts


def _assemble(cols: dict[str, list[np.ndarray]], icmp: dict[str, list[np.ndarray]]):
    """Concatenate the chunks, sort by time (stably) and build the two frames."""
    if not cols["ts_ns"]:
        return empty_frame(PACKET_COLUMNS), empty_frame(ICMP_ERROR_COLUMNS)
    ts = np.concatenate(cols.pop("ts_ns"))
    order = None
    if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
    data = {"ts_ns": ts}
    for name in _PACKET_NAMES[1:]:  # one column at a time keeps the peak memory low
        arr = np.concatenate(cols.pop(name))
        data[name] = arr[order] if order is not None else arr
    packets = pd.DataFrame(data, copy=False)
    err = {name: np.concatenate(parts) for name, parts in icmp.items()}
    if order is not None and len(err["packet_index"]):
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        err["packet_index"] = inverse[err["packet_index"]]
    errors = pd.DataFrame({n: err[n].astype(ICMP_DTYPES[n], copy=False) for n in err})
    errors = errors.sort_values("packet_index", kind="stable", ignore_index=True)
    return packets, errors


# -- writing and addresses ---------------------------------------------------------------------


def write_packets(table: PacketTable, rows: np.ndarray, out_path: str | os.PathLike | BinaryIO) -> int:
    """Write the selected packets (from their IP header on) to a LINKTYPE_RAW pcap, in row order.

    `out_path` is a path or a binary file object (e.g. a FIFO tshark already reads).
    """
    sel = np.asarray(rows, dtype=np.int64).reshape(-1)
    pk = table.packets
    if len(sel) and (sel.min() < 0 or sel.max() >= len(pk)):
        raise IndexError(f"row {int(sel.max())} is outside the packet table ({len(pk)} rows)")
    file_idx = pk["file_index"].to_numpy()[sel]
    rec_idx = pk["record_index"].to_numpy()[sel].astype(np.int64)
    l3 = pk["l3_offset"].to_numpy()[sel].astype(np.int64)
    frame_len = pk["frame_len"].to_numpy()[sel]
    ts = pk["ts_ns"].to_numpy()[sel]
    data: list[bytes | None] = [None] * len(sel)
    for f in np.unique(file_idx):
        mine = np.flatnonzero(file_idx == f)
        known = _read_at(table, int(f), sel[mine], l3[mine])
        if known is not None:
            for i, raw in zip(mine.tolist(), known, strict=True):
                data[i] = raw
            continue
        wanted = np.unique(rec_idx[mine])
        found = _fetch_records(CaptureSource(table.files[f].path, table.files[f].member), wanted)
        for i in mine:
            raw, orig = found[int(rec_idx[i])]
            if orig != frame_len[i]:
                raise CaptureError(f"{table.files[f].path}: file changed since it was read "
                                   f"(record {int(rec_idx[i])})")
            data[i] = raw[l3[i]:]
    nano = bool(len(ts)) and bool((ts % 1000 != 0).any())
    magic, unit = (0xA1B23C4D, 1) if nano else (0xA1B2C3D4, 1000)
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262_144, 101)]
    # a corrupt record may carry a time before 1970 or past 2106: pcap cannot say it, tshark
    # only needs the order, so clamp rather than fail
    ts = np.clip(ts, 0, (1 << 32) * 1_000_000_000 - 1)
    for i, raw in enumerate(data):
        sec, frac = divmod(int(ts[i]), 1_000_000_000)
        orig = max(int(frame_len[i]) - int(l3[i]), len(raw))
        out.append(struct.pack("<IIII", sec, frac // unit, len(raw), orig))
        out.append(raw)
    if hasattr(out_path, "write"):
        out_path.write(b"".join(out))
    else:
        from auditor.atomic import write_bytes

        write_bytes(out_path, b"".join(out))
    return len(sel)


def _read_at(table: PacketTable, f: int, rows: np.ndarray, l3: np.ndarray) -> list | None:
    """The rows' bytes from their IP header on, read at their records' known places in file f;
    None when those are not known, or the bytes there are not the packets read (changed file)."""
    from auditor.capture.records_at import read_at, same_source
    from auditor.engine import remote

    info = table.files[f]
    if table.spans is None or info.member is not None or remote.is_url(info.path):
        return None
    off, length = table.spans[0][rows], table.spans[1][rows]
    got = read_at(info.path, off, length) if (off >= 0).all() else None
    if got is None:
        return None
    pk = table.packets
    version = pk["ip_version"].to_numpy()[rows].tolist()
    hi, lo = pk["src_ip_hi"].to_numpy()[rows].tolist(), pk["src_ip_lo"].to_numpy()[rows].tolist()
    at = l3.tolist()
    if not all(same_source(raw, a, v, h, w)
               for raw, a, v, h, w in zip(got, at, version, hi, lo, strict=True)):
        return None
    return [raw[a:] for raw, a in zip(got, at, strict=True)]


def _fetch_records(path: CaptureSource, wanted: np.ndarray) -> dict[int, tuple[bytes, int]]:
    """Re-read a capture file and return {record index: (captured bytes, original length)}."""
    from auditor.engine import remote

    if path.member is None and remote.is_url(path.path):  # fetched again, for these records
        with remote.local_copy(path.path) as local:
            return _fetch_records(CaptureSource(local), wanted)
    found: dict[int, tuple[bytes, int]] = {}
    last = int(wanted[-1]) if len(wanted) else -1
    with RecordReader(path) as reader:
        for ch in reader.chunks():
            lo, hi = ch.first_index, ch.first_index + len(ch.data_off)
            for r in wanted[(wanted >= lo) & (wanted < hi)]:
                k = int(r) - lo
                start = int(ch.data_off[k])
                found[int(r)] = (ch.buf[start : start + int(ch.caplen[k])].tobytes(),
                                 int(ch.origlen[k]))
            if hi > last:
                break
    missing = [int(r) for r in wanted if int(r) not in found]
    if missing:
        raise CaptureError(f"{path.label}: record {missing[0]} not found (file changed since it "
                           "was read)")
    return found


def format_ip(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Format address halves as strings: IPv4-mapped as dotted quads, else compressed IPv6."""
    hi = np.asarray(hi, dtype=np.uint64).reshape(-1)
    lo = np.asarray(lo, dtype=np.uint64).reshape(-1)
    if not len(hi):
        return np.empty(0, dtype=object)
    # Each distinct address is formatted once: hash-factorize each half, then the pairs.
    code_hi, uniq_hi = pd.factorize(hi)
    code_lo, uniq_lo = pd.factorize(lo)
    inverse, pairs = pd.factorize(code_hi.astype(np.int64) * len(uniq_lo) + code_lo)
    uh = np.asarray(uniq_hi, np.uint64)[pairs // len(uniq_lo)]
    ul = np.asarray(uniq_lo, np.uint64)[pairs % len(uniq_lo)]
    texts = []
    for h, low in zip(uh.tolist(), ul.tolist(), strict=True):
        if h == 0 and low >> 32 == 0xFFFF:
            v = low & 0xFFFFFFFF
            texts.append(f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}")
        else:
            texts.append(str(ipaddress.IPv6Address((h << 64) | low)))
    uniq = np.empty(len(texts), dtype=object)
    uniq[:] = texts
    return uniq[inverse]


def parse_ip(text: str) -> tuple[int, int]:
    """Parse an IPv4 or IPv6 address into the (hi, lo) uint64 halves the packet table uses."""
    addr = ipaddress.ip_address(text.strip())
    value = int(addr) | (0xFFFF << 32) if addr.version == 4 else int(addr)
    return value >> 64, value & _MASK64
