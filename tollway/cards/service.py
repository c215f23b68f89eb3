"""Use cases of calling cards: make a batch, activate (sell), block and unblock, close, recharge, look up.

Each use case is one transaction. A batch is made set-based, as tollway.agents.batch makes accounts: the
cards' client nodes, their ledger accounts, their tariff and the card rows go in a few statements per
chunk. No money moves then; a card's face value moves from its reseller's issuance account into its
wallet when it is activated, one ledger transfer per card whose id derives from the card ("card:<id>:
activation"), so a repeated activation moves nothing twice.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tollway.access import held_files
from tollway.access.audit import audit
from tollway.access.model import (
    Action,
    Decision,
    Forbidden,
    Place,
    Principal,
    Role,
    authorize,
    check_mint,
    decide,
    hidden_from,
    node_creation_needs,
)
from tollway.agents import store as agents_store
from tollway.agents.batch import (
    CHUNK_COPY,
    NewAccount,
    check_owner_can_take,
    insert_nodes,
    open_accounts,
    profile_fields,
)
from tollway.agents.model import BATCH_ACCOUNTS_MAX, CustomerProfile, account_fee_request, deposit_requests
from tollway.agents.service import (
    acting_agent,
    agent_accounts,
    check_profile,
    check_same_currency,
    deposit_breakdown,
    terms_of,
)
from tollway.agents.store import logins_taken
from tollway.balances.service import account_id, audit_transfers, owner_request
from tollway.cards import model, store
from tollway.cards.model import BatchResult, BatchTerms, Card, CardState, NewCard
from tollway.clock import utc_now
from tollway.csvsafe import safe_row
from tollway.errors import NotFound, Refusal, present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import (
    BATCH_TRANSFERS_MAX,
    AccountPurpose,
    Applied,
    Shortfall,
    TransferKind,
    TransferRequest,
)
from tollway.ledger.store import needs
from tollway.lines.model import check_e164
from tollway.money import to_decimal
from tollway.rating import store as rating_store
from tollway.rating.subscriptions import subscribe_in
from tollway.sealing import Sealer
from tollway.store.bulk import copy_rows
from tollway.store.database import Database
from tollway.store.schema import tariff_assignments
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Feature, Node, NodeKind, Status, check_feature_granted
from tollway.tree.service import require_node

CHUNK_CARDS = 20_000  # PIN digests or logins looked up per statement
PIN_DRAWS_MAX = 20  # rounds of drawing PINs before giving up (never reached with 10 digits or more)
PIN_DIGEST_PURPOSE = "calling card PIN"
ACTIVE, SUSPENDED = str(Status.ACTIVE), str(Status.SUSPENDED)  # a card's account's node status
Progress = Callable[[int], None]

T = TypeVar("T")


def pin_key(sealer: Sealer) -> bytes:
    """A PIN digest key derived from ``sealer``'s current key: what ``installation_pin_key`` keeps, made once."""
    return sealer.digest_key(PIN_DIGEST_PURPOSE)


def installation_pin_key(database: Database, sealer: Sealer) -> bytes:
    """The key of the installation's PIN digests. Made once (``pin_key``: from the secret key in force then)
    and kept in ``sealed_keys``, sealed with the secret key: after a rotation (the old key in
    ``secret_keys_retired``) it still opens, ``rekey_pin_key`` re-seals it with the new key, and the PIN
    digests never change."""
    with database.reading() as connection:
        sealed = store.sealed_key(connection, PIN_DIGEST_PURPOSE)
    if sealed is None:
        made = sealer.seal(base64.b64encode(pin_key(sealer)).decode())
        with contextlib.suppress(IntegrityError):  # another process kept its own first: that one is the key
            database.run(
                lambda connection: store.insert_sealed_key(connection, PIN_DIGEST_PURPOSE, made, now=utc_now())
            )
        with database.reading() as connection:
            sealed = present(store.sealed_key(connection, PIN_DIGEST_PURPOSE), "the PIN digest key")
    return base64.b64decode(sealer.unseal(sealed))


