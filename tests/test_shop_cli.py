"""`tollway shop` as an operator runs it: a seller's gateways, a bank transfer confirmed by hand, the month's
invoices with their progress bar, the export. Real processes, the installation's sealing key from the
environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tollway.balances import service as balances
from tollway.ledger import service as ledger
from tollway.ledger.model import AccountPurpose, TransferKind, TransferRequest
from tollway.payments import service as shop
from tollway.payments.model import GatewayKind
from tollway.payments.reconcile import reconcile
from tollway.payments.service import PaymentSettings
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.tree import service as tree

TOLLWAY = str(Path(sys.executable).parent / "tollway")
KEY = Sealer.new_key()


def tollway(*args: str, url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOLLWAY_DATABASE_URL": url, "TOLLWAY_SECRET_KEY": KEY, "COLUMNS": "200"}
    return subprocess.run(
        [TOLLWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False, input=stdin
    )


def test_a_seller_sets_up_its_shop_and_confirms_a_transfer_from_the_command_line(
    demo_database: Database, tmp_path: Path
) -> None:
    url = demo_database.url
    stripe = tollway(
        "shop",
        "stripe",
        "north-city",
        "--secret-key",
        "sk_test_cli0123456789wxyz",
        "--webhook-secret",
        "whsec_cli0123456789abcd",
        url=url,
    )
    assert stripe.returncode == 0, stripe.stderr
    assert "secret key …wxyz" in stripe.stdout and "webhook secret …abcd" in stripe.stdout
    assert "sk_test_cli" not in stripe.stdout and re.search(r"/api/v1/payments/stripe/\d+/webhook", stripe.stdout)
    bad = tollway("shop", "stripe", "north-city", "--secret-key", "pk_test_x", "--webhook-secret", "x", url=url)
    assert (bad.returncode, bad.stderr.count("\n")) == (1, 1) and "(secret_key_invalid)" in bad.stderr

    assert (
        tollway("shop", "bank", "north-city", "--holder", "North City", "--iban", "DE89 3704", url=url).returncode == 0
    )
    assert tollway("shop", "topups", "north-city", "USD", "--amounts", "10,20", url=url).returncode == 0
    settings = PaymentSettings(Sealer(KEY))
    order = shop.Order("bt-1", GatewayKind.BANK_TRANSFER, amount_micros=20_000_000, payer_reference="ALICE")
    payment = shop.start_payment(demo_database, settings, login="alice", order=order).payment
    pending = tollway("shop", "sales", "north-city", "--state", "pending", url=url)
    assert "alice" in pending.stdout and "ALICE" in pending.stdout

    confirmed = tollway("shop", "confirm", str(payment.id), "--note", "on the statement", url=url)
    assert confirmed.stdout.strip() == f"payment {payment.id}: confirmed, 20.000000 USD to alice"
    assert tollway("shop", "confirm", str(payment.id), url=url).returncode == 0  # again: credited once
    assert balances.get_balance(demo_database, login="alice").balance_micros == 45_000_000

    refunded = tollway("shop", "refund", str(payment.id), "2.50", "--id", "r-1", "--reason", "asked", url=url)
    assert refunded.returncode == 0, refunded.stderr
    assert "2.500000 USD refunded in all" in refunded.stdout
    invoices = tollway("shop", "invoices", "--month", "2000-01", url=url)
    assert (invoices.returncode, invoices.stdout.strip()) == (0, "0 invoices issued, 0 issued before")
    wrong_month = tollway("shop", "invoices", "--month", "Nov 2026", url=url)
    assert wrong_month.returncode == 2 and "a month is written 2026-11" in wrong_month.stderr

    check = tollway("ledger", "check", url=url)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[1] == "shop ok: 1 payments, 1 credited, each once, none invented"

    exported = tollway("shop", "export", "north-city", "-o", str(tmp_path / "sales.csv"), url=url)
    assert exported.stdout.strip().startswith("1 payments written to")
    assert (tmp_path / "sales.csv").read_text().splitlines()[1].split(",")[3:5] == ["alice", "bank_transfer"]
    again = tollway("shop", "export", "north-city", "-o", str(tmp_path / "sales.csv"), url=url)
    assert again.returncode == 2 and "exists" in again.stderr


def test_a_credit_without_its_payment_fails_the_check(demo_database: Database) -> None:
    """The ledger balances, but the shop's books do not: a payment credit nobody paid for."""
    shop.configure_bank_transfer(
        demo_database, seller_login="north-city", details={"account_holder": "N", "iban": "DE"}
    )
    with demo_database.transaction() as connection:
        seller = tree.require_node(connection, "north-city")
        alice = tree.require_node(connection, "alice")
        clearing = shop.clearing_account(connection, seller, GatewayKind.BANK_TRANSFER, "USD")
        wallet = balances.account_id(connection, alice, AccountPurpose.WALLET)
    invented = TransferRequest("pay:bank_transfer:1:p999", 5_000_000, clearing, wallet, kind=TransferKind.PAYMENT)
    ledger.execute(demo_database, [invented])
    assert reconcile(demo_database).problems == ["credit pay:bank_transfer:1:p999 belongs to no payment"]
    check = tollway("ledger", "check", url=demo_database.url)
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "problem: credit pay:bank_transfer:1:p999 belongs to no payment",
        "error: shop check failed: 1 problems (0 payments)",
    ]
