"""Read pcap/pcapng captures (optionally gzip-compressed) into vectorised packet arrays."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CaptureFile:
    """What was read from one capture file."""

    path: str
    name: str
    format: str
    records: int
    ip_packets: int
    non_ip: int
    skipped: Mapping[str, int]
    first_ts_ns: int | None
    last_ts_ns: int | None


@dataclass(frozen=True)
class PacketTable:
    """Packet rows (schema.PACKET_COLUMNS), ICMP unreachables and the files they came from."""

    packets: pd.DataFrame
    icmp_errors: pd.DataFrame
    files: tuple[CaptureFile, ...]


def expand_sources(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into the list of capture files to read."""
    raise NotImplementedError


def read_packets(
    sources: Iterable[str | os.PathLike],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PacketTable:
    """Read capture files as one capture into a PacketTable."""
    raise NotImplementedError


def write_packets(table: PacketTable, rows: np.ndarray, out_path: str | os.PathLike) -> int:
    """Write the selected packets to a LINKTYPE_RAW pcap; return how many were written."""
    raise NotImplementedError


def format_ip(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Format address halves as strings (IPv4-mapped as dotted quads)."""
    raise NotImplementedError


def parse_ip(text: str) -> tuple[int, int]:
    """Parse an address into its (hi, lo) halves."""
    raise NotImplementedError
