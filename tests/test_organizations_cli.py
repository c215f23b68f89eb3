"""`tollway organization ...` and `tollway line ...` as an operator runs them: real processes, real files."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.test_cli import TOLLWAY
from tollway.organizations import model
from tollway.sealing import Sealer
from tollway.store.database import Database

KEY = Sealer.new_key()


def tollway(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOLLWAY_DATABASE_URL": url, "TOLLWAY_SECRET_KEY": KEY, "COLUMNS": "200"}
    return subprocess.run([TOLLWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_an_operator_makes_users_and_extensions_imports_accounts_and_sets_follow_me(
    database: Database, tmp_path: Path
) -> None:
    url = database.url
    assert tollway("demo", "--dev", url=url).returncode == 0
    made = tollway("organization", "user", "acme-pbx", "ann", "Ann Lee", "--email", "ann@acme.example", url=url)
    assert made.returncode == 0, made.stderr
    secrets = tmp_path / "ann.txt"
    extension = tollway("organization", "extension", "acme-pbx", "ann", "101", "--secrets", str(secrets), url=url)
    assert extension.returncode == 0, extension.stderr
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    aor, secret = secrets.read_text().split()
    assert aor == "101@acme-pbx" and len(secret) == model.SIP_SECRET_LENGTH
    again = tollway("organization", "extension", "acme-pbx", "ann", "102", "--secrets", str(secrets), url=url)
    assert again.returncode == 1 and "exists: secrets go to a new file only" in again.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("login,name,extension\nbo,Bo,201\nann,Ann again,202\ncy,Cy,2x\n")
    refused = tollway("organization", "import", "acme-pbx", str(bad), url=url)
    assert refused.returncode == 1
    assert f"{bad}: line 3: login_taken" in refused.stderr
    assert f"{bad}: line 4: extension_number_invalid" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == "error: nothing was imported: 2 problems"
    good = tmp_path / "good.csv"
    good.write_text("login,name,extension\nbo,Bo,201\ncy,Cy,202\n")
    imported_secrets = tmp_path / "imported.csv"
    imported = tollway("organization", "import", "acme-pbx", str(good), "--secrets", str(imported_secrets), url=url)
    assert imported.returncode == 0, imported.stderr
    assert imported_secrets.read_text().splitlines()[0] == "login,extension,sip_username,sip_domain,secret"
    assert [line.split(",")[:2] for line in imported_secrets.read_text().splitlines()[1:]] == [
        ["bo", "201"],
        ["cy", "202"],
    ]

    follow_me = tollway("line", "follow-me", "acme-pbx", "101:15", "+44 7700 900123:20", "--extension", "101", url=url)
    assert follow_me.returncode == 0, follow_me.stderr
    assert "FollowMe: 101 (15 s) -> +447700900123 (20 s)" in follow_me.stdout
    shown = tollway("organization", "show", "acme-pbx", url=url)
    assert "4 users" in shown.stdout and "3 extensions" in shown.stdout  # the demo has its reception user

    edited = tollway("organization", "edit", "acme-pbx", "101", "--voicemail", "--recording", url=url)
    assert edited.returncode == 0, edited.stderr
    assert "acme-pbx/101: voicemail on, recording on, active" in edited.stdout
    listed = tollway("organization", "extensions", "acme-pbx", "--format", "csv", url=url)
    assert "101,ann,101,acme-pbx,True,True,active" in listed.stdout, listed.stdout
    suspended = tollway("organization", "user-status", "acme-pbx", "ann", "suspended", url=url)
    assert (suspended.returncode, suspended.stdout.strip()) == (0, "acme-pbx/ann: suspended"), suspended.stderr
