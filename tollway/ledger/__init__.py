"""The double-entry, append-only ledger (docs/design.md section 2), modelled on TigerBeetle."""
