"""Tables as JSON, and their JSON Schemas, both derived from the columns in `auditor/schema.py`.

One source of truth: a column's dtype gives its JSON type, its `sep` says it holds a list (an
array in JSON, never a ';'-joined string), and its description becomes the schema's. The
schemas shipped in `auditor/data/*.schema.json` are generated from here (`python -m
auditor.render.json_tables`); a test fails when a shipped one falls behind.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib import resources
from json.encoder import encode_basestring  # what json.dumps(text, ensure_ascii=False) calls
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.schema import (
    FIREWALL_COLUMNS,
    FLOW_COLUMNS,
    ROLE_EVIDENCE_COLUMNS,
    RPC_ENDPOINT_COLUMNS,
    RPC_RANGE_COLUMNS,
    RULE_COLUMNS,
    Column,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_VERSION = "1.0"
PORT_ITEM = {"oneOf": [
    {"type": "integer", "minimum": 0, "maximum": 65535},
    {"type": "string", "pattern": r"^(\d{1,5}-\d{1,5}|rpc-dynamic)$"},
]}


def records(frame: pd.DataFrame | None, columns: Sequence[Column],
            fields: Sequence[str] | None = None) -> list[dict]:
    """Rows as plain JSON values: ISO-8601 UTC times, None for missing, Python ints and bools,
    list columns as arrays (port lists with integers for single ports)."""
    if frame is None or frame.empty:
        return []
    by_name = {c.name: c for c in columns}
    names = fields if fields is not None else [c.name for c in columns]
    out: dict[str, list] = {}
    for name in names:
        if name in frame.columns:  # a column the table does not define keeps its plain values
            out[name] = _values(frame[name], by_name.get(name, Column(name, "", "", "")))
    names = list(out)
    return [dict(zip(names, row, strict=True)) for row in zip(*out.values(), strict=True)]


def records_json(frame: pd.DataFrame | None, columns: Sequence[Column],
                 fields: Sequence[str] | None = None, chunk_rows: int = 2048) -> str:
    """`json.dumps(records(...), ensure_ascii=False)`, the same text, made a chunk of rows at a
    time and a column at a time: each column's values become JSON text once (a text or code
    column's distinct values only), and each row is one format of its columns' texts, so a big
    finding table never exists as one Python dict per row (a fifth of the time of dumping the
    dicts)."""
    if frame is None or frame.empty:
        return "[]"
    by_name = {c.name: c for c in columns}
    names = [n for n in (fields if fields is not None else [c.name for c in columns])
             if n in frame.columns]  # a column the table does not define keeps its plain values
    if not names:
        return "[" + ", ".join(["{}"] * len(frame)) + "]"
    row = "{" + ", ".join(f"{json.dumps(n)}: %s" for n in names) + "}"
    parts = []
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start:start + chunk_rows]
        texts = [_json_texts(chunk[n], by_name.get(n, Column(n, "", "", ""))) for n in names]
        parts.append(", ".join([row % values for values in zip(*texts, strict=True)]))
    return "[" + ", ".join(parts) + "]"


def _json_texts(series: pd.Series, col: Column) -> list[str]:
    """Each value of a column as `json.dumps(value, ensure_ascii=False)` of its `_values` value."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        values = series.dt.tz_convert(None).to_numpy()
        text = np.datetime_as_string(values, unit="us", timezone="UTC").tolist()
        out = [f'"{t}"' for t in text]  # ISO 8601 needs no escapes (np.char would cost an import)
        for i in np.flatnonzero(np.isnat(values)):
            out[i] = "null"
        return out
    if series.dtype.kind == "b" and not series.hasnans:
        return np.where(series.to_numpy(), "true", "false").tolist()
    if series.dtype.kind in "iu" and not series.hasnans:
        return list(map(str, series.to_numpy().tolist()))  # Python ints: json's int repr
    if isinstance(series.dtype, pd.StringDtype) and not col.sep:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        texts = [*map(encode_basestring, uniques.to_numpy(dtype=object)), "null"]
        return np.array(texts, dtype=object)[codes].tolist()  # code -1 (NA): the last, null
    known: dict = {}
    out = []
    for v in _values(series, col):
        if type(v) is str:
            out.append(encode_basestring(v))
            continue
        try:
            out.append(known[type(v), v])
        except KeyError:
            out.append(known.setdefault((type(v), v), json.dumps(v, ensure_ascii=False)))
        except TypeError:  # a list
            out.append(json.dumps(v, ensure_ascii=False))
    return out


def _values(series: pd.Series, col: Column) -> list:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        values = series.dt.tz_convert(None).to_numpy()
        text = np.datetime_as_string(values, unit="us", timezone="UTC").astype(object)
        text[np.isnat(values)] = None
        return text.tolist()
    if series.dtype.kind in "iub":
        if not series.hasnans:
            return series.to_numpy().tolist()  # Python ints and bools
        # nullable integers (Int64) and booleans: NA is null, never NaN (which is not JSON)
        plain = bool if series.dtype.kind == "b" else int
        return [None if pd.isna(v) else plain(v) for v in series.astype(object)]
    if series.dtype.kind == "f":
        values = series.to_numpy(dtype=float)
        return [None if np.isnan(v) else float(v) for v in values]
    values = series.astype(object).to_numpy(copy=True)
    values[pd.isna(values)] = None
    if col.sep:
        port = col.name.endswith("ports")
        return [_split(v, col.sep, port) for v in values]
    if isinstance(series.dtype, pd.StringDtype):
        return values.tolist()  # text or None already
    return [_plain(v) for v in values]


def _split(value, sep: str, port: bool) -> list:
    if value is None:
        return []
    if isinstance(value, tuple | list):
        parts = [str(v) for v in value]
    else:
        parts = [p.strip() for p in str(value).split(sep)]
    parts = [p for p in parts if p]
    return [int(p) if port and p.isdigit() else p for p in parts]


