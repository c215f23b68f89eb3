"""Persistence of calling cards: batches, cards, their PIN digests and states, set-based."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, String, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from tollway.cards.model import AccessNumber, BatchSummary, Card, CardState
from tollway.ledger.model import AccountPurpose
from tollway.store.bulk import copy_rows
from tollway.store.schema import (
    access_numbers,
    card_batches,
    card_callers,
    cards,
    ledger_accounts,
    nodes,
    plans,
    sealed_keys,
    tariffs,
)

agents = nodes.alias("agents")


def batch_exists(connection: Connection, name: str) -> bool:
    return connection.execute(select(card_batches.c.id).where(card_batches.c.name == name)).first() is not None


def find_batch(connection: Connection, owner_id: int, name: str) -> tuple[int, int] | None:
    """The first and last serial numbers of the owner's batch ``name``."""
    row = connection.execute(
        select(func.min(cards.c.serial_number), func.max(cards.c.serial_number))
        .select_from(card_batches.join(cards, cards.c.batch_id == card_batches.c.id))
        .where(card_batches.c.owner_id == owner_id, card_batches.c.name == name)
    ).first()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def last_serial_number(connection: Connection, owner_id: int) -> int:
    found = connection.execute(select(func.max(cards.c.serial_number)).where(cards.c.owner_id == owner_id)).scalar()
    return int(found or 0)


def digests_taken(connection: Connection, digests: Sequence[str]) -> set[str]:
    if connection.dialect.name == "postgresql":  # as tollway.agents.store.logins_taken: a join, not an IN list
        wanted = (
            func.unnest(bindparam("wanted", value=list(digests), type_=ARRAY(String)))
            .table_valued("digest")
            .render_derived(name="wanted")
        )
        query = select(cards.c.pin_digest).join(wanted, wanted.c.digest == cards.c.pin_digest)
        return set(connection.execute(query).scalars())
    return set(connection.execute(select(cards.c.pin_digest).where(cards.c.pin_digest.in_(digests))).scalars())


def insert_batch(connection: Connection, row: dict[str, Any]) -> int:
    return int(connection.execute(insert(card_batches).values(**row).returning(card_batches.c.id)).scalar_one())


def insert_cards(connection: Connection, rows: Sequence[dict[str, Any]], *, same: dict[str, Any]) -> None:
    copy_rows(connection, cards, rows, same=same)


def _cards_query() -> Any:
    return select(
        cards.c.id,
        cards.c.node_id,
        nodes.c.login,
        cards.c.owner_id,
        cards.c.batch_id,
        card_batches.c.name,
        card_batches.c.serial_prefix,
        cards.c.serial_number,
        cards.c.state,
        card_batches.c.face_value_micros,
        card_batches.c.currency,
        card_batches.c.expires_at.label("batch_expires_at"),
        card_batches.c.expiry_days,
        cards.c.activated_at,
        cards.c.expires_at,
        card_batches.c.plan_id,
        card_batches.c.agent_id,
    ).select_from(
        cards.join(card_batches, card_batches.c.id == cards.c.batch_id).join(nodes, nodes.c.id == cards.c.node_id)
    )


def _card(row: Any) -> Card:
    return Card(
        id=int(row.id),
        node_id=int(row.node_id),
        login=row.login,
        owner_id=int(row.owner_id),
        batch_id=int(row.batch_id),
        batch=row.name,
        serial_prefix=row.serial_prefix,
        serial_number=int(row.serial_number),
        state=CardState(row.state),
        face_value_micros=int(row.face_value_micros),
        currency=row.currency,
        batch_expires_at=row.batch_expires_at,
        expiry_days=row.expiry_days,
        activated_at=row.activated_at,
        expires_at=row.expires_at,
        plan_id=None if row.plan_id is None else int(row.plan_id),
        agent_id=None if row.agent_id is None else int(row.agent_id),
    )


