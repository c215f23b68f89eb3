"""Agents and the money around them: terms, deposits, fees, commissions, customer profiles, batches
(docs/design.md section 5)."""
