"""Stage 3, tshark on the few packets that matter: EPM, binds, DCOM, host names.

- `dcerpc`: Deep dissection of a few selected packets with tshark: EPM, binds, DCOM, CL RPC, host
  names.
- `drilldown`: From a finding to its packets: open the few packets of one finding with pyshark.
- `names`: Host names and role hints from tshark's JSON trees (the packets select.py picks for
  names).
- `prestart`: tshark started before anything else (its display filter), with no pandas: `auditor
  audit` starts it before its imports.
- `rpc`: Dynamic RPC discovery: which DCE/RPC interface listens on which server port.
- `rpc_ranges`: Dynamic RPC port ranges: per server, the ports in use against the documented default
  range.
- `rpc_use`: One word for what happened at a discovered RPC endpoint, the same in every output.
- `select`: Which packets go to tshark: a bounded sample of the flows that can hold RPC or name
  facts.
- `tshark`: Run tshark over a (small) capture and hand back each packet as plain JSON trees.
"""
