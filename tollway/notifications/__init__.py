"""Notifications: low-balance notices by email, queued in an outbox and sent over SMTP with retries."""
