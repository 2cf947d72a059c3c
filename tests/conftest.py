"""Test-wide settings: the CLI's default cache goes to a temporary folder, not ~/.cache; one real
Dask LocalCluster fixture for the tests that run the engine on a cluster."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def dask_cluster():
    """A real distributed.LocalCluster of 2 worker processes (skipped without the dask extra)."""
    distributed = pytest.importorskip("distributed")
    # ":0": a free port. With None the scheduler still serves /metrics on 8787, so a second
    # cluster on the machine (another test run, a user's dashboard) made this fixture fail.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as cluster:
        yield cluster