def find_card(connection: Connection, owner_id: int, serial_number: int, *, lock: bool = False) -> Card | None:
    query = _cards_query().where(cards.c.owner_id == owner_id, cards.c.serial_number == serial_number)
    if lock:
        query = query.with_for_update(of=cards)
    row = connection.execute(query).first()
    return None if row is None else _card(row)


def find_card_by_login(connection: Connection, login: str) -> Card | None:
    """The card whose account has this login."""
    row = connection.execute(_cards_query().where(nodes.c.login == login)).first()
    return None if row is None else _card(row)


def find_card_by_pin(connection: Connection, digest: str) -> Card | None:
    row = connection.execute(_cards_query().where(cards.c.pin_digest == digest)).first()
    return None if row is None else _card(row)


def cards_in_range(
    connection: Connection, owner_id: int, first: int, last: int, states: frozenset[CardState], *, lock: bool = False
) -> list[Card]:
    query = (
        _cards_query()
        .where(
            cards.c.owner_id == owner_id,
            cards.c.serial_number.between(first, last),
            cards.c.state.in_(sorted(states)),
        )
        .order_by(cards.c.serial_number)
    )
    if lock:
        query = query.with_for_update(of=cards)
    return [_card(row) for row in connection.execute(query)]


def set_states(
    connection: Connection,
    owner_id: int,
    first: int,
    last: int,
    *,
    from_states: frozenset[CardState],
    to_state: CardState,
    now: datetime,
    activated: bool | None = None,
) -> int:
    """Move the owner's cards numbered ``first``..``last`` in one of ``from_states`` to ``to_state``
    (only those activated, or never activated, if ``activated`` says so); how many moved."""
    query = update(cards).where(
        cards.c.owner_id == owner_id,
        cards.c.serial_number.between(first, last),
        cards.c.state.in_(sorted(from_states)),
    )
    if activated is not None:
        query = query.where(cards.c.activated_at.is_not(None) if activated else cards.c.activated_at.is_(None))
    return int(connection.execute(query.values(state=str(to_state), updated_at=now)).rowcount)


def activate_range(
    connection: Connection, batch_id: int, first: int, last: int, *, now: datetime, expires_at: datetime | None
) -> int:
    """Activate the batch's new cards numbered ``first``..``last``."""
    query = (
        update(cards)
        .where(
            cards.c.batch_id == batch_id,
            cards.c.serial_number.between(first, last),
            cards.c.state == str(CardState.NEW),
        )
        .values(state=str(CardState.ACTIVE), activated_at=now, expires_at=expires_at, updated_at=now)
    )
    return int(connection.execute(query).rowcount)


def activate(connection: Connection, card_id: int, *, now: datetime, expires_at: datetime | None) -> None:
    connection.execute(
        update(cards)
        .where(cards.c.id == card_id)
        .values(state=str(CardState.ACTIVE), activated_at=now, expires_at=expires_at, updated_at=now)
    )


def set_state(connection: Connection, card_id: int, state: CardState, *, now: datetime) -> None:
    connection.execute(update(cards).where(cards.c.id == card_id).values(state=str(state), updated_at=now))


WALLETS_CHUNK = 500


def wallets(connection: Connection, node_ids: Sequence[int]) -> dict[int, int]:
    """The wallet account id of each card node."""
    if connection.dialect.name == "postgresql":  # one join with the ids as a set, however many
        wanted = (
            func.unnest(bindparam("wanted", value=list(node_ids), type_=ARRAY(BigInteger)))
            .table_valued("node_id")
            .render_derived(name="wanted")
        )
        query = select(ledger_accounts.c.node_id, ledger_accounts.c.id).join(
            wanted,
            and_(
                ledger_accounts.c.node_id == wanted.c.node_id,
                ledger_accounts.c.purpose == str(AccountPurpose.WALLET),
            ),
        )
        return {int(node_id): int(account) for node_id, account in connection.execute(query)}
    found: dict[int, int] = {}
    for start in range(0, len(node_ids), WALLETS_CHUNK):
        found |= _wallets(connection, node_ids[start : start + WALLETS_CHUNK])
    return found


