"""Batch creation: N client accounts from a profile in one transaction, with set-based statements.

A reseller (any number) or an agent (at least ``AGENT_BATCH_MIN``) makes accounts from one of its
profiles, with an initial balance or zero. Logins (the profile's prefix and random digits) and
passwords come from ``secrets``; the passwords are returned once and stored hashed. From a reseller
the initial balance is a top-up from its issuance account; from an agent each one is a deposit from
its wallet, with its fees and commission, and the per-account fee: the whole batch is refused if the
agent cannot pay for all of it. Either every account exists with its money, or none does.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, literal, update

from tollway.access import credentials
from tollway.access.audit import audit
from tollway.access.model import Action, NodeField, Principal, Role, authorize, check_mint, node_creation_needs
from tollway.agents import store
from tollway.agents.model import (
    LOGIN_RANDOM_DIGITS,
    PASSWORD_LENGTH,
    CustomerProfile,
    account_fee_request,
    batch_cost_micros,
    check_batch_size,
    deposit_requests,
)
from tollway.agents.service import acting_agent, agent_accounts, check_same_currency, deposit_breakdown, terms_of
from tollway.balances.service import account_id
from tollway.branding import store as brand_store
from tollway.clock import utc_now
from tollway.csvsafe import safe_row
from tollway.errors import NotFound, Refusal, present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import BATCH_TRANSFERS_MAX, AccountPurpose, Shortfall, TransferKind, TransferRequest
from tollway.ledger.store import needs
from tollway.money import to_decimal
from tollway.store.bulk import copy_rows, insert_rows, next_ids
from tollway.store.database import Database
from tollway.store.schema import ledger_accounts, nodes, tariff_assignments, users
from tollway.tree import model as tree_model
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Node, Status
from tollway.tree.service import require_node

CHUNK_ACCOUNTS = 500  # accounts per statement (and per progress step)
CHUNK_COPY = 10_000  # accounts per COPY on PostgreSQL (and per progress step)
BATCH_ID_LENGTH_MAX = 40  # its transfers' ids are "<batch id>:<login>:account-fee", at most 128 characters
LOGIN_ATTEMPTS_MAX = 20  # rounds of drawing logins before giving up (a prefix nearly full)
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class NewAccount:
    login: str
    password: str  # shown once, never stored


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    owner: str
    profile: str
    agent: str | None
    currency: str
    initial_balance_micros: int
    accounts: tuple[NewAccount, ...]


def to_csv(result: BatchResult) -> str:
    """The accounts as CSV (login, password, currency, balance): the only time the passwords are shown."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["login", "password", "currency", "balance"])
    balance = str(to_decimal(result.initial_balance_micros))
    for account in result.accounts:  # safe for spreadsheets; generated passwords are letters and digits
        writer.writerow(safe_row([account.login, account.password, result.currency, balance]))
    return buffer.getvalue()


