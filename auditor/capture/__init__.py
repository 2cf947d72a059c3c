"""Stage 1, capture files to packet arrays.

- `formats`: what a stream is, from its magic bytes (compression, container, ETL).
- `bytesource`: where the bytes come from (a memory map, a stream, an archive member).
- `compression`: gzip, zstd, lz4, bzip2 and xz decompressed as a stream.
- `convert`: formats only tshark's wiretap reads, converted by editcap through a pipe.
- `records`: the chunk of records every container hands on, and the shared limits.
- `pcap`, `pcapng`, `netmon`: one container format each, cut into chunks of records.
- `reader`: opens one capture and drives its format's walker.
- `sets`: capture sets (folders, globs, several files, zip and tar archives) and time windows.
- `headers`: link, network and transport headers decoded column-wise for a chunk.
- `packets`: the packet table, reading a capture set, writing selected packets back out.
"""
