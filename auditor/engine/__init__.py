"""Running stages 1-2 at scale: per-file partial aggregates, worker processes, cache, Dask.

- `arrowfile`: One data frame as one Arrow IPC file, its buffers zstd-compressed: the observation
  cache's tables.
- `cache`: A cache of each capture file's partial aggregates and candidate packets, as Parquet.
- `cachebase`: The caches' standard-library half: what they are keyed by, where entries lie, and
  replaying their warnings, so that a memo hit (cli/memo.py) decides and answers before numpy,
  pandas or the engine load.
- `candidates`: The few packets per flow that discovery may hand to tshark, kept while the capture
  streams.
- `dask_run`: Read and merge capture files on a Dask cluster (the optional `auditor[dask]` extra).
- `eviction`: Keeping the cache folder under a size: least recently used entries go first.
- `fileread`: Read one capture file into partial flow aggregates, candidate packets and ICMP quotes.
- `interleave`: Capture files that overlap in time, folded as one stream merged by timestamp (as
  mergecap).
- `observed`: A cache of a whole capture set's observation: its finished flows and its RPC
  discovery.
- `pages`: How this process asks the kernel for memory: small pages for numpy's big arrays, and
  Arrow's buffers from the C library's allocator.
- `partstore`: One file's merged partials and candidates, kept so that a merge touches only what
  changes.
- `remote`: Capture files named by fsspec URLs (`s3://bucket/ring/x.pcapng`, `file:///srv/x.pcap`,
  ...).
- `ranges`: One capture file read as byte ranges on several cores, joined into what one read
  gives.
- `results`: A memo of an audit's rendered output: the same command, run again on unchanged
  inputs, gives what it gave the first time without auditing again.
- `run`: Captures to flows without a packet table: per file on one core, every core, or a Dask
  cluster.
- `setmerge`: Merging the partials of a set's files wherever they were read (a Dask cluster, this
  process).
- `shipping`: A worker's result handed to this process through a shared-memory file, not a pipe
  copy.
- `urlread`: Read a capture file named by an fsspec URL into its partial aggregates.
- `urlset`: A capture set that names fsspec URLs: read where each file is opened, merged in time
  order.
- `window`: A --since/--until window applied inside the fold: packets outside it are never
  folded.
"""