def _plain(value):
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def roles_document(inventory, evidence: pd.DataFrame | None) -> dict:
    """The proposed inventory (an `auditor.Inventory`) and its evidence as one JSON document."""
    return {
        "schema_version": SCHEMA_VERSION,
        "hosts": [{"name": h.name, "addresses": list(h.addresses), "roles": list(h.roles)}
                  for h in inventory.hosts],
        "networks": [{"name": n.name, "cidr": n.cidr, "roles": list(n.roles)}
                     for n in inventory.networks],
        "default_roles": list(inventory.default_roles),
        "evidence": records(evidence, ROLE_EVIDENCE_COLUMNS),
    }


def rpc_document(endpoints: pd.DataFrame, ranges: pd.DataFrame) -> dict:
    """Discovered RPC endpoints and the per-server dynamic ranges as one JSON document."""
    return {"schema_version": SCHEMA_VERSION,
            "endpoints": records(endpoints, RPC_ENDPOINT_COLUMNS),
            "ranges": records(ranges, RPC_RANGE_COLUMNS)}


def to_json(value) -> str:
    """JSON text: UTF-8 kept as is, one value per line for arrays of records."""
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


# ---- schemas ------------------------------------------------------------------------------------


def column_schema(col: Column) -> dict:
    """The JSON Schema of one column's values."""
    if col.sep:
        items = PORT_ITEM if col.name.endswith("ports") else {"type": "string"}
        return {"type": "array", "items": items, "description": col.description}
    dtype = col.dtype
    if dtype.startswith("datetime64"):
        kind: dict = {"type": ["string", "null"], "format": "date-time"}
    elif dtype == "bool":
        kind = {"type": "boolean"}
    elif dtype in ("Int64",):
        kind = {"type": ["integer", "null"]}
    elif dtype.startswith(("int", "uint")):
        kind = {"type": "integer"}
        if dtype.startswith("uint"):
            kind["minimum"] = 0
    elif dtype.startswith("float"):
        kind = {"type": ["number", "null"]}
    elif dtype == "object":
        kind = {"type": "array", "items": {"type": "string"}}
    else:
        kind = {"type": ["string", "null"]}
    return {**kind, "description": col.description}


def row_schema(columns: Sequence[Column]) -> dict:
    """An object with exactly these columns."""
    return {
        "type": "object",
        "properties": {c.name: column_schema(c) for c in columns},
        "required": [c.name for c in columns],
        "additionalProperties": False,
    }


def _array(columns: Sequence[Column]) -> dict:
    return {"type": "array", "items": row_schema(columns)}


def _document(name: str, title: str, description: str, body: dict) -> dict:
    return {"$schema": DRAFT, "$id": f"auditor/{name}/{SCHEMA_VERSION}", "title": title,
            "description": description, **body}


def _hosts_schema() -> dict:
    return {"type": "array", "items": {
        "type": "object", "required": ["name", "addresses", "roles"], "additionalProperties": False,
        "properties": {"name": {"type": "string"},
                       "addresses": {"type": "array", "items": {"type": "string"}},
                       "roles": {"type": "array", "items": {"type": "string"}}}}}


def _networks_schema() -> dict:
    return {"type": "array", "items": {
        "type": "object", "required": ["name", "cidr", "roles"], "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "cidr": {"type": "string"},
                       "roles": {"type": "array", "items": {"type": "string"}}}}}


def schemas() -> dict[str, dict]:
    """Every table-shaped JSON output's schema, by file stem under auditor/data/."""
    return {
        "flows": _document("flows", "auditor flows", "Output of `auditor flows --format json`: one "
                           "object per flow.", _array(FLOW_COLUMNS)),
        "catalogue": _document("catalogue", "auditor catalogue", "Output of `auditor catalogue "
                               "--format json`: one object per rule.", _array(RULE_COLUMNS)),
        "firewall": _document("firewall", "auditor firewall", "Output of `auditor firewall --format "
                              "json`: one object per requested rule.", _array(FIREWALL_COLUMNS)),
        "rpc": _document("rpc", "auditor rpc", "Output of `auditor rpc --format json`.", {
            "type": "object", "required": ["schema_version", "endpoints", "ranges"],
            "additionalProperties": False,
            "properties": {"schema_version": {"const": SCHEMA_VERSION},
                           "endpoints": _array(RPC_ENDPOINT_COLUMNS),
                           "ranges": _array(RPC_RANGE_COLUMNS)}}),
        "roles": _document("roles", "auditor roles", "Output of `auditor roles --format json`: the "
                           "proposed inventory and the evidence behind each role.", {
            "type": "object",
            "required": ["schema_version", "hosts", "networks", "default_roles", "evidence"],
            "additionalProperties": False,
            "properties": {"schema_version": {"const": SCHEMA_VERSION},
                           "hosts": _hosts_schema(), "networks": _networks_schema(),
                           "default_roles": {"type": "array", "items": {"type": "string"}},
                           "evidence": _array(ROLE_EVIDENCE_COLUMNS)}}),
    }


def shipped_schema(name: str) -> dict:
    """The schema shipped as auditor/data/NAME.schema.json."""
    text = resources.files("auditor").joinpath(f"data/{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def schema_text(schema: dict) -> str:
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every generated schema into folder (the package's data/ by default)."""
    written = []
    for name, schema in schemas().items():
        path = folder / f"{name}.schema.json"
        path.write_text(schema_text(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # regenerate the shipped schemas after a schema.py change
    for p in write_schemas(Path(__file__).resolve().parents[1] / "data"):
        sys.stdout.write(f"wrote {p}\n")
