"""The online shop: each seller's payment gateways, what its shop offers, payments, refunds and records."""