def rekey_pin_key(database: Database, sealer: Sealer) -> str:
    """Re-seal the PIN digest key with the current secret key (after a rotation, the old key still among
    ``secret_keys_retired``): "resealed", or "made" if it was not kept yet (made from the current key)."""

    def use_case(connection: Connection) -> str:
        sealed = store.sealed_key(connection, PIN_DIGEST_PURPOSE, lock=True)
        if sealed is None:
            made = sealer.seal(base64.b64encode(pin_key(sealer)).decode())
            store.insert_sealed_key(connection, PIN_DIGEST_PURPOSE, made, now=utc_now())
            return "made"
        store.update_sealed_key(connection, PIN_DIGEST_PURPOSE, sealer.reseal(sealed), now=utc_now())
        return "resealed"

    return database.run(use_case)


def progress_total(count: int) -> int:
    """The steps ``progress`` counts for a batch: each card's node, its ledger accounts, its card row."""
    return 3 * count


def to_csv(result: BatchResult) -> str:
    """The cards as CSV (serial, PIN, currency, face value, expiry): the only time the PINs are shown."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["serial", "pin", "currency", "face_value", "expires"])
    value = str(to_decimal(result.face_value_micros))
    if result.expires_at is not None:
        expires = result.expires_at.date().isoformat()
    else:
        expires = f"{result.expiry_days} days after first use" if result.expiry_days else ""
    for card in result.cards:
        writer.writerow(safe_row([card.serial, card.pin, result.currency, value, expires]))
    return buffer.getvalue()


def _card_profile(terms: BatchTerms) -> CustomerProfile:
    return CustomerProfile(
        name="cards", client_type=str(ClientType.CALLING_CARD), login_prefix="card.", tariff=terms.tariff
    )


def create_batch(
    database: Database,
    *,
    owner_login: str,
    terms: BatchTerms,
    pin_key: bytes,
    principal: Principal | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Make ``terms.count`` new cards of ``owner_login``, in one transaction; their PINs come back once.

    From an agent (its principal), the cards are made from a profile its reseller allowed it and paid at
    once from its wallet, as accounts it makes with an initial balance (tollway/agents/batch.py): per card
    its fee per new account, and the face value as a deposit into the card (with its fee per deposit and
    the commission it earns); the whole batch is refused if its wallet cannot pay for all of it."""
    model.check_terms(terms)
    return _run_batch(
        database,
        terms,
        lambda connection: _create_batch_in(connection, owner_login, terms, pin_key, principal, progress),
    )


def create_batch_for_download(
    database: Database, *, owner_login: str, terms: BatchTerms, pin_key: bytes, principal: Principal
) -> tuple[BatchResult, str]:
    """``create_batch`` for a person at a screen: the batch, and the token that downloads its CSV once
    (tollway/access/held_files.py), held in the batch's own transaction: no batch is made whose PINs could
    not be fetched."""
    model.check_terms(terms)
    if principal.user_id is None:
        raise Refusal("user_required", "a batch's CSV is kept for a person's download only")
    user_id = principal.user_id

    def use_case(connection: Connection) -> tuple[BatchResult, str]:
        made = _create_batch_in(connection, owner_login, terms, pin_key, principal, None)
        held = held_files.hold(
            connection,
            kind=DOWNLOAD_KIND,
            name=made.batch,
            content=to_csv(made),
            user_id=user_id,
            seconds=DOWNLOAD_SECONDS,
            now=utc_now(),
        )
        return made, held.token

    return _run_batch(database, terms, use_case)


def _run_batch(database: Database, terms: BatchTerms, use_case: Callable[[Connection], T]) -> T:
    try:
        return database.run(use_case)
    except IntegrityError:  # another owner's batch of that name committed while this one was made
        with database.reading() as connection:
            if store.batch_exists(connection, terms.name):
                raise Refusal("batch_exists", f"batch {terms.name} exists already") from None
        raise


