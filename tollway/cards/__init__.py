"""Calling cards: batches of prepaid cards, each a client account of its reseller, used with a PIN."""
