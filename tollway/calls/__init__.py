"""Real-time credit control: calls authorized, granted, extended and ended at every level of the chain
(docs/design.md section 4)."""
