"""Use cases that move money between tree nodes; each is one transaction and one ledger batch.

Credit flows down the tree: an owner tops up a child by moving money from its issuance account
(no floor: the owner creates credit for its child) to the child's wallet. A converted movement
crosses currencies through the provider's exchange accounts, one leg per currency, each leg
recording the rate used, so every currency still balances on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, Role, authorize
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.ledger import exchange
from tollway.ledger import store as ledger_store
from tollway.ledger.exchange import ExchangeRate
from tollway.ledger.model import (
    REFERENCE_LENGTH_MAX,
    TRANSFER_ID_PATTERN,
    AccountPurpose,
    Applied,
    Phase,
    Transfer,
    TransferKind,
    TransferRequest,
)
from tollway.ledger.store import FundsShort, needs
from tollway.money import convert_micros
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Node, NodeKind
from tollway.tree.service import require_node

CONVERSION_LEG_SUFFIX = ".fx"


@dataclass(frozen=True, slots=True)
class Balance:
    login: str
    currency: str
    balance_micros: int
    credit_limit_micros: int
    pending_micros: int
    available_micros: int
    unlimited: bool


def account_id(connection: Connection, node: Node, purpose: AccountPurpose, currency: str | None = None) -> int:
    """The node's account for ``purpose`` in ``currency``, opened on first use in a new currency.

    Issuance and revenue accounts open per currency: a USD reseller may give credit to, and earn
    from, a EUR client, each in the client's own currency.
    """
    currency = currency or node.currency
    found = ledger_store.find_account_id(connection, node_id=node.id, purpose=purpose, currency=currency)
    if found is not None:
        return found
    if purpose not in (AccountPurpose.ISSUANCE, AccountPurpose.REVENUE, AccountPurpose.EXCHANGE):
        raise Refusal("account_not_found", f"{node.login} has no {purpose} account in {currency}")
    return ledger_store.create_account(
        connection, node_id=node.id, purpose=purpose, currency=currency, floor=False, now=utc_now()
    )


def balance_of(connection: Connection, node: Node) -> Balance:
    wallet_id = account_id(connection, node, AccountPurpose.WALLET)
    account = present(ledger_store.get_account(connection, wallet_id), f"wallet of {node.login}")
    return Balance(
        login=node.login,
        currency=account.currency,
        balance_micros=account.balance_micros,
        credit_limit_micros=account.credit_limit_micros,
        pending_micros=account.debits_pending,
        available_micros=account.available_micros,
        unlimited=not account.floor,
    )


def get_balance(database: Database, *, login: str, principal: Principal | None = None) -> Balance:
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.BALANCE_READ, node)
        return balance_of(connection, node)


def audit_transfers(
    connection: Connection, principal: Principal | None, action: str, node: Node, applied: Applied
) -> Applied:
    """Audit a money movement once: an idempotent repeat changed nothing, so it records nothing."""
    if not applied.already_existed:
        after = [
            {"transfer": t.id, "amount_micros": t.amount_micros, "currency": t.currency, "kind": str(t.kind)}
            for t in applied.transfers
        ]
        audit(connection, principal, action=action, target_type="node", target_id=node.login, node=node, after=after)
    return applied


def execute_paid(
    connection: Connection,
    requests: Sequence[TransferRequest],
    *,
    now: datetime,
    payers: Mapping[int, str],
    breakdown: str | None = None,
) -> Applied:
    """Record the batch; refused for funds, the refusal says who pays (``payers``: account id → what to
    call it) and the numbers a person needs: 'agent-ana needs 24.60 USD (24.10 + fee 0.50), 24.50 USD
    available'. ``breakdown`` explains the amount needed."""
    try:
        return ledger_store.execute(connection, requests, now=now)
    except FundsShort as short:
        payer = payers.get(short.shortfall.account_id)
        if payer is None:
            raise
        raise Refusal("insufficient_funds", f"{payer} needs {needs(short.shortfall, breakdown)}") from None


def _owner(connection: Connection, node: Node) -> Node:
    if node.parent_id is None:
        raise Refusal("provider_has_no_owner", "the provider's balance is unlimited: nothing tops it up")
    return present(tree_store.get_node(connection, node.parent_id), f"owner of {node.login}")


