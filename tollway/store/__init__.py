"""Persistence: the schema, the database connection and migrations (SQLite or PostgreSQL)."""