def _wallets(connection: Connection, node_ids: Sequence[int]) -> dict[int, int]:
    rows = connection.execute(
        select(ledger_accounts.c.node_id, ledger_accounts.c.id).where(
            and_(
                ledger_accounts.c.node_id.in_(bindparam("ids", expanding=True)),
                ledger_accounts.c.purpose == str(AccountPurpose.WALLET),
            )
        ),
        {"ids": list(node_ids)},
    )
    return {int(node_id): int(account) for node_id, account in rows}


def find_access_number(connection: Connection, number: str) -> AccessNumber | None:
    row = connection.execute(select(access_numbers).where(access_numbers.c.number == number)).first()
    if row is None:
        return None
    return AccessNumber(row.number, int(row.owner_id), row.language, bool(row.exclusive))


def put_access_number(connection: Connection, number: AccessNumber, *, now: datetime) -> None:
    values = {"owner_id": number.owner_id, "language": number.language, "exclusive": number.exclusive}
    updated = connection.execute(
        update(access_numbers).where(access_numbers.c.number == number.number).values(**values, updated_at=now)
    ).rowcount
    if not updated:
        connection.execute(
            insert(access_numbers).values(number=number.number, **values, created_at=now, updated_at=now)
        )


def list_access_numbers(connection: Connection, owner_id: int, *, limit: int) -> list[AccessNumber]:
    rows = connection.execute(
        select(access_numbers)
        .where(access_numbers.c.owner_id == owner_id)
        .order_by(access_numbers.c.number)
        .limit(limit)
    )
    return [AccessNumber(r.number, int(r.owner_id), r.language, bool(r.exclusive)) for r in rows]


def balance_of(connection: Connection, node_id: int) -> int:
    wallet = wallets(connection, [node_id]).get(node_id)
    row = connection.execute(
        select(ledger_accounts.c.credits_posted, ledger_accounts.c.debits_posted).where(ledger_accounts.c.id == wallet)
    ).first()
    return 0 if row is None else int(row.credits_posted) - int(row.debits_posted)


def set_node_status(
    connection: Connection,
    owner_id: int,
    first: int,
    last: int,
    *,
    states: frozenset[CardState],
    status: str,
    now: datetime,
) -> None:
    """Give the accounts of the owner's cards numbered ``first``..``last`` in ``states`` the node status
    ``status``: a blocked or closed card's account is suspended, so that the engine refuses it (and ends
    its calls) even when a switch names the account itself."""
    card_nodes = select(cards.c.node_id).where(
        cards.c.owner_id == owner_id,
        cards.c.serial_number.between(first, last),
        cards.c.state.in_(sorted(states)),
    )
    connection.execute(
        update(nodes).where(nodes.c.id.in_(card_nodes), nodes.c.status != status).values(status=status, updated_at=now)
    )


def caller_card(connection: Connection, number: str) -> int | None:
    """The card a caller number is registered to."""
    found = connection.execute(select(card_callers.c.card_id).where(card_callers.c.number == number)).scalar()
    return None if found is None else int(found)


def callers_of(connection: Connection, card_id: int) -> list[str]:
    query = select(card_callers.c.number).where(card_callers.c.card_id == card_id).order_by(card_callers.c.number)
    return list(connection.execute(query).scalars())


def add_caller(connection: Connection, card_id: int, number: str, *, now: datetime) -> None:
    connection.execute(insert(card_callers).values(number=number, card_id=card_id, created_at=now))


def remove_caller(connection: Connection, card_id: int, number: str) -> int:
    query = delete(card_callers).where(card_callers.c.card_id == card_id, card_callers.c.number == number)
    return int(connection.execute(query).rowcount)


def find_card_by_id(connection: Connection, card_id: int) -> Card | None:
    row = connection.execute(_cards_query().where(cards.c.id == card_id)).first()
    return None if row is None else _card(row)