def owner_request(
    connection: Connection,
    node: Node,
    *,
    transfer_id: str,
    amount_micros: int,
    kind: TransferKind,
    reference: str | None,
    to_node: bool = True,
) -> TransferRequest:
    """A movement between the owner's issuance account and the node's wallet: credit handed to the node
    (``to_node``), or taken back from it (its floor holds)."""
    wallet = account_id(connection, node, AccountPurpose.WALLET)
    issuance = account_id(connection, _owner(connection, node), AccountPurpose.ISSUANCE, node.currency)
    debit, credit = (issuance, wallet) if to_node else (wallet, issuance)
    return TransferRequest(
        id=transfer_id,
        amount_micros=amount_micros,
        debit_account_id=debit,
        credit_account_id=credit,
        kind=kind,
        reference=reference,
    )


def topup(
    database: Database,
    *,
    login: str,
    amount_micros: int,
    transfer_id: str,
    kind: TransferKind = TransferKind.TOPUP,
    reference: str | None = None,
    principal: Principal | None = None,
) -> Applied:
    """The owner credits the node's wallet from its own issuance account."""

    def use_case(connection: Connection) -> Applied:
        node = require_node(connection, login)
        authorize(principal, Action.MONEY_TOPUP, node)
        if principal is not None and principal.role is Role.AGENT:
            # An agent creates no credit: its top-ups are deposits from its own wallet (tollway.agents).
            raise Refusal("agent_deposits_from_wallet", "an agent's top-up is a deposit from its wallet")
        request = owner_request(
            connection, node, transfer_id=transfer_id, amount_micros=amount_micros, kind=kind, reference=reference
        )
        return audit_transfers(
            connection, principal, "money.topup", node, ledger_store.execute(connection, [request], now=utc_now())
        )

    return database.run(use_case)


def adjust(
    database: Database,
    *,
    login: str,
    amount_micros: int,
    reason: str,
    transfer_id: str,
    principal: Principal | None = None,
) -> Applied:
    """A correction by the owner: positive credits the wallet, negative debits it (floor respected)."""
    if amount_micros == 0:
        raise Refusal("amount_must_not_be_zero", "an adjustment moves a non-zero amount")
    if not reason.strip():
        raise Refusal("reason_required", "an adjustment needs a reason")

    def use_case(connection: Connection) -> Applied:
        node = require_node(connection, login)
        authorize(principal, Action.MONEY_ADJUST, node)
        request = owner_request(
            connection,
            node,
            transfer_id=transfer_id,
            amount_micros=abs(amount_micros),
            kind=TransferKind.ADJUSTMENT,
            reference=reason,
            to_node=amount_micros > 0,
        )
        applied = execute_paid(connection, [request], now=utc_now(), payers={request.debit_account_id or 0: node.login})
        return audit_transfers(connection, principal, "money.adjust", node, applied)

    return database.run(use_case)


def refund(
    database: Database,
    *,
    login: str,
    amount_micros: int,
    reason: str,
    transfer_id: str,
    principal: Principal | None = None,
) -> Applied:
    """Money given back to the node outside Tollway: its wallet is debited (floor respected), kind ``refund``."""
    if not reason.strip():
        raise Refusal("reason_required", "a refund needs a reason")

    def use_case(connection: Connection) -> Applied:
        node = require_node(connection, login)
        authorize(principal, Action.MONEY_ADJUST, node)
        request = owner_request(
            connection,
            node,
            transfer_id=transfer_id,
            amount_micros=amount_micros,
            kind=TransferKind.REFUND,
            reference=reason,
            to_node=False,
        )
        applied = execute_paid(connection, [request], now=utc_now(), payers={request.debit_account_id or 0: node.login})
        return audit_transfers(connection, principal, "money.refund", node, applied)

    return database.run(use_case)


REVERSIBLE_KINDS = frozenset(
    {
        TransferKind.TOPUP,
        TransferKind.PAYMENT,
        TransferKind.ADJUSTMENT,
        TransferKind.REFUND,
        TransferKind.FEE,
        TransferKind.TRANSFER,
        TransferKind.SUBSCRIPTION,
    }
)
# Transfers linked to a movement by their ids: an agent's fee and commission, a conversion's second leg.
LINKED_SUFFIXES = (":fee", ":commission", CONVERSION_LEG_SUFFIX)
REVERSAL_SUFFIX = ":reversal"


