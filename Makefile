# The two commands of the quick start: `make run` and `make test`.

.PHONY: run test lint demo-db clean

run:  ## install, create the SQLite database with demo data and logins (the demo checks the ledger), serve on http://127.0.0.1:8080
	scripts/bootstrap
	.venv/bin/tollway init
	.venv/bin/tollway demo
	.venv/bin/tollway serve

test:  ## install (with Kamailio, sipp, radclient and Chromium from Debian), lint, type-check, run every test on SQLite and PostgreSQL
	scripts/bootstrap --test
	scripts/install-switch-tools
	scripts/install-pdf-libraries
	scripts/install-browser
	.venv/bin/ruff check tollway tests bench
	.venv/bin/mypy
	.venv/bin/pytest --db sqlite --db postgresql -n auto --durations=25

clean:
	rm -rf .venv var .pytest_cache .mypy_cache .ruff_cache .hypothesis
