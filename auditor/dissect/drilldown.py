"""From a finding to its packets: open the few packets of one finding with pyshark.

pyshark (the optional extra `auditor[pyshark]`) drives tshark and gives Wireshark's field names
on each packet, which is what interactive drill-down wants; it is far too slow for bulk work
and stays off every bulk path. pyshark runs its own asyncio loop, which clashes with the loop
Jupyter already runs, so the capture is read in a worker thread with a fresh loop of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from auditor.errors import DissectError


def _read(path: str, display_filter: str, limit: int, tshark_path: str | None) -> list:
    import pyshark

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    capture = pyshark.FileCapture(path, display_filter=display_filter, keep_packets=True,
                                  eventloop=loop, tshark_path=tshark_path)
    try:
        packets = []
        for packet in capture:
            packets.append(packet)
            if len(packets) >= limit:
                break
        return packets
    finally:
        try:
            capture.close()
        except Exception as exc:
            # asyncio's thread child watcher sometimes loses tshark's exit status (the pid is
            # reaped elsewhere) and pyshark calls that a crash; tshark has exited and every
            # packet asked for was read, so only that report is dropped.
            if type(exc).__name__ != "TSharkCrashException":
                raise
        finally:
            capture._running_processes.clear()  # or pyshark's __del__ closes again, loop closed
            loop.close()


def finding_packets(capture: str | Path, display_filter: str, *, limit: int = 50,
                    tshark_path: str | None = None) -> list:
    """The first `limit` packets of CAPTURE matching a finding's display filter, as pyshark packets.

    Works inside Jupyter's running event loop (pyshark gets a loop of its own in a thread).
    """
    try:
        import pyshark  # noqa: F401
    except ImportError:
        raise DissectError("drill-down needs pyshark: pip install 'auditor[pyshark]'") from None
    if not display_filter:
        raise ValueError("an empty display filter would open every packet of the capture")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_read, str(capture), display_filter, limit, tshark_path).result()