def reverse(
    database: Database,
    *,
    login: str,
    transfer_id: str,
    reason: str,
    principal: Principal | None = None,
) -> Applied:
    """Undo a movement of the node's wallet with new transfers the other way, never by editing it.

    The transfers linked to it (an agent's fee and commission, a conversion's other leg) are reversed
    with it, in one linked batch; floors hold, so money already spent cannot be taken back. Reversing
    twice answers the first reversal: its ids are the originals' with ``:reversal``.
    """
    if not reason.strip():
        raise Refusal("reason_required", "a reversal needs a reason")

    def use_case(connection: Connection) -> Applied:
        node = require_node(connection, login)
        authorize(principal, Action.MONEY_ADJUST, node)
        if not TRANSFER_ID_PATTERN.match(transfer_id):
            raise NotFound("transfer", transfer_id)
        wallet = account_id(connection, node, AccountPurpose.WALLET)
        ids = [transfer_id, *(transfer_id + suffix for suffix in LINKED_SUFFIXES)]
        found = ledger_store.get_transfers(connection, ids)
        original = found.get(transfer_id)
        if original is None or wallet not in (original.debit_account_id, original.credit_account_id):
            raise NotFound("transfer", transfer_id)
        if original.kind not in REVERSIBLE_KINDS or original.phase is not Phase.SINGLE:
            raise Refusal("transfer_not_reversible", f"a {original.kind} transfer is not reversed by hand")
        requests = [
            TransferRequest(
                id=t.id + REVERSAL_SUFFIX,
                amount_micros=t.amount_micros,
                debit_account_id=t.credit_account_id,
                credit_account_id=t.debit_account_id,
                kind=t.kind,
                reference=f"reversal of {t.id}: {reason}"[:REFERENCE_LENGTH_MAX],
                exchange_rate=t.exchange_rate,
            )
            for t in (found[i] for i in ids if i in found)
        ]
        applied = execute_paid(connection, requests, now=utc_now(), payers={wallet: node.login})
        return audit_transfers(connection, principal, "money.reverse", node, applied)

    return database.run(use_case)


def set_credit_limit(
    database: Database, *, login: str, credit_limit_micros: int, principal: Principal | None = None
) -> Balance:
    if credit_limit_micros < 0:
        raise Refusal("credit_limit_invalid", "a credit limit is zero (prepaid) or a positive amount")

    def use_case(connection: Connection) -> Balance:
        node = require_node(connection, login)
        authorize(principal, Action.MONEY_ADJUST, node)
        if node.position.kind is NodeKind.PROVIDER:
            raise Refusal("provider_has_no_owner", "the provider's balance is unlimited")
        before = balance_of(connection, node).credit_limit_micros
        ledger_store.set_credit_limit(
            connection, account_id(connection, node, AccountPurpose.WALLET), credit_limit_micros
        )
        audit(
            connection,
            principal,
            action="money.credit_limit",
            target_type="node",
            target_id=node.login,
            node=node,
            before={"credit_limit_micros": before},
            after={"credit_limit_micros": credit_limit_micros},
        )
        return balance_of(connection, node)

    return database.run(use_case)


def conversion_requests(
    *,
    transfer_id: str,
    amount_micros: int,
    rate: Decimal,
    source_account_id: int,
    source_exchange_id: int,
    target_exchange_id: int,
    target_account_id: int,
    kind: TransferKind,
    reference: str | None,
) -> list[TransferRequest]:
    """Two linked legs, one per currency: source → house (in source currency), house → target."""
    converted = convert_micros(amount_micros, rate)
    if converted <= 0:
        raise Refusal("amount_too_small", "the amount converts to nothing at this rate")
    legs = (
        (transfer_id, amount_micros, source_account_id, source_exchange_id),
        (transfer_id + CONVERSION_LEG_SUFFIX, converted, target_exchange_id, target_account_id),
    )
    return [
        TransferRequest(
            id=leg_id,
            amount_micros=leg_amount,
            debit_account_id=debit,
            credit_account_id=credit,
            kind=kind,
            reference=reference,
            exchange_rate=rate,
        )
        for leg_id, leg_amount, debit, credit in legs
    ]


