"""Stage 1, capture files to packet arrays.

- `bytesource`: where the bytes come from (a memory map, or a streamed decompressor).
- `pcapfmt`: container formats (pcap, pcapng) cut into chunks of records.
- `headers`: link, network and transport headers decoded column-wise for a chunk.
- `packets`: the packet table, reading a capture set, writing selected packets back out.
"""
