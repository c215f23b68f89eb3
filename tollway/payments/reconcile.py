"""The shop's payments against the ledger (``tollway ledger check`` runs it after the ledger's own check).

1. A credited payment (confirmed or refunded) has its credit: a ``payment`` transfer of its amount, in its
   currency, into its payer's wallet.
2. A payment not credited has no credit.
3. Every shop credit (a ``payment`` transfer whose id starts ``pay:``) belongs to a payment: none invented.
4. A payment's refunded total is the sum of its refunds given back, and never more than it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import aliased

from tollway.ledger.model import AccountPurpose, TransferKind
from tollway.payments.model import TRANSFER_PREFIX, PaymentState, RefundState
from tollway.store.database import Database
from tollway.store.schema import ledger_accounts, payment_refunds, payments, transfers

PROBLEMS_REPORTED_MAX = 100
CREDITED = (str(PaymentState.CONFIRMED), str(PaymentState.REFUNDED))


@dataclass
class ReconcileReport:
    payments: int = 0
    credits: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < PROBLEMS_REPORTED_MAX:
            self.problems.append(problem)


def reconcile(database: Database) -> ReconcileReport:
    report = ReconcileReport()
    with database.reading() as connection:
        report.payments = connection.execute(select(func.count()).select_from(payments)).scalar_one()
        _check_credits(connection, report)
        _check_orphans(connection, report)
        _check_refunded(connection, report)
    return report


def _check_credits(connection: Connection, report: ReconcileReport) -> None:
    wallet = aliased(ledger_accounts)
    rows = connection.execute(
        select(
            payments.c.id,
            payments.c.state,
            payments.c.node_id,
            payments.c.amount_micros,
            payments.c.currency,
            payments.c.transfer_id,
            transfers.c.id.label("found"),
            transfers.c.amount_micros.label("credited"),
            transfers.c.currency.label("credited_currency"),
            transfers.c.kind,
            wallet.c.node_id.label("wallet_node"),
            wallet.c.purpose.label("wallet_purpose"),
        )
        .outerjoin(transfers, transfers.c.id == payments.c.transfer_id)
        .outerjoin(wallet, wallet.c.id == transfers.c.credit_account_id)
        .order_by(payments.c.id)
    )
    for row in rows:
        credited = row.state in CREDITED
        if credited and row.found is None:
            report.add(f"payment {row.id} is {row.state} but its credit {row.transfer_id} is not in the ledger")
        elif not credited and row.transfer_id is not None:
            report.add(f"payment {row.id} is {row.state} but has a credit, {row.transfer_id}")
        elif credited:
            report.credits += 1
            same = (row.credited, row.credited_currency, row.kind) == (
                row.amount_micros,
                row.currency,
                str(TransferKind.PAYMENT),
            )
            into_wallet = (row.wallet_node, row.wallet_purpose) == (row.node_id, str(AccountPurpose.WALLET))
            if not same or not into_wallet:
                report.add(f"payment {row.id}: its credit {row.transfer_id} is not its amount into its payer's wallet")


def _check_orphans(connection: Connection, report: ReconcileReport) -> None:
    known = select(payments.c.transfer_id).where(payments.c.transfer_id.is_not(None))
    rows = connection.execute(
        select(transfers.c.id)
        .where(
            transfers.c.kind == str(TransferKind.PAYMENT),
            transfers.c.id.startswith(f"{TRANSFER_PREFIX}:", autoescape=True),
            transfers.c.id.not_in(known),
        )
        .limit(PROBLEMS_REPORTED_MAX)
    )
    for row in rows:
        report.add(f"credit {row.id} belongs to no payment")


def _check_refunded(connection: Connection, report: ReconcileReport) -> None:
    given_back = (
        select(payment_refunds.c.payment_id, func.sum(payment_refunds.c.amount_micros).label("total"))
        .where(payment_refunds.c.state == str(RefundState.SUCCEEDED))
        .group_by(payment_refunds.c.payment_id)
        .subquery()
    )
    rows = connection.execute(
        select(payments.c.id, payments.c.refunded_micros, func.coalesce(given_back.c.total, 0).label("total"))
        .outerjoin(given_back, given_back.c.payment_id == payments.c.id)
        .where(payments.c.refunded_micros != func.coalesce(given_back.c.total, 0))
        .limit(PROBLEMS_REPORTED_MAX)
    )
    for row in rows:
        report.add(f"payment {row.id}: refunded {row.refunded_micros} but its refunds total {row.total}")
