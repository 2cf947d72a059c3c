"""Run tshark over a (small) capture and hand back each packet as plain JSON trees.

tshark runs directly (`tshark -T json --no-duplicate-keys`): repeated keys (several towers,
several PDUs in a segment) become JSON lists, so readers walk the trees generically with
`_nodes`, `_values` and `_first`. What the trees mean (RPC facts, host names) is dissect.py's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditor.errors import DissectError
from auditor.schema import Column, empty_frame


@dataclass(frozen=True)
class _Packet:
    number: int
    ts_ns: int
    src: str
    dst: str
    sport: int
    dport: int
    stream: int  # tcp.stream, -1 for UDP
    layers: dict[str, list[dict]]  # layer name -> JSON trees (several when a PDU repeats)


def _tshark(tshark_path: str | None) -> str:
    found = shutil.which(tshark_path or "tshark")
    if found is None:
        raise DissectError(f"{tshark_path or 'tshark'}: tshark not found: install it "
                           "(apt-get install tshark)")
    return found


def _packets(pcap_path, display_filter: str, tshark_path: str | None) -> Iterator[_Packet]:
    """Yield the packets of `pcap_path` that match `display_filter`, as plain JSON trees."""
    path = Path(pcap_path)
    if not path.is_file():
        raise DissectError(f"{path}: no such capture file")
    # --no-duplicate-keys turns repeated keys (several towers, several PDUs) into JSON lists
    cmd = [_tshark(tshark_path), "-n", "-r", str(path), "-Y", display_filter, "-T", "json",
           "--no-duplicate-keys"]
    try:
        done = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False)
        docs = json.loads(done.stdout or b"[]") if done.returncode == 0 else None
    except (OSError, ValueError) as exc:
        raise DissectError(f"{path}: tshark failed: {exc}") from exc
    if docs is None:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines()
                 if line.strip() and not line.startswith("Running as user")]
        raise DissectError(f"{path}: tshark failed: {lines[-1].strip() if lines else done.returncode}")
    for doc in docs:
        yield _plain(doc["_source"]["layers"])


def _plain(tree: dict) -> _Packet:
    layers = {name: value if isinstance(value, list) else [value] for name, value in tree.items()}
    frame = layers.get("frame", [{}])[0]
    prefix = "ip" if "ip" in layers else "ipv6"
    ip = layers.get(prefix, [{}])[0]
    l4 = "tcp" if "tcp" in layers else "udp"
    l4tree = layers.get(l4, [{}])[0]
    return _Packet(
        number=_int(frame.get("frame.number")),
        ts_ns=_epoch_ns(frame.get("frame.time_epoch", "0")),
        src=ip.get(f"{prefix}.src", ""),
        dst=ip.get(f"{prefix}.dst", ""),
        sport=_int(l4tree.get(f"{l4}.srcport")),
        dport=_int(l4tree.get(f"{l4}.dstport")),
        stream=_int(l4tree.get("tcp.stream"), -1) if l4 == "tcp" else -1,
        layers=layers,
    )


def _epoch_ns(text: str) -> int:
    # float() would drop the nanoseconds of "1710370252.386597943"
    sec, _, frac = str(text).partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


# --- JSON tree helpers ----------------------------------------------------------------------------


def _nodes(tree) -> Iterator[dict]:
    """Every dict in a JSON tree, parents before children, in document order."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)


def _values(tree, key: str) -> list:
    """All values of `key` anywhere in the tree, in document order (lists flattened)."""
    out: list = []
    for node in _nodes(tree):
        if key in node:
            value = node[key]
            out.extend(value if isinstance(value, list) else [value])
    return out


def _first(tree, key: str, default=None):
    found = _values(tree, key)
    return found[0] if found else default


def _int(value, default: int = 0) -> int:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return default
    try:
        return int(str(value), 0)
    except ValueError:
        return default


def _frame(rows: list[dict], columns: tuple[Column, ...]) -> pd.DataFrame:
    if not rows:
        return empty_frame(columns)
    frame = pd.DataFrame(rows)
    out = {}
    for col in columns:
        values = frame[col.name]
        if col.dtype.startswith("datetime64"):
            out[col.name] = pd.to_datetime(values.astype("int64"), unit="ns", utc=True)
        elif col.dtype == "Int64":
            out[col.name] = pd.array(values.tolist(), dtype="Int64")
        else:
            out[col.name] = values.astype(col.dtype)
    return pd.DataFrame(out)
