"""The whole job in one call: captures -> flows -> RPC discovery and names -> audit."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.audit.classify import rpc_annotation
from auditor.audit.proposed import mark_proposed, proposed_inventory
from auditor.audit.verdicts import AuditResult, PreparedFlows, audit_flows, prepare_flows
from auditor.capture.packets import PacketTable
from auditor.dissect.prestart import prestarted_tshark
from auditor.dissect.rpc import RpcDiscovery, build_endpoints, discover_endpoints
from auditor.dissect.rpc_ranges import dynamic_ranges
from auditor.dissect.tshark import PrestartedTshark
from auditor.engine import observed as observed_cache
from auditor.engine.run import EngineReport, stream_flows
from auditor.errors import DissectError, DissectWarning
from auditor.flows.orient import apply_endpoints
from auditor.heap import give_back_memory
from auditor.options import PipelineOptions, audit_read_options
from auditor.schema import RPC_ENDPOINT_COLUMNS, empty_frame


@dataclass(frozen=True)
class Observation:
    """What the captures show before any comparison: packets, flows, RPC endpoints, names."""

    table: PacketTable  # the candidate packets discovery may need, not every packet
    flows: pd.DataFrame
    labels: np.ndarray  # flow_id per packet row
    rpc: RpcDiscovery | None  # None when discovery was skipped
    warnings: tuple[str, ...]
    engine: EngineReport | None = None  # how the files were read (workers, cache)
    # classify.rpc_annotation of the flows (None: not worked out yet, or no discovery)
    annotation: pd.DataFrame | None = None


def observe(
    captures: Sequence[str | Path],
    options: PipelineOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    tshark: PrestartedTshark | None = None,
) -> Observation:
    """Read the captures, build flows and (when asked) discover RPC endpoints and host names.

    `tshark`: one started earlier for the discovery (`dissect.prestart.early_tshark`); its
    starter closes it. Without it, one is started here, to load while the capture is read."""
    options = options or PipelineOptions()
    key, hit = _from_cache(captures, options)
    return hit or _observe(captures, options, progress, key, tshark)


def _observe(captures, options: PipelineOptions, progress, key=None,
             given: PrestartedTshark | None = None) -> Observation:
    starting = (prestarted_tshark(options.rpc_options.names, given) if options.rpc
                else contextlib.nullcontext())
    kinds: list[tuple[str, str]] = []
    with _passed_on_warnings(kinds) as notes, starting as tshark:
        got = stream_flows(captures, options.flows, options.rpc_options, options.engine, progress)
        table, flows, labels = got.table, got.flows, got.labels
        discovery = _discover(table, flows, labels, options, tshark) if options.rpc else None
        flows, discovery = _second_pass(flows, discovery, options)
    seen = Observation(table, flows, labels, discovery, tuple(notes), got.report)
    _remember(key, seen, kinds, options)
    return seen


def _from_cache(captures, options: PipelineOptions, packets: bool = True):
    """(the cache key of these captures and options, their cached Observation or None; without
    its candidate packets unless `packets`)."""
    key = observed_cache.observation_key(captures, options)
    hit = key and observed_cache.load(options.engine.cache_dir, *key, packets=packets)
    if not hit:
        return key, None
    observed_cache.replay(hit.warnings)
    report = EngineReport(len(hit.table.files), 0, "local", len(hit.table.files), True)
    logging.getLogger("auditor.engine").debug("%s; flows and RPC discovery from the cache",
                                              report.line())
    return key, Observation(hit.table, hit.flows, hit.labels, hit.rpc,
                            tuple(dict.fromkeys(m for _, m in hit.warnings)), report,
                            hit.annotation)


def _remember(key, seen: Observation, kinds, options: PipelineOptions) -> None:
    """Store an observation whose discovery ran (or was not asked for) under its cache key."""
    if key is None or (options.rpc and seen.rpc is None) or not seen.engine.streamed:
        return
    observed_cache.store(options.engine.cache_dir, key[0], observed_cache.Observed(
        seen.table, seen.flows, seen.labels, seen.rpc, tuple(kinds), seen.annotation))


@contextlib.contextmanager
def _passed_on_warnings(kinds: list[tuple[str, str]] | None = None):
    """Collect the warnings of a block as distinct lines, then hand them on to the caller's filters
    (`kinds` also gets each distinct (category name, line), for the cache)."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notes
    notes.extend(dict.fromkeys(str(w.message) for w in caught))
    if kinds is not None:
        kinds.extend(dict.fromkeys((w.category.__name__, str(w.message)) for w in caught))
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _discover(table, flows, labels, options: PipelineOptions, tshark=None):
    try:
        return discover_endpoints(table, flows, labels, options=options.rpc_options,
                                  tshark=tshark)
    except DissectError as exc:
        warnings.warn(f"RPC discovery and host naming skipped: {exc}", DissectWarning, stacklevel=3)
        return None


