"""The ledger's invariants, verified against the database (``tollway ledger check``).

1. Every transfer moves money between two accounts of its own currency.
2. Every post or void resolves a pending transfer, once, for no more than was reserved.
3. Each account's cached totals equal the sums of its transfers.
4. Per currency, debits equal credits (posted, and pending).
5. No account with a floor is below it, except by overshoots recorded on its transfers.

An account's totals are its row plus its postings not yet folded (tollway.ledger.store.current_accounts),
read in one statement: a fold running meanwhile is seen whole or not at all, and the check holds before,
during and after it. Only accounts without a floor may have postings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, case, func, literal, select, union_all
from sqlalchemy.orm import aliased

from tollway.ledger.model import Phase
from tollway.ledger.store import current_accounts, unfolded_count
from tollway.store.schema import account_postings, ledger_accounts, transfers

PROBLEMS_REPORTED_MAX = 100


@dataclass
class CheckReport:
    accounts: int = 0
    transfers: int = 0
    currencies: int = 0
    unfolded: int = 0  # postings not yet folded into their accounts' rows (counted in every total above)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < PROBLEMS_REPORTED_MAX:
            self.problems.append(problem)


def check_ledger(connection: Connection) -> CheckReport:
    report = CheckReport()
    report.accounts = connection.execute(select(func.count()).select_from(ledger_accounts)).scalar_one()
    report.transfers = connection.execute(select(func.count()).select_from(transfers)).scalar_one()
    report.unfolded = unfolded_count(connection)
    _check_postings(connection, report)
    _check_currencies(connection, report)
    _check_resolutions(connection, report)
    _check_cached_totals(connection, report)
    _check_conservation(connection, report)
    _check_floors(connection, report)
    return report


def _check_postings(connection: Connection, report: CheckReport) -> None:
    """Only accounts without a floor have postings: a floor is checked against the locked row alone."""
    rows = connection.execute(
        select(account_postings.c.account_id)
        .join(ledger_accounts, ledger_accounts.c.id == account_postings.c.account_id)
        .where(ledger_accounts.c.floor.is_(True))
        .distinct()
        .limit(PROBLEMS_REPORTED_MAX)
    )
    for row in rows:
        report.add(f"account {row.account_id}: has a floor and unfolded postings")


def _check_currencies(connection: Connection, report: CheckReport) -> None:
    debit = aliased(ledger_accounts)
    credit = aliased(ledger_accounts)
    rows = connection.execute(
        select(transfers.c.id)
        .join(debit, debit.c.id == transfers.c.debit_account_id)
        .join(credit, credit.c.id == transfers.c.credit_account_id)
        .where((debit.c.currency != transfers.c.currency) | (credit.c.currency != transfers.c.currency))
        .limit(PROBLEMS_REPORTED_MAX)
    )
    for row in rows:
        report.add(f"transfer {row.id}: an account is not in the transfer's currency")


def _check_resolutions(connection: Connection, report: CheckReport) -> None:
    pending = aliased(transfers)
    rows = connection.execute(
        select(
            transfers.c.id,
            transfers.c.phase,
            transfers.c.amount_micros,
            pending.c.phase.label("pending_phase"),
            pending.c.amount_micros.label("pending_amount"),
            pending.c.debit_account_id.label("pending_debit"),
            pending.c.credit_account_id.label("pending_credit"),
            transfers.c.debit_account_id,
            transfers.c.credit_account_id,
        )
        .outerjoin(pending, pending.c.id == transfers.c.pending_id)
        .where(transfers.c.phase.in_([str(Phase.POST), str(Phase.VOID)]))
    )
    for row in rows:
        if row.pending_phase != Phase.PENDING:
            report.add(f"transfer {row.id}: resolves something that is not a pending transfer")
        elif (row.debit_account_id, row.credit_account_id) != (row.pending_debit, row.pending_credit):
            report.add(f"transfer {row.id}: resolves a pending transfer between other accounts")
        elif row.phase == Phase.POST and row.amount_micros > row.pending_amount:
            report.add(f"transfer {row.id}: posts more than was reserved")
        elif row.phase == Phase.VOID and row.amount_micros != row.pending_amount:
            report.add(f"transfer {row.id}: voids another amount than was reserved")


def _sums_from_transfers(connection: Connection) -> dict[int, tuple[int, int, int, int]]:
    """Per account: (debits posted, credits posted, debits pending, credits pending), from transfers."""
    resolved = select(transfers.c.pending_id).where(transfers.c.pending_id.is_not(None))
    posted = transfers.c.phase.in_([str(Phase.SINGLE), str(Phase.POST)])
    open_pending = (transfers.c.phase == str(Phase.PENDING)) & transfers.c.id.not_in(resolved)
    amount = transfers.c.amount_micros
    zero = literal(0)
    sides = union_all(
        select(
            transfers.c.debit_account_id.label("account_id"),
            case((posted, amount), else_=zero).label("dp"),
            zero.label("cp"),
            case((open_pending, amount), else_=zero).label("dq"),
            zero.label("cq"),
        ),
        select(
            transfers.c.credit_account_id.label("account_id"),
            zero.label("dp"),
            case((posted, amount), else_=zero).label("cp"),
            zero.label("dq"),
            case((open_pending, amount), else_=zero).label("cq"),
        ),
    ).subquery()
    rows = connection.execute(
        select(
            sides.c.account_id, func.sum(sides.c.dp), func.sum(sides.c.cp), func.sum(sides.c.dq), func.sum(sides.c.cq)
        ).group_by(sides.c.account_id)
    )
    return {row[0]: (int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows}


def _check_cached_totals(connection: Connection, report: CheckReport) -> None:
    sums = _sums_from_transfers(connection)
    for account in connection.execute(current_accounts()):
        cached = (account.debits_posted, account.credits_posted, account.debits_pending, account.credits_pending)
        recomputed = sums.get(account.id, (0, 0, 0, 0))
        if cached != recomputed:
            report.add(
                f"account {account.id}: cached totals {cached} differ from its transfers {recomputed} "
                "(debits posted, credits posted, debits pending, credits pending)"
            )


def _check_conservation(connection: Connection, report: CheckReport) -> None:
    current = current_accounts().subquery()
    rows = connection.execute(
        select(
            current.c.currency,
            func.sum(current.c.debits_posted),
            func.sum(current.c.credits_posted),
            func.sum(current.c.debits_pending),
            func.sum(current.c.credits_pending),
        ).group_by(current.c.currency)
    ).all()
    report.currencies = len(rows)
    for currency, debits, credits, debits_pending, credits_pending in rows:
        if debits != credits:
            report.add(f"{currency}: debits posted {debits} differ from credits posted {credits}")
        if debits_pending != credits_pending:
            report.add(f"{currency}: debits pending {debits_pending} differ from credits pending {credits_pending}")


def _check_floors(connection: Connection, report: CheckReport) -> None:
    overshoots = (
        select(transfers.c.debit_account_id, func.sum(transfers.c.overshoot_micros).label("overshoot"))
        .group_by(transfers.c.debit_account_id)
        .subquery()
    )
    a = current_accounts().subquery().c
    deficit = a.debits_posted + a.debits_pending - a.credits_posted - a.credit_limit_micros
    rows = connection.execute(
        select(a.id, deficit.label("deficit"), func.coalesce(overshoots.c.overshoot, 0).label("overshoot"))
        .outerjoin(overshoots, overshoots.c.debit_account_id == a.id)
        .where(a.floor.is_(True), deficit > 0)
    )
    for row in rows:
        if row.deficit > row.overshoot:
            report.add(
                f"account {row.id}: {row.deficit} micro-units below its floor, "
                f"only {row.overshoot} of it recorded as overshoot"
            )