def _create_batch_in(
    connection: Connection,
    owner_login: str,
    terms: BatchTerms,
    pin_key: bytes,
    principal: Principal | None,
    progress: Progress | None,
) -> BatchResult:
    now = utc_now()
    model.check_expiry_ahead(terms, now)
    owner = require_node(connection, owner_login, lock=True)  # one batch at a time: its serials follow
    authorize(principal, Action.NODE_CREATE, owner)
    agent = acting_agent(connection, None, principal) if principal and principal.role is Role.AGENT else None
    if agent is not None and agent.parent_id != owner.id:
        raise Refusal("agent_not_of_owner", f"{agent.login} is not an agent of {owner.login}")
    check_feature_granted(owner.grants, Feature.CALLING_CARDS)
    if store.batch_exists(connection, terms.name):
        raise Refusal("batch_exists", f"batch {terms.name} was created already; its PINs were shown then")
    profile, tariff_id = _profile_of(connection, owner, agent, terms, principal)
    if agent is None:  # an agent uses the profiles its reseller allowed it, with the reseller's settings
        check_mint(principal, node_creation_needs(profile_fields(owner, profile, tariff_id)))
    plan_id = _plan_of(connection, owner, agent, terms, principal)
    check_owner_can_take(connection, owner, profile, terms.count)
    if agent is not None:
        _check_agent_can_pay(connection, agent, owner, terms)
    first = store.last_serial_number(connection, owner.id) + 1
    if first + terms.count - 1 > model.SERIAL_NUMBER_MAX:
        raise Refusal("serials_exhausted", f"{owner.login} has no serial numbers left for {terms.count} cards")
    numbers = range(first, first + terms.count)
    logins = [f"card.{owner.id}.{number}" for number in numbers]
    _check_logins_free(connection, logins)
    pins = _draw_pins(connection, pin_key, terms)
    node_ids = insert_nodes(connection, owner, profile, [NewAccount(x, "") for x in logins], agent, now, progress)
    # A card's wallet only: it never issues credit, nor earns (those accounts open on first use).
    wallets = open_accounts(connection, owner, profile, node_ids, now, progress, wallets_only=True)
    if tariff_id is not None:
        rows = [{"node_id": i} for i in node_ids]
        copy_rows(connection, tariff_assignments, rows, same={"tariff_id": tariff_id, "assigned_at": now})
    batch_id = store.insert_batch(
        connection,
        {
            "name": terms.name,
            "owner_id": owner.id,
            "count": terms.count,
            "face_value_micros": terms.face_value_micros,
            "currency": owner.currency,
            "tariff_id": tariff_id,
            "plan_id": plan_id,
            "agent_id": None if agent is None else agent.id,
            "expires_at": terms.expires_at,
            "expiry_days": terms.expiry_days,
            "pin_length": terms.pin_length,
            "serial_prefix": terms.serial_prefix,
            "created_at": now,
        },
    )
    same = {"batch_id": batch_id, "owner_id": owner.id, "state": str(CardState.NEW), "updated_at": now}
    for start in range(0, terms.count, CHUNK_COPY):
        chunk = range(start, min(start + CHUNK_COPY, terms.count))
        card_rows = [{"node_id": node_ids[i], "serial_number": numbers[i], "pin_digest": pins[i][1]} for i in chunk]
        store.insert_cards(connection, card_rows, same=same)
        if progress is not None:
            progress(len(chunk))
    serials = [model.serial(terms.serial_prefix, n) for n in numbers]
    if agent is not None:
        requests = _agent_pays(connection, agent, terms, serials, wallets)
        for start in range(0, len(requests), BATCH_TRANSFERS_MAX):
            ledger_store.execute(connection, requests[start : start + BATCH_TRANSFERS_MAX], now=now)
    audit(
        connection,
        principal,
        action="card.batch_create",
        target_type="card_batch",
        target_id=terms.name,
        node=owner,
        after={
            "count": terms.count,
            "face_value_micros": terms.face_value_micros,
            "currency": owner.currency,
            "tariff": profile.tariff,
            "plan": terms.plan,
            "agent": None if agent is None else agent.login,
            "first_serial": serials[0],
            "last_serial": serials[-1],
        },
    )
    return BatchResult(
        terms.name,
        owner.login,
        owner.currency,
        terms.face_value_micros,
        terms.expires_at,
        terms.expiry_days,
        tuple(NewCard(s, pin) for s, (pin, _) in zip(serials, pins, strict=True)),
    )


