"""The double-entry, append-only ledger (DESIGN.md section 2), modelled on TigerBeetle."""
