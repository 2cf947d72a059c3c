"""The engine asks for small pages for numpy's big arrays (engine/pages.py): the kernel zeroes
only the pages an array touches, not a whole 2 MiB huge page per first touch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auditor.engine.pages import small_pages
from auditor.engine.run import stream_flows
from auditor.options import EngineOptions

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot" / "pilot.pcapng"


def _switch():
    return np._core.multiarray._set_madvise_hugepage


def test_a_read_leaves_numpy_no_longer_advising_huge_pages():
    switch = _switch()
    before = switch(True)  # as numpy starts on Linux
    try:
        stream_flows([PILOT], engine=EngineOptions(workers=1))
        assert switch(True) is False  # the engine had turned the advice off
        assert small_pages() is True and small_pages() is False
    finally:
        switch(before)