def list_batches(
    connection: Connection,
    owner_id: int,
    *,
    agent_id: int | None,
    limit: int,
    before_id: int | None,
    name: str | None = None,
) -> list[BatchSummary]:
    """The owner's batches, newest first (an agent's only, if ``agent_id``; the one called ``name``)."""
    query = (
        select(
            card_batches,
            plans.c.name.label("plan_name"),
            tariffs.c.name.label("tariff_name"),
            agents.c.login.label("agent_login"),
            func.min(cards.c.serial_number).label("first_number"),
            func.max(cards.c.serial_number).label("last_number"),
        )
        .select_from(
            card_batches.join(cards, cards.c.batch_id == card_batches.c.id)
            .outerjoin(plans, plans.c.id == card_batches.c.plan_id)
            .outerjoin(tariffs, tariffs.c.id == card_batches.c.tariff_id)
            .outerjoin(agents, agents.c.id == card_batches.c.agent_id)
        )
        .where(card_batches.c.owner_id == owner_id)
        .group_by(card_batches.c.id, plans.c.name, tariffs.c.name, agents.c.login)
        .order_by(card_batches.c.id.desc())
        .limit(limit)
    )
    if agent_id is not None:
        query = query.where(card_batches.c.agent_id == agent_id)
    if before_id is not None:
        query = query.where(card_batches.c.id < before_id)
    if name is not None:
        query = query.where(card_batches.c.name == name)
    return [
        BatchSummary(
            id=int(row.id),
            name=row.name,
            count=int(row._mapping["count"]),
            face_value_micros=int(row.face_value_micros),
            currency=row.currency,
            tariff=row.tariff_name,
            plan=row.plan_name,
            agent=row.agent_login,
            agent_id=None if row.agent_id is None else int(row.agent_id),
            serial_prefix=row.serial_prefix,
            first_number=int(row.first_number),
            last_number=int(row.last_number),
            expires_at=row.expires_at,
            expiry_days=row.expiry_days,
            created_at=row.created_at,
        )
        for row in connection.execute(query)
    ]


def batch_of(connection: Connection, owner_id: int, name: str) -> BatchSummary | None:
    if "\x00" in name:
        return None
    found = list_batches(connection, owner_id, agent_id=None, limit=1, before_id=None, name=name)
    return found[0] if found else None


def cards_page(
    connection: Connection, owner_id: int, *, batch_id: int, after_number: int, limit: int
) -> list[tuple[Card, int]]:
    """A batch's cards by serial, each with its balance."""
    query = (
        _cards_query()
        .add_columns((ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted).label("balance"))
        .join(
            ledger_accounts,
            and_(
                ledger_accounts.c.node_id == cards.c.node_id,
                ledger_accounts.c.purpose == str(AccountPurpose.WALLET),
            ),
        )
        .where(cards.c.owner_id == owner_id, cards.c.batch_id == batch_id, cards.c.serial_number > after_number)
        .order_by(cards.c.serial_number)
        .limit(limit)
    )
    return [(_card(row), int(row.balance)) for row in connection.execute(query)]


def sealed_key(connection: Connection, purpose: str, *, lock: bool = False) -> str | None:
    query = select(sealed_keys.c.sealed).where(sealed_keys.c.purpose == purpose)
    if lock:
        query = query.with_for_update()
    found = connection.execute(query).scalar()
    return None if found is None else str(found)


def insert_sealed_key(connection: Connection, purpose: str, sealed: str, *, now: datetime) -> None:
    connection.execute(insert(sealed_keys).values(purpose=purpose, sealed=sealed, created_at=now, updated_at=now))


def update_sealed_key(connection: Connection, purpose: str, sealed: str, *, now: datetime) -> None:
    connection.execute(
        update(sealed_keys).where(sealed_keys.c.purpose == purpose).values(sealed=sealed, updated_at=now)
    )
