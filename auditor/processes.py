"""How many worker processes this process may run, and whether it may fork them."""

from __future__ import annotations

import os
import threading
from multiprocessing import get_all_start_methods


def usable_cores() -> int:
    """Cores this process may run on (taskset and cgroups' cpusets count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def may_fork() -> bool:
    """Fork only while this process runs one thread: a fork may copy a lock a thread holds."""
    return threading.active_count() == 1 and "fork" in get_all_start_methods()


__all__ = ["may_fork", "usable_cores"]