def move_between_wallets(
    database: Database,
    *,
    from_login: str,
    to_login: str,
    amount_micros: int,
    transfer_id: str,
    kind: TransferKind = TransferKind.TRANSFER,
    reference: str | None = None,
    principal: Principal | None = None,
) -> Applied:
    """Move money from one node's wallet to another's, converting at today's rate if currencies differ.

    An owner moves money between nodes below it (agents' deposits are their own use case).
    """
    now = utc_now()

    def use_case(connection: Connection) -> Applied:
        source = require_node(connection, from_login)
        target = require_node(connection, to_login)
        authorize(principal, Action.MONEY_ADJUST, source)
        authorize(principal, Action.MONEY_ADJUST, target)
        source_wallet = account_id(connection, source, AccountPurpose.WALLET)
        target_wallet = account_id(connection, target, AccountPurpose.WALLET)
        if source.currency == target.currency:
            requests = [
                TransferRequest(
                    id=transfer_id,
                    amount_micros=amount_micros,
                    debit_account_id=source_wallet,
                    credit_account_id=target_wallet,
                    kind=kind,
                    reference=reference,
                )
            ]
        else:
            provider = present(tree_store.find_provider(connection), "the provider")
            # A retry converts at the rate recorded the first time, so it repeats the first answer.
            recorded = ledger_store.get_transfers(connection, [transfer_id]).get(transfer_id)
            rate = recorded.exchange_rate if recorded and recorded.exchange_rate else None
            requests = conversion_requests(
                transfer_id=transfer_id,
                amount_micros=amount_micros,
                rate=rate or exchange.rate_at(connection, source.currency, target.currency, now),
                source_account_id=source_wallet,
                source_exchange_id=account_id(connection, provider, AccountPurpose.EXCHANGE, source.currency),
                target_exchange_id=account_id(connection, provider, AccountPurpose.EXCHANGE, target.currency),
                target_account_id=target_wallet,
                kind=kind,
                reference=reference,
            )
        applied = execute_paid(connection, requests, now=now, payers={source_wallet: source.login})
        return audit_transfers(connection, principal, "money.move", source, applied)

    return database.run(use_case)


def exchange_rates(database: Database, *, principal: Principal | None = None) -> list[ExchangeRate]:
    """The exchange rates, newest first per pair (``exchange_rates:read``: every login may read them)."""
    authorize(principal, Action.EXCHANGE_RATES_READ, None)
    with database.reading() as connection:
        return exchange.list_rates(connection)


def set_exchange_rate(
    database: Database,
    *,
    base_currency: str,
    quote_currency: str,
    rate: Decimal | str,
    valid_from: datetime | None = None,
    principal: Principal | None = None,
) -> ExchangeRate:
    authorize(principal, Action.EXCHANGE_RATES_WRITE, None)
    now = utc_now()
    value = ExchangeRate(base_currency, quote_currency, exchange.check_rate(rate), valid_from or now)

    def use_case(connection: Connection) -> ExchangeRate:
        exchange.record_rate(connection, value, now=now)
        audit(
            connection,
            principal,
            action="rates.set",
            target_type="exchange_rate",
            target_id=f"{base_currency}/{quote_currency}",
            node=tree_store.find_provider(connection),  # a provider-wide setting: audited at the root
            after={"rate": str(value.rate), "valid_from": value.valid_from.isoformat()},
        )
        return value

    return database.run(use_case)


@dataclass(frozen=True, slots=True)
class WalletEntry:
    """One transfer of a wallet's history, as its holder reads it.

    ``status``: ``posted`` (it moved the balance), ``reserved`` (a call's reservation, still held) or
    ``released`` (a reservation the call's end, or its expiry, gave back: the call's cost is its own posted
    transfer; a void is the release itself). ``effect_micros``: what it did to the balance, signed from the
    wallet's side; a reservation and its release move nothing, so a call counts once, at its cost.
    """

    transfer: Transfer
    status: str
    effect_micros: int


def wallet_transfers(
    database: Database, principal: Principal | None, *, login: str, limit: int, before: datetime | None = None
) -> list[WalletEntry]:
    """The wallet's history, newest first. Call charges are call details: agents do not see them."""
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.CALLS_READ, node)
        wallet = account_id(connection, node, AccountPurpose.WALLET)
        found = ledger_store.account_transfers(connection, wallet, limit=limit, before=before)
        resolved = ledger_store.resolved_pending_ids(connection, [t.id for t in found if t.phase is Phase.PENDING])
    return [_entry(transfer, wallet, resolved) for transfer in found]


def _entry(transfer: Transfer, wallet: int, resolved: set[str]) -> WalletEntry:
    if transfer.phase is Phase.PENDING:
        return WalletEntry(transfer, "released" if transfer.id in resolved else "reserved", 0)
    if transfer.phase is Phase.VOID:
        return WalletEntry(transfer, "released", 0)
    sign = 1 if transfer.credit_account_id == wallet else -1
    return WalletEntry(transfer, "posted", sign * transfer.amount_micros)
