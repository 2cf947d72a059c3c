"""Stage 5, results to people and machines: one module per output.

- `cells`: Text cells made inert for spreadsheets and terminals (CSV, xlsx and reports share this).
- `common`: Values every report writer shares: plain cells, times, summary and capture rows.
- `csv_file`: Frames as CSV: ISO-8601 UTC times, inert text cells, one pass of pyarrow's writer.
- `diagram`: The role diagram: Exchange roles as boxes, documented and observed paths as labelled
  arrows.
- `diagram_layout`: Geometry of the role diagram: the fixed box layout, arrow routes and label
  placement.
- `diff_text`: Terminal and Markdown renderings of the comparison of two audits (`auditor diff`).
- `html`: The HTML report: one self-contained page with inline PNG plots and a sortable findings
  table.
- `json_export`: The audit's JSON contract: a versioned document described by
  `data/audit-result.schema.json`.
- `json_tables`: Tables as JSON, and their JSON Schemas, both derived from the columns in
  `auditor/schema.py`.
- `markdown`: The Markdown summary for tickets: capture strings escaped or code-quoted.
- `plots`: Role and host matrices of audited flows; the role diagram lives in
  `auditor.render.diagram`.
- `report`: Audit reports: one self-contained HTML page, a Markdown summary for tickets, an Excel
  workbook.
- `text`: Plain-text renderings for the terminal: the audit summary and the RPC endpoints.
- `verify_text`: Terminal and Markdown renderings of a ruleset verification (`auditor verify`).
- `xlsx`: The Excel workbook: one sheet per table, no capture string ever a formula.
- `zeek`: The flow table as a Zeek conn.log (TSV with Zeek's header lines), for Zeek and ZAT users.
"""