def _profile_of(
    connection: Connection, owner: Node, agent: Node | None, terms: BatchTerms, principal: Principal | None
) -> tuple[CustomerProfile, int | None]:
    """The profile the cards are made from, and its tariff's id. An agent must name a profile of type
    ``calling_card`` its reseller allowed it, and takes its tariff; a reseller may name one, or none."""
    if terms.profile is None:
        if agent is not None:
            raise Refusal("profile_required", "an agent makes cards from a profile its reseller allowed it")
        profile = _card_profile(terms)
        return profile, check_profile(connection, owner, profile, principal=principal)
    found = agents_store.find_profile(connection, owner.id, terms.profile)
    if found is None:
        raise NotFound("profile", terms.profile)
    profile_id, profile, tariff_id = found
    if agent is not None and not agents_store.agent_may_use(connection, agent.id, profile_id):
        raise Refusal("profile_not_allowed", f"{agent.login} may not make cards from {terms.profile}")
    if profile.client_type != ClientType.CALLING_CARD:
        raise Refusal("profile_not_allowed", f"{terms.profile} makes {profile.client_type} accounts, not cards")
    if terms.tariff is not None and terms.tariff != profile.tariff:
        raise Refusal("profile_not_allowed", f"{terms.profile}'s cards pay at {profile.tariff or 'no tariff'}")
    if agent is not None and terms.count > BATCH_ACCOUNTS_MAX:
        raise Refusal("batch_size_invalid", f"an agent makes 1 to {BATCH_ACCOUNTS_MAX} cards at a time")
    return replace(profile, login_prefix="card."), tariff_id


def _plan_of(
    connection: Connection, owner: Node, agent: Node | None, terms: BatchTerms, principal: Principal | None
) -> int | None:
    """The id of the owner's plan the cards are given when activated; its first fee must fit in a card."""
    if terms.plan is None:
        return None
    if agent is not None:  # a profile names no plan: an agent cannot give one
        raise Refusal("plan_not_allowed", "an agent's cards have no plan: profiles name none")
    found = rating_store.find_plan(connection, terms.plan)
    seller = None if found is None else tree_store.get_node(connection, found[1])
    if found is None or seller is None or hidden_from(principal, seller):
        raise NotFound("plan", terms.plan)  # another tenant's plan: exactly as one that does not exist
    plan_id, owner_id, plan = found
    if owner_id != owner.id:
        raise Refusal("plan_not_owners", f"{plan.name} does not belong to {owner.login}")
    if plan.currency != owner.currency:
        raise Refusal("currency_mismatch", f"{plan.name} is in {plan.currency}, {owner.login} in {owner.currency}")
    if plan.fee_micros > terms.face_value_micros:
        raise Refusal("plan_unpaid", f"a card's face value does not pay the first fee of {plan.name}")
    return plan_id


def _check_agent_can_pay(connection: Connection, agent: Node, owner: Node, terms: BatchTerms) -> None:
    """The whole batch's cost to its agent, checked before anything is made, with the numbers it needs."""
    check_same_currency(agent, owner)  # the cards are in their owner's currency
    agent_terms = terms_of(connection, agent)
    each = agent_terms.account_fee_micros + terms.face_value_micros + agent_terms.topup_fee_micros
    wallet_id = account_id(connection, agent, AccountPurpose.WALLET)
    wallet = present(ledger_store.get_account(connection, wallet_id, lock=True), f"wallet of {agent.login}")
    if terms.count * each > wallet.available_micros:
        shortfall = Shortfall(wallet_id, wallet.currency, terms.count * each, wallet.available_micros)
        breakdown = deposit_breakdown(
            terms.face_value_micros, agent_terms, wallet.currency, count=terms.count, account_fees=True, unit="cards"
        )
        raise Refusal("insufficient_funds", f"{agent.login} needs {needs(shortfall, breakdown)}")


