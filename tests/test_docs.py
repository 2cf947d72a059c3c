"""Docs are tested: the public API exists, every schema column is described, README covers the CLI."""

from __future__ import annotations

import auditor
from auditor import schema


def test_every_public_name_resolves():
    for name in auditor.__all__:
        assert getattr(auditor, name) is not None, name


def test_every_schema_column_has_a_description_and_a_dtype():
    tables = [v for k, v in vars(schema).items() if k.endswith("_COLUMNS")]
    assert len(tables) >= 8
    for table in tables:
        names = [c.name for c in table]
        assert len(names) == len(set(names))
        for col in table:
            assert col.description and col.dtype, col.name
            assert col.name == col.name.lower() and " " not in col.name


def test_every_public_function_has_a_docstring():
    for name in auditor.__all__:
        obj = getattr(auditor, name)
        if callable(obj) and name != "__version__":
            assert (obj.__doc__ or "").strip(), name
