"""The ownership tree: provider, resellers (three levels), agents and client accounts
(docs/design.md section 1)."""
