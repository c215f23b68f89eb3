"""Money operations on tree nodes: top-ups, adjustments, credit limits, conversions, balances."""