def _agent_pays(
    connection: Connection, agent: Node, terms: BatchTerms, serials: list[str], wallets: list[int]
) -> list[TransferRequest]:
    """An agent's batch: per card its fee per new account, and its face value deposited into the card."""
    agent_terms, paying = terms_of(connection, agent), agent_accounts(connection, agent)
    requests: list[TransferRequest] = []
    for serial, wallet in zip(serials, wallets, strict=True):
        transfer_id = f"card-batch:{terms.name}:{serial}"
        requests += account_fee_request(
            transfer_id=f"{transfer_id}:account-fee", terms=agent_terms, agent=paying, login=f"card {serial}"
        )
        requests += deposit_requests(
            transfer_id=transfer_id,
            amount_micros=terms.face_value_micros,
            terms=agent_terms,
            agent=paying,
            client_wallet=wallet,
            reference=f"card {serial} made by {agent.login}",
        )
    return requests


def _check_logins_free(connection: Connection, logins: list[str]) -> None:
    for start in range(0, len(logins), CHUNK_CARDS):
        taken = logins_taken(connection, logins[start : start + CHUNK_CARDS])
        if taken:
            raise Refusal("login_taken", f"the card logins {', '.join(sorted(taken)[:3])} are taken by other nodes")


def _draw_pins(connection: Connection, key: bytes, terms: BatchTerms) -> list[tuple[str, str]]:
    """``terms.count`` PINs and their digests, unique in the batch and in the whole system."""
    drawn: dict[str, str] = {}  # digest -> PIN
    for _ in range(PIN_DRAWS_MAX):
        wanted = terms.count - len(drawn)
        if not wanted:
            break
        fresh: dict[str, str] = {}
        for _ in range(wanted):
            pin = model.draw_pin(terms.pin_length)
            fresh[model.pin_digest(key, pin)] = pin
        candidates = [digest for digest in fresh if digest not in drawn]
        taken: set[str] = set()
        for start in range(0, len(candidates), CHUNK_CARDS):
            taken |= store.digests_taken(connection, candidates[start : start + CHUNK_CARDS])
        drawn |= {digest: fresh[digest] for digest in candidates if digest not in taken}
    if len(drawn) < terms.count:
        raise Refusal("pins_exhausted", f"no free PINs left of {terms.pin_length} digits")
    return [(pin, digest) for digest, pin in list(drawn.items())[: terms.count]]


# -- one card, a range of cards ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardView:
    """A card as its reseller sees it: never its PIN."""

    card: Card
    owner: str
    balance_micros: int


@dataclass(frozen=True, slots=True)
class Selection:
    """The cards a reseller's action applies to: one serial, a range of serials, or a whole batch."""

    first: str | None = None  # a serial; alone, that one card
    last: str | None = None
    batch: str | None = None


def _numbers(connection: Connection, owner: Node, selection: Selection) -> tuple[int, int]:
    if selection.batch is not None:
        if selection.first is not None or selection.last is not None:
            raise Refusal("selection_invalid", "name a batch or a range of serials, not both")
        found = store.find_batch(connection, owner.id, selection.batch)
        if found is None:
            raise NotFound("card_batch", selection.batch)
        return found
    if selection.first is None:
        raise Refusal("selection_invalid", "name a serial, a range of serials or a batch")
    _, first = model.parse_serial(selection.first)
    _, last = model.parse_serial(selection.last) if selection.last is not None else (None, first)
    model.check_range(first, last)
    return first, last


def require_card(connection: Connection, owner: Node, serial: str, *, lock: bool = False) -> Card:
    prefix, number = model.parse_serial(serial)
    card = store.find_card(connection, owner.id, number, lock=lock)
    if card is None or card.serial_prefix != prefix:
        raise NotFound("card", serial)
    return card


def _owner(connection: Connection, owner_login: str, principal: Principal | None, action: Action) -> Node:
    """The cards' owner, if ``principal`` may take ``action`` on its cards: what it may do to a client of
    that owner (a card is one), by the one rule; an agent, to a client it manages (its own batches' cards:
    ``_agents_only``). Whoever may not know the owner gets "not found"."""
    owner = require_node(connection, owner_login)
    agent = _agent_id(principal)
    if agent is not None and principal is not None:  # an agent's cards are its reseller's, which it cannot read
        if owner.id != principal.place.parent_id:
            raise NotFound("node", owner_login)
    else:
        authorize(principal, Action.NODE_READ, owner)
    if principal is not None:
        a_card = Place(0, f"{owner.path}0/", NodeKind.CLIENT, owner.id, agent)
        if decide(principal, action, a_card) is not Decision.ALLOWED:
            raise Forbidden(action)
    return owner


