"""Persistence: the schema, the database connection and migrations (SQLite or PostgreSQL;
docs/design.md section 8)."""
