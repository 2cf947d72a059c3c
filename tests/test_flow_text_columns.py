"""The flow table's text columns, built as Arrow arrays, hold what Python would write."""

from __future__ import annotations

import numpy as np

from auditor.flows.orient import _DECIDED, _member, payload_hex
from auditor.flows.text import taken
from auditor.schema import ORIENTATIONS


def test_payload_hex_is_each_rows_kept_bytes_in_lower_case_hex():
    rng = np.random.default_rng(5)
    b = rng.integers(0, 256, (300, 28), dtype=np.uint8)
    length = rng.integers(-3, 60, 300)
    text = payload_hex(b, length).tolist()
    assert text == [bytes(row[: max(0, min(n, 28))]).hex() for row, n in zip(b, length, strict=True)]
    assert "" in text and any(len(t) == 56 for t in text)


def test_taken_is_the_vocabulary_indexed_by_the_codes():
    words = ("", "fin", "rst")
    codes = np.array([2, 0, 1, 1, 2])
    out = taken(words, codes)
    assert out.tolist() == ["rst", "", "fin", "fin", "rst"] and str(out.dtype) == "str"


def test_member_lookup_equals_isin_for_bytes_ports_and_signed_values():
    rng = np.random.default_rng(9)
    ports = rng.integers(0, 65536, 2000).astype(np.uint16)
    signed = rng.integers(-1, 256, 2000).astype(np.int16)
    for values, choices in ((ports, (53, 88, 389, 3268, 65535)), (signed, (-1, 0, 5, 255, 300)),
                            (ports.astype(np.int64), (80, 443))):
        assert (_member(values, choices) == np.isin(values, choices)).all()


def test_every_orientation_the_first_pass_writes_is_in_the_vocabulary():
    assert set(_DECIDED) <= set(ORIENTATIONS) and len(set(_DECIDED)) == len(_DECIDED)
