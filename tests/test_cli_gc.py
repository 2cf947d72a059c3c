"""The command line's first import of the engine's libraries (cli/engine_opts.imports_without_gc):
the collector is paused while modules load, and what they made is frozen out of later
collections; a process that had the libraries already keeps its collector as it was."""

from __future__ import annotations

import gc
import subprocess
import sys


def test_the_first_import_of_the_libraries_freezes_what_it_made_and_collects_again():
    script = ("import gc\nfrom auditor.cli.engine_opts import imports_without_gc\n"
              "before = gc.get_freeze_count()\n"
              "with imports_without_gc():\n    import pandas  # noqa: F401\n"
              "print(before, gc.get_freeze_count(), gc.isenabled())\n")
    got = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    before, after, enabled = got.stdout.split()
    assert int(before) == 0 and int(after) > 10_000  # pandas and numpy alone make ~100k objects
    assert enabled == "True"


def test_a_process_with_the_libraries_loaded_keeps_its_collector_unfrozen():
    import pandas  # noqa: F401  (a notebook or the tests: loaded already)

    from auditor.cli.engine_opts import imports_without_gc

    before = gc.get_freeze_count()
    with imports_without_gc():
        import pyarrow  # noqa: F401
    assert gc.get_freeze_count() == before
    assert gc.isenabled()
