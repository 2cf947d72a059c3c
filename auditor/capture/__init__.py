"""Stage 1, capture files to packets: formats, compression and sets, read in chunks.

- `bytesource`: Where a capture file's bytes come from: the file memory-mapped whole, or a stream.
- `chain`: Follow a chain of records, each header saying where the next starts, with numpy and
  exactly.
- `compression`: Streamed decompression of gzip, zstd, lz4 (frame), bzip2 and xz, member after
  member.
- `convert`: Formats only tshark's wiretap reads (snoop, ERF, NetMon 1.x, NetXRay, ...), via
  editcap.
- `formats`: Tell a capture's container and compression from its first bytes, never from its name.
- `headers`: Decode IP and transport headers of a chunk of capture records with numpy (the link
  layer: `links`).
- `links`: Link layers of capture records with numpy: Ethernet (VLAN tags, MPLS label stacks,
  PPPoE sessions), Linux cooked capture, BSD loopback and raw IP; and the big-endian field
  readers the header decoders share.
- `netmon`: Microsoft Network Monitor 2.x (`.cap` from NetMon 3.x and Message Analyzer exports).
- `packets`: Read pcap/pcapng captures (optionally gzip-compressed) into vectorised packet arrays.
- `pcap`: Classic pcap and the variants tshark reads that differ only in record-header layout.
- `pcapng`: pcapng: sections in either byte order, interfaces with their own link type and
  resolution.
- `reader`: Open one capture, tell its compression and format by magic bytes, and read it in chunks.
- `records`: What every container reader hands on: chunks of packet records, and the limits they
  obey.
- `records_at`: Fetch the records discovery needs at their known byte offsets, not by a walk.
- `sets`: Capture sets as users send them, and the time window that restricts them.
- `split`: Byte ranges of one large capture file that separate workers can read, each from a
  record start.
"""