def _agent_id(principal: Principal | None) -> int | None:
    """An agent's node: it sees only the cards of the batches it made."""
    return principal.place.node_id if principal is not None and principal.role is Role.AGENT else None


def get_card(database: Database, *, owner_login: str, serial: str, principal: Principal | None = None) -> CardView:
    with database.reading() as connection:
        owner = _owner(connection, owner_login, principal, Action.BALANCE_READ)
        card = require_card(connection, owner, serial)
        agent = _agent_id(principal)
        if agent is not None and card.agent_id != agent:
            raise NotFound("card", serial)
        return _view(connection, owner, card)


def cards_owner_of(database: Database, principal: Principal) -> str:
    """Whose cards a staff login deals with by default: its own node's, an agent's reseller's."""
    if principal.role is not Role.AGENT or principal.place.parent_id is None:
        with database.reading() as connection:
            return present(tree_store.get_node(connection, principal.place.node_id), "the principal's node").login
    with database.reading() as connection:
        return present(tree_store.get_node(connection, principal.place.parent_id), "the agent's reseller").login


BATCHES_PAGE_MAX = 50
CARDS_PAGE_MAX = 100


def list_batches(
    database: Database,
    *,
    owner_login: str,
    principal: Principal | None = None,
    limit: int = BATCHES_PAGE_MAX,
    before_id: int | None = None,
) -> list[model.BatchSummary]:
    """The owner's batches, newest first; to an agent, the ones it made."""
    with database.reading() as connection:
        owner = _owner(connection, owner_login, principal, Action.BALANCE_READ)
        return store.list_batches(
            connection,
            owner.id,
            agent_id=_agent_id(principal),
            limit=max(1, min(limit, BATCHES_PAGE_MAX)),
            before_id=before_id,
        )


def list_cards(
    database: Database,
    *,
    owner_login: str,
    batch: str,
    principal: Principal | None = None,
    after_number: int = 0,
    limit: int = 50,
) -> tuple[model.BatchSummary, list[CardView]]:
    """A batch and a page of its cards by serial (those numbered after ``after_number``), with balances."""
    with database.reading() as connection:
        owner = _owner(connection, owner_login, principal, Action.BALANCE_READ)
        found = store.batch_of(connection, owner.id, batch)
        agent = _agent_id(principal)
        if found is None or (agent is not None and found.agent_id != agent):
            raise NotFound("card_batch", batch)
        page = store.cards_page(
            connection,
            owner.id,
            batch_id=found.id,
            after_number=max(0, after_number),
            limit=max(1, min(limit, CARDS_PAGE_MAX)),
        )
        return found, [CardView(card, owner.login, balance) for card, balance in page]


DOWNLOAD_SECONDS = 15 * 60  # a new batch's CSV waits this long for its one download
DOWNLOAD_KIND = "cards"


def take_csv(database: Database, *, token: str, principal: Principal, now: datetime | None = None) -> str | None:
    """The CSV held under ``token`` for the principal's user, once: None if it was taken already, expired, or
    is another's."""
    if principal.user_id is None:
        return None
    user_id, instant = principal.user_id, now or utc_now()
    found = database.run(
        lambda connection: held_files.take(connection, kind=DOWNLOAD_KIND, token=token, user_id=user_id, now=instant)
    )
    return None if found is None else found[1]


def _view(connection: Connection, owner: Node, card: Card) -> CardView:
    wallet = ledger_store.get_account(connection, store.wallets(connection, [card.node_id])[card.node_id])
    balance = 0 if wallet is None else wallet.balance_micros
    return CardView(card, owner.login, balance)