def _second_pass(flows, discovery, options: PipelineOptions):
    """Re-orient guessed flows with the RPC endpoints discovery found (flows.orient), then
    count the endpoints' flows again: a flow turned round now reaches its endpoint."""
    if discovery is None:
        return flows, discovery
    turned = apply_endpoints(flows, discovery.endpoints)
    if turned is flows:
        return flows, discovery
    endpoints = build_endpoints(discovery.facts, turned,
                                infer_window_s=options.rpc_options.infer_window_s)
    return turned, dataclasses.replace(discovery, endpoints=endpoints)


def audit_captures(
    captures: Sequence[str | Path],
    inventory,
    catalogue,
    options: PipelineOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    tshark: PrestartedTshark | None = None,
) -> AuditResult:
    """Audit captures against an inventory and a catalogue (the `auditor audit` job).

    tshark dissects the selected RPC packets in a worker thread (it waits on the subprocess
    with the GIL released) while this thread works out roles and paths, which need no RPC.
    With `inventory=None` the inventory is proposed from the captures (audit/proposed.py).
    `tshark`: as `observe`'s.
    """
    options = options or PipelineOptions()
    if inventory is None:  # read once, propose, audit with the proposal
        seen = observe(captures, options, progress, tshark)
        inventory = proposed_inventory(seen)
        names = seen.rpc.names if seen.rpc is not None else None
        return mark_proposed(audit_observation(seen, inventory, catalogue, options), inventory,
                             names)
    options = audit_read_options(options, inventory_given=True)
    key, hit = _from_cache(captures, options, packets=False)  # the audit reads only its files
    if hit is not None or not options.rpc:
        seen = hit or _observe(captures, options, progress, key)
        return audit_observation(seen, inventory, catalogue, options)
    kinds: list[tuple[str, str]] = []
    with _passed_on_warnings(kinds), prestarted_tshark(options.rpc_options.names,
                                                       tshark) as tshark:
        seen = _observe(captures, dataclasses.replace(options, rpc=False), progress)
        give_back_memory()  # the read's and finish's freed heap, before discovery and audit
        with _passed_on_warnings() as notes, ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_discover, seen.table, seen.flows, seen.labels, options, tshark)
            try:
                prepared = prepare_flows(seen.flows, inventory)
                discovery = pending.result()
            except BaseException:  # an interrupt: stop tshark so the worker stops waiting on it
                if tshark is not None:
                    tshark.close()
                raise
            flows, discovery = _second_pass(seen.flows, discovery, options)
            if flows is not seen.flows:
                prepared = prepare_flows(flows, inventory)
    annotation = rpc_annotation(flows, discovery.endpoints) if discovery is not None else None
    seen = dataclasses.replace(seen, flows=flows, rpc=discovery,
                               warnings=seen.warnings + tuple(notes), annotation=annotation)
    _remember(key, seen, kinds, options)
    seen = _without_packets(seen)
    give_back_memory()  # before the audit's own peak
    return audit_observation(seen, inventory, catalogue, options, prepared=prepared)


def _without_packets(seen: Observation) -> Observation:
    """The observation without its candidate packets: once discovery has dissected them the
    audit reads only the table's files, and on a big capture the candidates (hundreds of
    thousands of rows) would stay in memory through the audit's own peak."""
    # copies: an empty slice is a view that keeps the whole candidate frame alive (82 MiB of
    # the 3M-packet benchmark's audit peak)
    table = dataclasses.replace(seen.table, packets=seen.table.packets.iloc[0:0].copy(),
                                spans=None)
    return dataclasses.replace(seen, table=table, labels=seen.labels[0:0].copy())


def audit_observation(seen: Observation, inventory, catalogue,
                      options: PipelineOptions | None = None,
                      prepared: PreparedFlows | None = None) -> AuditResult:
    """Audit an Observation (so one capture read can serve several inventories)."""
    options = options or PipelineOptions()
    endpoints = seen.rpc.endpoints if seen.rpc is not None else None
    names = seen.rpc.names if seen.rpc is not None else None
    binds = seen.rpc.facts.binds if seen.rpc is not None else None
    result = audit_flows(seen.flows, inventory, catalogue, rpc_endpoints=endpoints, names=names,
                         options=options.audit, prepared=prepared, rpc_binds=binds,
                         rpc_annotation=seen.annotation if endpoints is not None else None)
    if endpoints is None:
        endpoints = empty_frame(RPC_ENDPOINT_COLUMNS)
    return dataclasses.replace(
        result,
        captures=tuple(seen.table.files),
        warnings=seen.warnings,
        rpc=endpoints,
        rpc_ranges=dynamic_ranges(endpoints),
        summary={**result.summary, "rpc_discovery": seen.rpc is not None,
                 "orientation": {k: int(v) for k, v in
                                 seen.flows["orientation"].value_counts().items()}},
    )
