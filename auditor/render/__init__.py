"""Stage 5, results to people and machines: one module per output.

- `text`: terminal tables.
- `json_export`: the versioned audit JSON document.
- `report`: `write_report` by file suffix; `common`: values the writers share.
- `html`, `markdown`, `xlsx`: the reports.
- `verify_text`, `diff_text`: `auditor verify` and `auditor diff` for terminal and Markdown.
- `zeek`: the flow table as a Zeek conn.log.
- `plots`: role and host matrices; `diagram` and `diagram_layout`: the role diagram.
"""