def create_batch(
    database: Database,
    *,
    owner_login: str,
    profile_name: str,
    count: int,
    batch_id: str,
    initial_balance_micros: int = 0,
    agent_login: str | None = None,
    principal: Principal | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Create ``count`` accounts below ``owner_login`` from its profile, in one transaction."""
    return database.run(
        lambda connection: create_batch_in(
            connection,
            owner_login=owner_login,
            profile_name=profile_name,
            count=count,
            batch_id=batch_id,
            initial_balance_micros=initial_balance_micros,
            agent_login=agent_login,
            principal=principal,
            progress=progress,
        )
    )


def create_batch_in(
    connection: Connection,
    *,
    owner_login: str,
    profile_name: str,
    count: int,
    batch_id: str,
    initial_balance_micros: int = 0,
    agent_login: str | None = None,
    principal: Principal | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """``create_batch`` inside a transaction the caller runs (and commits)."""
    if initial_balance_micros < 0:
        raise Refusal("amount_invalid", "an initial balance is zero or a positive amount")
    if not _id_ok(batch_id):
        raise Refusal("batch_id_invalid", f"a batch id is 1-{BATCH_ID_LENGTH_MAX} letters, digits and . _ - :")
    now = utc_now()
    owner = require_node(connection, owner_login, lock=True)
    authorize(principal, Action.NODE_CREATE, owner)
    by_agent = principal is not None and principal.role is Role.AGENT
    agent = acting_agent(connection, agent_login, principal) if by_agent or agent_login else None
    if agent is not None and agent.parent_id != owner.id:
        raise Refusal("agent_not_of_owner", f"{agent.login} is not an agent of {owner.login}")
    check_batch_size(count, by_agent=by_agent)  # ITC: an agent makes 10 at least; its reseller any number
    if store.batch_recorded(connection, batch_id):
        raise Refusal("batch_exists", f"batch {batch_id} was created already; its passwords were shown then")
    found = store.find_profile(connection, owner.id, profile_name)
    if found is None:
        raise NotFound("profile", profile_name)
    profile_id, profile, tariff_id = found
    if by_agent and agent is not None and not store.agent_may_use(connection, agent.id, profile_id):
        raise Refusal("profile_not_allowed", f"{agent.login} may not create accounts from {profile_name}")
    if not by_agent:  # an agent uses the profiles its reseller allowed it, with the reseller's settings
        check_mint(principal, node_creation_needs(profile_fields(owner, profile, tariff_id)))
    check_owner_can_take(connection, owner, profile, count)
    if agent is not None:
        _check_agent_can_pay(connection, agent, count, initial_balance_micros)

    accounts = _draw_accounts(connection, profile, count)
    node_ids = insert_nodes(connection, owner, profile, accounts, agent, now, progress)
    wallets = open_accounts(connection, owner, profile, node_ids, now, progress)
    if tariff_id is not None:
        insert_rows(
            connection,
            tariff_assignments,
            [{"node_id": i, "tariff_id": tariff_id, "assigned_at": now} for i in node_ids],
        )
    insert_rows(
        connection,
        users,
        [
            {
                "node_id": node_id,
                "login": account.login,
                "password_hash": credentials.hash_generated_secret(account.password),
                "role": str(Role.CLIENT),
                "status": "active",
                "failed_logins": 0,
                "created_at": now,
            }
            for node_id, account in zip(node_ids, accounts, strict=True)
        ],
    )
    requests = _money(connection, owner, agent, batch_id, accounts, wallets, initial_balance_micros)
    done = 0  # accounts whose money is recorded, in progress steps
    for start in range(0, len(requests), BATCH_TRANSFERS_MAX):
        ledger_store.execute(connection, requests[start : start + BATCH_TRANSFERS_MAX], now=now)
        reached = count * min(len(requests), start + BATCH_TRANSFERS_MAX) // len(requests)
        _advance(progress, reached - done)
        done = reached
    _advance(progress, count - done)  # no money to move: the last third at once
    audit(
        connection,
        principal,
        action="node.batch_create",
        target_type="batch",
        target_id=batch_id,
        node=owner,
        after={
            "profile": profile.name,
            "count": count,
            "agent": agent.login if agent else None,
            "initial_balance_micros": initial_balance_micros,
            "logins": [a.login for a in accounts],
        },
    )
    return BatchResult(
        batch_id,
        owner.login,
        profile.name,
        agent.login if agent else None,
        owner.currency,
        initial_balance_micros,
        tuple(accounts),
    )


def profile_fields(owner: Node, profile: CustomerProfile, tariff_id: int | None) -> list[NodeField]:
    """The fields a profile sets beyond a new client's defaults: whoever creates from it needs their actions."""
    chosen = {
        NodeField.CREDIT_LIMIT: profile.credit_limit_micros != 0,
        NodeField.CONCURRENT_CALLS_LIMIT: profile.concurrent_calls_limit is not None,
        NodeField.MAX_CALL_SECONDS: profile.max_call_seconds is not None,
        NodeField.LANGUAGE: profile.language is not None and profile.language != owner.language,
        NodeField.TIME_ZONE: profile.time_zone is not None and profile.time_zone != owner.time_zone,
        NodeField.TARIFF: tariff_id is not None,
    }
    return [field for field, is_set in chosen.items() if is_set]


def progress_total(count: int) -> int:
    """The steps ``progress`` counts for a batch: each account's node, its ledger accounts, its money."""
    return 3 * count


def _advance(progress: Progress | None, steps: int) -> None:
    if progress is not None:
        progress(steps)


def _id_ok(batch_id: str) -> bool:
    return 0 < len(batch_id) <= BATCH_ID_LENGTH_MAX and all(
        c.isascii() and (c.isalnum() or c in "._-:") for c in batch_id
    )


def check_owner_can_take(connection: Connection, owner: Node, profile: CustomerProfile, count: int) -> None:
    owners = tree_store.chain(connection, owner)
    if tree_model.effective_status([n.status for n in owners]) is not Status.ACTIVE:
        raise Refusal("owner_not_active", f"{owner.login} or a node above it is suspended or closed")
    client_type = ClientType(profile.client_type)
    tree_model.check_link(owner.position, tree_model.client(client_type))
    tree_model.check_client_type_granted(owner.grants, client_type)
    for ancestor in owners:
        if ancestor.clients_limit is None:
            continue
        limited = present(tree_store.get_node(connection, ancestor.id, lock=True), f"node {ancestor.login}")
        # The last of the batch must still fit: count the others as if already there.
        tree_model.check_clients_limit(
            limited.clients_limit, tree_store.count_open_clients_below(connection, limited) + count - 1
        )


def _check_agent_can_pay(connection: Connection, agent: Node, count: int, initial_balance_micros: int) -> None:
    """The whole batch's cost to its agent, checked before anything is made, with the numbers it needs:
    its money moves in several ledger batches, each of which alone would tell only its own part."""
    terms = terms_of(connection, agent)
    cost = batch_cost_micros(count, initial_balance_micros, terms)
    wallet_id = account_id(connection, agent, AccountPurpose.WALLET)
    wallet = present(ledger_store.get_account(connection, wallet_id, lock=True), f"wallet of {agent.login}")
    if cost > wallet.available_micros:
        shortfall = Shortfall(wallet_id, wallet.currency, cost, wallet.available_micros)
        breakdown = deposit_breakdown(initial_balance_micros, terms, wallet.currency, count=count, account_fees=True)
        raise Refusal("insufficient_funds", f"{agent.login} needs {needs(shortfall, breakdown)}")


def _draw_accounts(connection: Connection, profile: CustomerProfile, count: int) -> list[NewAccount]:
    logins: set[str] = set()
    for _ in range(LOGIN_ATTEMPTS_MAX):
        wanted = count - len(logins)
        if not wanted:
            break
        drawn = {
            profile.login_prefix + str(secrets.randbelow(10**LOGIN_RANDOM_DIGITS)).zfill(LOGIN_RANDOM_DIGITS)
            for _ in range(wanted)
        } - logins
        for start in range(0, len(drawn), CHUNK_ACCOUNTS):
            chunk = sorted(drawn)[start : start + CHUNK_ACCOUNTS]
            drawn -= store.logins_taken(connection, chunk)
        logins |= drawn
    if len(logins) < count:
        raise Refusal("logins_exhausted", f"no free logins left with the prefix {profile.login_prefix!r}")
    return [NewAccount(login, credentials.generate_secret(PASSWORD_LENGTH)) for login in sorted(logins)[:count]]


def insert_nodes(
    connection: Connection,
    owner: Node,
    profile: CustomerProfile,
    accounts: Sequence[NewAccount],
    agent: Node | None,
    now: datetime,
    progress: Progress | None,
) -> list[int]:
    """The accounts' client nodes below ``owner``; their ids, in order.

    On PostgreSQL the ids are taken from the sequence first, so each node is written once, with its
    path, by ``COPY``; elsewhere the nodes are inserted with a placeholder path, then given theirs."""
    common = {
        "parent_id": owner.id,
        "kind": "client",
        "level": None,
        "client_type": profile.client_type,
        "currency": owner.currency,
        "status": str(Status.ACTIVE),
        "language": profile.language or brand_store.customer_language(connection, owner.id) or owner.language,
        "time_zone": profile.time_zone or owner.time_zone,
        "allowed_client_types": "",
        "allowed_features": "",
        "clients_limit": None,
        "concurrent_calls_limit": profile.concurrent_calls_limit,
        "max_call_seconds": profile.max_call_seconds,
        "managed_by_agent_id": agent.id if agent else None,
        "created_at": now,
        "updated_at": now,
    }
    if connection.dialect.name == "postgresql":
        ids = next_ids(connection, nodes, len(accounts))
        for start in range(0, len(accounts), CHUNK_COPY):
            chunk = range(start, min(start + CHUNK_COPY, len(accounts)))
            rows = [
                {"id": ids[i], "login": accounts[i].login, "name": accounts[i].login, "path": f"{owner.path}{ids[i]}/"}
                for i in chunk
            ]
            copy_rows(connection, nodes, rows, same=common)
            _advance(progress, len(chunk))
        return ids
    ids = []
    for start in range(0, len(accounts), CHUNK_ACCOUNTS):
        part = accounts[start : start + CHUNK_ACCOUNTS]
        placed = [common | {"login": a.login, "name": a.login, "path": f"/new/{a.login}/"} for a in part]
        by_login = dict(
            (login, i) for i, login in insert_rows(connection, nodes, placed, returning=[nodes.c.id, nodes.c.login])
        )
        ids += [int(by_login[a.login]) for a in part]
        _advance(progress, len(part))
    connection.execute(
        update(nodes)
        .where(nodes.c.parent_id == owner.id, nodes.c.path.startswith("/new/"))
        .values(path=literal(owner.path) + cast(nodes.c.id, String) + literal("/"))
    )
    return ids


def open_accounts(
    connection: Connection,
    owner: Node,
    profile: CustomerProfile,
    node_ids: Sequence[int],
    now: datetime,
    progress: Progress | None,
    *,
    wallets_only: bool = False,
) -> list[int]:
    """Wallet, revenue and issuance accounts of every new node (with ``wallets_only``, the wallets: the
    others open on first use, tollway.balances.service.account_id); the wallets' ids, in order."""
    base: dict[str, Any] = {"currency": owner.currency, "created_at": now, "debits_posted": 0, "credits_posted": 0}
    base |= {"debits_pending": 0, "credits_pending": 0}
    wallet = base | {
        "purpose": str(AccountPurpose.WALLET),
        "floor": True,
        "credit_limit_micros": profile.credit_limit_micros,
    }
    others = [] if wallets_only else [AccountPurpose.REVENUE, AccountPurpose.ISSUANCE]
    other = base | {"floor": False, "credit_limit_micros": 0}
    if connection.dialect.name == "postgresql":
        wallets = next_ids(connection, ledger_accounts, len(node_ids))
        for start in range(0, len(node_ids), CHUNK_COPY):
            chunk = range(start, min(start + CHUNK_COPY, len(node_ids)))
            copy_rows(
                connection, ledger_accounts, [{"id": wallets[i], "node_id": node_ids[i]} for i in chunk], same=wallet
            )
            for purpose in others:
                rows = [{"node_id": node_ids[i]} for i in chunk]
                copy_rows(connection, ledger_accounts, rows, same=other | {"purpose": str(purpose)})
            _advance(progress, len(chunk))
        return wallets
    wallets = []
    for start in range(0, len(node_ids), CHUNK_ACCOUNTS):
        part = node_ids[start : start + CHUNK_ACCOUNTS]
        opened = insert_rows(
            connection,
            ledger_accounts,
            [wallet | {"node_id": i} for i in part],
            returning=[ledger_accounts.c.node_id, ledger_accounts.c.id],
        )
        by_node = dict(opened)
        wallets += [int(by_node[i]) for i in part]
        _advance(progress, len(part))
        rows = [other | {"node_id": i, "purpose": str(purpose)} for i in part for purpose in others]
        insert_rows(connection, ledger_accounts, rows)
    return wallets


def _money(
    connection: Connection,
    owner: Node,
    agent: Node | None,
    batch_id: str,
    accounts: Sequence[NewAccount],
    wallets: Sequence[int],
    initial_balance_micros: int,
) -> list[TransferRequest]:
    """The transfers of the batch: initial balances, and from an agent its fees and commissions."""
    requests: list[TransferRequest] = []
    if agent is None:
        if initial_balance_micros:
            issuance = account_id(connection, owner, AccountPurpose.ISSUANCE)
            requests = [
                TransferRequest(
                    id=f"{batch_id}:{a.login}",
                    amount_micros=initial_balance_micros,
                    debit_account_id=issuance,
                    credit_account_id=wallet,
                    kind=TransferKind.TOPUP,
                    reference=f"batch {batch_id}",
                )
                for a, wallet in zip(accounts, wallets, strict=True)
            ]
        return requests
    terms = terms_of(connection, agent)
    check_same_currency(agent, owner)  # the clients are in their owner's currency
    paying = agent_accounts(connection, agent)
    for account, wallet in zip(accounts, wallets, strict=True):
        requests += account_fee_request(
            transfer_id=f"{batch_id}:{account.login}:account-fee",
            terms=terms,
            agent=paying,
            login=account.login,
        )
        if initial_balance_micros:
            requests += deposit_requests(
                transfer_id=f"{batch_id}:{account.login}",
                amount_micros=initial_balance_micros,
                terms=terms,
                agent=paying,
                client_wallet=wallet,
                reference=f"deposit by {agent.login}",
            )
    return requests