def activate(database: Database, *, owner_login: str, selection: Selection, principal: Principal | None = None) -> int:
    """The reseller sells the selected new cards: each one's face value moves into it; how many."""

    def use_case(connection: Connection) -> int:
        now = utc_now()
        owner = _owner(connection, owner_login, principal, Action.MONEY_TOPUP)
        first, last = _numbers(connection, owner, selection)
        found = store.cards_in_range(connection, owner.id, first, last, model.ACTIVATABLE, lock=True)
        activated = activate_found(connection, owner, found, now=now)
        audit(
            connection,
            principal,
            action="card.activate",
            target_type="card_range",
            target_id=f"{first}-{last}",
            node=owner,
            after={"cards": len(found), "first": first, "last": last},
        )
        return activated

    return database.run(use_case)


def activate_found(connection: Connection, owner: Node, found: list[Card], *, now: datetime) -> int:
    """Move the face value of each of ``found`` (new cards, locked) into it, and mark it active."""
    if not found:
        return 0
    to_fund = [card for card in found if card.agent_id is None]  # an agent's cards were paid when made
    if to_fund:
        issuance = account_id(connection, owner, AccountPurpose.ISSUANCE)
        wallets = store.wallets(connection, [card.node_id for card in to_fund])
        requests = [
            TransferRequest(
                id=f"card:{card.id}:activation",
                amount_micros=card.face_value_micros,
                debit_account_id=issuance,
                credit_account_id=wallets[card.node_id],
                kind=TransferKind.TOPUP,
                reference=f"card {card.serial} activated",
            )
            for card in to_fund
        ]
        for start in range(0, len(requests), BATCH_TRANSFERS_MAX):
            ledger_store.execute(connection, requests[start : start + BATCH_TRANSFERS_MAX], now=now)
    by_batch: dict[int, list[Card]] = {}
    for card in found:
        by_batch.setdefault(card.batch_id, []).append(card)
    for batch_id, batch_cards in by_batch.items():
        one = batch_cards[0]
        expires_at = model.expiry_on_activation(one.batch_expires_at, one.expiry_days, now)
        numbers = [card.serial_number for card in batch_cards]
        store.activate_range(connection, batch_id, min(numbers), max(numbers), now=now, expires_at=expires_at)
    _give_plans(connection, found, now=now)
    return len(found)


def _give_plans(connection: Connection, found: list[Card], *, now: datetime) -> None:
    """Each activated card of a batch with a plan gets that plan from now, with its included seconds; its
    first fee (at most the face value, checked when the batch was made) is paid from what the card holds."""
    with_plan = [card for card in found if card.plan_id is not None]
    if not with_plan:
        return
    names = rating_store.plan_names(connection, {card.plan_id for card in with_plan if card.plan_id is not None})
    for card in with_plan:
        subscribe_in(connection, login=card.login, plan_name=names[card.plan_id or 0], principal=None, now=now)


def block(database: Database, *, owner_login: str, selection: Selection, principal: Principal | None = None) -> int:
    """The reseller blocks the selected cards (new, active or depleted): none authorizes a call; how many."""
    return _move(database, owner_login, selection, principal, "card.block", to_state=CardState.BLOCKED)


def unblock(database: Database, *, owner_login: str, selection: Selection, principal: Principal | None = None) -> int:
    """Blocked cards return to active (if their value moved in) or new; how many."""
    return _move(database, owner_login, selection, principal, "card.unblock", to_state=None)


def close(database: Database, *, owner_login: str, selection: Selection, principal: Principal | None = None) -> int:
    """Closed for ever (what is left in a closed card stays in its wallet, visible to its reseller)."""
    return _move(database, owner_login, selection, principal, "card.close", to_state=CardState.CLOSED)


