"""Agents and the money around them: terms, deposits, fees, commissions, customer profiles, batches."""
