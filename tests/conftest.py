"""Test-wide settings: the CLI's default cache goes to a temporary folder, not ~/.cache."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