def _move(
    database: Database,
    owner_login: str,
    selection: Selection,
    principal: Principal | None,
    action: str,
    *,
    to_state: CardState | None,
) -> int:
    def use_case(connection: Connection) -> int:
        now = utc_now()
        owner = _owner(connection, owner_login, principal, Action.NODE_UPDATE)  # a client's status
        first, last = _numbers(connection, owner, selection)
        if to_state is None:
            moved = store.set_states(
                connection,
                owner.id,
                first,
                last,
                from_states=frozenset({CardState.BLOCKED}),
                to_state=CardState.ACTIVE,
                activated=True,
                now=now,
            )
            moved += store.set_states(
                connection,
                owner.id,
                first,
                last,
                from_states=frozenset({CardState.BLOCKED}),
                to_state=CardState.NEW,
                activated=False,
                now=now,
            )
            usable = frozenset({CardState.NEW, CardState.ACTIVE})
            store.set_node_status(connection, owner.id, first, last, states=usable, status=ACTIVE, now=now)
        else:
            states = model.BLOCKABLE if to_state is CardState.BLOCKED else model.CLOSABLE
            moved = store.set_states(connection, owner.id, first, last, from_states=states, to_state=to_state, now=now)
            store.set_node_status(
                connection, owner.id, first, last, states=frozenset({to_state}), status=SUSPENDED, now=now
            )
        audit(
            connection,
            principal,
            action=action,
            target_type="card_range",
            target_id=f"{first}-{last}",
            node=owner,
            after={"cards": moved, "first": first, "last": last},
        )
        return moved

    return database.run(use_case)


def recharge(
    database: Database,
    *,
    owner_login: str,
    serial: str,
    amount_micros: int,
    transfer_id: str,
    principal: Principal | None = None,
) -> Applied:
    """A top-up of an active (or depleted) card from its reseller; a depleted card is active again."""
    if amount_micros <= 0:
        raise Refusal("amount_invalid", "a recharge is a positive amount")

    def use_case(connection: Connection) -> Applied:
        now = utc_now()
        owner = _owner(connection, owner_login, principal, Action.MONEY_TOPUP)
        card = require_card(connection, owner, serial, lock=True)
        if card.state not in model.RECHARGEABLE:
            raise Refusal("card_not_rechargeable", f"card {serial} is {card.state}: only an active card is recharged")
        node = tree_store.get_node(connection, card.node_id)
        if node is None:
            raise NotFound("card", serial)
        request = owner_request(
            connection,
            node,
            transfer_id=transfer_id,
            amount_micros=amount_micros,
            kind=TransferKind.TOPUP,
            reference=f"card {card.serial} recharged",
        )
        applied = ledger_store.execute(connection, [request], now=now)
        if card.state is CardState.DEPLETED:
            store.set_state(connection, card.id, CardState.ACTIVE, now=now)
        audit_transfers(connection, principal, "card.recharge", node, applied)
        return applied

    return database.run(use_case)


def add_caller(
    database: Database, *, owner_login: str, serial: str, number: str, principal: Principal | None = None
) -> list[str]:
    """Register a caller number (ANI) to a card: calls from it need no PIN. The card's numbers."""
    e164 = check_e164(number)

    def use_case(connection: Connection) -> list[str]:
        owner = _owner(connection, owner_login, principal, Action.NODE_UPDATE)
        card = require_card(connection, owner, serial, lock=True)
        held = store.callers_of(connection, card.id)
        if e164 in held:
            return held
        if store.caller_card(connection, e164) is not None:
            raise Refusal("caller_id_exists", f"{e164} is registered to another card")
        if len(held) >= model.CALLERS_PER_CARD_MAX:
            raise Refusal("card_callers_limit_reached", f"a card has at most {model.CALLERS_PER_CARD_MAX} numbers")
        store.add_caller(connection, card.id, e164, now=utc_now())
        audit(
            connection,
            principal,
            action="card.caller_add",
            target_type="card",
            target_id=card.serial,
            node=owner,
            after={"number": e164},
        )
        return store.callers_of(connection, card.id)

    return database.run(use_case)


def remove_caller(
    database: Database, *, owner_login: str, serial: str, number: str, principal: Principal | None = None
) -> list[str]:
    e164 = check_e164(number)

    def use_case(connection: Connection) -> list[str]:
        owner = _owner(connection, owner_login, principal, Action.NODE_UPDATE)
        card = require_card(connection, owner, serial, lock=True)
        if not store.remove_caller(connection, card.id, e164):
            raise NotFound("card_caller", e164)
        audit(
            connection,
            principal,
            action="card.caller_remove",
            target_type="card",
            target_id=card.serial,
            node=owner,
            before={"number": e164},
        )
        return store.callers_of(connection, card.id)

    return database.run(use_case)
