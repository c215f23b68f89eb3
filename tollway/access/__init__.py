"""Who may see and change what: users, API keys, roles, the one authorization rule, the audit log
(docs/design.md section 9)."""
