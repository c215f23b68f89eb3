"""Use cases of agents: terms, customer profiles, deposits, payments, commission and its statement.

Each use case is one transaction; every money movement is one linked ledger batch whose ids derive
from the caller's id, so a retry is answered with the first result and charges nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, Role, authorize
from tollway.agents import store
from tollway.agents.model import (
    NO_TERMS,
    AgentAccounts,
    AgentTerms,
    CommissionStatement,
    CustomerProfile,
    account_fee_request,
    commission_requests,
    deposit_requests,
)
from tollway.balances.service import account_id, audit_transfers, execute_paid, owner_request
from tollway.clock import utc_now
from tollway.display import rounded
from tollway.errors import NotFound, Refusal, present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, Applied, TransferKind, TransferRequest
from tollway.rating.service import authorize_read, require_tariff
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Node, NodeKind
from tollway.tree.service import NewNode, create_node_in, require_node

PROFILES_PAGE_MAX = 500
STATEMENT_LINES_MAX = 10_000
LOGIN_PREFIX_PATTERN_HINT = "lower-case letters, digits and . _ - (a login's characters)"


def require_agent(connection: Connection, login: str, principal: Principal | None, action: Action) -> Node:
    agent = require_node(connection, login)
    authorize(principal, action, agent)
    if agent.position.kind is not NodeKind.AGENT:
        raise Refusal("not_an_agent", f"{login} is not an agent")
    return agent


def reseller_of(connection: Connection, agent: Node) -> Node:
    return present(tree_store.get_node(connection, present(agent.parent_id, "an agent's reseller")), "reseller")


def terms_of(connection: Connection, agent: Node) -> AgentTerms:
    return store.get_terms(connection, agent.id) or NO_TERMS


def set_terms(
    database: Database,
    *,
    agent_login: str,
    terms: AgentTerms,
    profiles: list[str] | None = None,
    principal: Principal | None = None,
) -> tuple[AgentTerms, list[str]]:
    """The agent's reseller (or anyone above it) sets its commission, its fees and the profiles it may use."""

    def use_case(connection: Connection) -> tuple[AgentTerms, list[str]]:
        agent = require_agent(connection, agent_login, principal, Action.NODE_UPDATE)
        before = store.get_terms(connection, agent.id)
        store.put_terms(connection, agent.id, terms, now=utc_now())
        if profiles is not None:
            reseller = reseller_of(connection, agent)
            found = store.profile_ids(connection, reseller.id, profiles)
            missing = sorted(set(profiles) - found.keys())
            if missing:
                raise Refusal("profile_not_found", f"{reseller.login} has no profile {', '.join(missing)}")
            store.set_agent_profiles(connection, agent.id, sorted(found.values()))
        names = store.agent_profile_names(connection, agent.id)
        audit(
            connection,
            principal,
            action="agent.terms",
            target_type="node",
            target_id=agent.login,
            node=agent,
            before=None if before is None else _terms_summary(before),
            after=_terms_summary(terms) | {"profiles": names},
        )
        return terms, names

    return database.run(use_case)


def get_terms(
    database: Database, *, agent_login: str, principal: Principal | None = None
) -> tuple[AgentTerms, list[str]]:
    with database.reading() as connection:
        agent = require_agent(connection, agent_login, principal, Action.NODE_READ)
        return terms_of(connection, agent), store.agent_profile_names(connection, agent.id)


def _terms_summary(terms: AgentTerms) -> dict[str, Any]:
    return {
        "commission_ppm": terms.commission_ppm,
        "topup_fee_micros": terms.topup_fee_micros,
        "account_fee_micros": terms.account_fee_micros,
    }


def put_profile(
    database: Database, *, owner_login: str, profile: CustomerProfile, principal: Principal | None = None
) -> CustomerProfile:
    """A reseller (or the provider) defines a template for the client accounts made below it."""

    def use_case(connection: Connection) -> CustomerProfile:
        owner = require_node(connection, owner_login)
        authorize(principal, Action.TARIFFS_WRITE, owner)
        tariff_id = check_profile(connection, owner, profile, principal=principal)
        store.put_profile(connection, owner.id, profile, tariff_id, now=utc_now())
        audit(
            connection,
            principal,
            action="profile.put",
            target_type="profile",
            target_id=f"{owner.login}:{profile.name}",
            node=owner,
            after=asdict(profile),
        )
        return profile

    return database.run(use_case)


def check_profile(
    connection: Connection, owner: Node, profile: CustomerProfile, *, principal: Principal | None = None
) -> int | None:
    """Everything a profile says, checked against its owner; the tariff's id, if it names one."""
    tree_model.check_login(profile.name)
    if profile.login_prefix and not tree_model.LOGIN_PATTERN.match(profile.login_prefix + "0"):
        raise Refusal("login_prefix_invalid", f"a login prefix has {LOGIN_PREFIX_PATTERN_HINT}")
    client_type = tree_model.parse_enum_set(ClientType, [profile.client_type], "client_type_invalid")
    tree_model.check_link(owner.position, tree_model.client(next(iter(client_type))))
    if profile.language is not None:
        tree_model.check_language(profile.language)
    if profile.time_zone is not None:
        tree_model.check_time_zone(profile.time_zone)
    tree_model.check_credit_limit(profile.credit_limit_micros)
    tree_model.check_limit("concurrent_calls_limit", profile.concurrent_calls_limit)
    tree_model.check_limit("max_call_seconds", profile.max_call_seconds)
    if profile.tariff is None:
        return None
    tariff = require_tariff(connection, profile.tariff)
    authorize_read(connection, principal, tariff)  # another tenant's: not found, as a missing one
    if tariff.owner_id != owner.id:
        raise Refusal("tariff_not_owners", f"{tariff.name} does not belong to {owner.login}")
    if tariff.currency != owner.currency:
        raise Refusal("currency_mismatch", f"{tariff.name} is in {tariff.currency}, {owner.login} in {owner.currency}")
    return tariff.id


def list_profiles(database: Database, *, owner_login: str, principal: Principal | None = None) -> list[CustomerProfile]:
    with database.reading() as connection:
        owner = require_node(connection, owner_login)
        authorize(principal, Action.TARIFFS_READ, owner)
        return store.list_profiles(connection, owner.id, limit=PROFILES_PAGE_MAX)


ACCOUNT_FEE_ID_PREFIX = "account-fee:"  # + the new client's login: one fee per account, ever


def create_node(database: Database, *, owner_login: str, new: NewNode, principal: Principal | None = None) -> Node:
    """Create a node (tollway.tree) and, for a client an agent manages, charge that agent its per-account fee.

    One transaction: an agent that cannot pay the fee creates nothing (``insufficient_funds``).
    """
    now = utc_now()

    def use_case(connection: Connection) -> Node:
        node = create_node_in(connection, owner_login=owner_login, new=new, now=now, principal=principal)
        if node.managed_by_agent_id is not None:
            agent = present(tree_store.get_node(connection, node.managed_by_agent_id), "the client's agent")
            requests = account_fee_request(
                transfer_id=ACCOUNT_FEE_ID_PREFIX + node.login,
                terms=terms_of(connection, agent),
                agent=agent_accounts(connection, agent),
                login=node.login,
            )
            if requests:
                wallet = account_id(connection, agent, AccountPurpose.WALLET)
                payers = {wallet: agent.login}
                _recorded(
                    connection, principal, "agent.account_fee", agent, requests, payers=payers, breakdown="account fee"
                )
        return node

    return database.run(use_case)


def agent_accounts(connection: Connection, agent: Node) -> AgentAccounts:
    return AgentAccounts(
        wallet=account_id(connection, agent, AccountPurpose.WALLET),
        commission=account_id(connection, agent, AccountPurpose.COMMISSION),
        reseller_revenue=account_id(connection, reseller_of(connection, agent), AccountPurpose.REVENUE, agent.currency),
    )


def check_same_currency(agent: Node, client: Node) -> None:
    if client.currency != agent.currency:
        raise Refusal(
            "currency_mismatch", f"{agent.login} pays in {agent.currency}, {client.login} in {client.currency}"
        )


def acting_agent(connection: Connection, agent_login: str | None, principal: Principal | None) -> Node:
    """The agent a deposit is made by: the principal itself, or one an operator names."""
    if principal is not None and principal.role is Role.AGENT:
        agent = present(tree_store.get_node(connection, principal.place.node_id), "the principal's node")
        if agent_login is not None and agent_login != agent.login:
            raise NotFound("node", agent_login)
        return agent
    if agent_login is None:
        raise Refusal("agent_required", "name the agent whose wallet pays the deposit")
    # Spending an agent's wallet is an owner's correction of that wallet.
    return require_agent(connection, agent_login, principal, Action.MONEY_ADJUST)


def deposit(
    database: Database,
    *,
    client_login: str,
    amount_micros: int,
    transfer_id: str,
    agent_login: str | None = None,
    principal: Principal | None = None,
) -> Applied:
    """The agent moves money from its wallet to a client it manages, pays its fee and earns its commission.

    Refused whole (``insufficient_funds``) when its wallet cannot pay the amount and the fee.
    """

    def use_case(connection: Connection) -> Applied:
        client = require_node(connection, client_login)
        authorize(principal, Action.MONEY_TOPUP, client)
        agent = acting_agent(connection, agent_login, principal)
        if client.managed_by_agent_id != agent.id:
            raise Refusal("client_not_managed", f"{client.login} is not a client of {agent.login}")
        check_same_currency(agent, client)
        terms, paying = terms_of(connection, agent), agent_accounts(connection, agent)
        requests = deposit_requests(
            transfer_id=transfer_id,
            amount_micros=amount_micros,
            terms=terms,
            agent=paying,
            client_wallet=account_id(connection, client, AccountPurpose.WALLET),
            reference=f"deposit by {agent.login}",
        )
        return _recorded(
            connection,
            principal,
            "agent.deposit",
            client,
            requests,
            payers={paying.wallet: agent.login},
            breakdown=deposit_breakdown(amount_micros, terms, agent.currency),
        )

    return database.run(use_case)


def record_payment(
    database: Database,
    *,
    login: str,
    amount_micros: int,
    transfer_id: str,
    reference: str | None = None,
    principal: Principal | None = None,
) -> Applied:
    """An owner records money its client (or agent) paid it: the wallet is credited, kind ``payment``.

    A payment into a client of an agent earns that agent its commission, paid by the reseller.
    """

    def use_case(connection: Connection) -> Applied:
        node = require_node(connection, login)
        authorize(principal, Action.MONEY_TOPUP, node)
        if principal is not None and principal.role is Role.AGENT:
            raise Refusal("agent_records_no_payments", "an agent deposits from its wallet: POST .../topups")
        requests = [
            owner_request(
                connection,
                node,
                transfer_id=transfer_id,
                amount_micros=amount_micros,
                kind=TransferKind.PAYMENT,
                reference=reference,
            )
        ]
        requests += commission_on_payment(connection, node, payment_id=transfer_id, amount_micros=amount_micros)
        return _recorded(connection, principal, "money.payment", node, requests)

    return database.run(use_case)


def commission_on_payment(
    connection: Connection, node: Node, *, payment_id: str, amount_micros: int
) -> list[TransferRequest]:
    """The commission a payment into ``node`` earns its agent, if an agent manages it (in its currency),
    as for a deposit: recorded payments and the client's own shop payments alike."""
    if node.managed_by_agent_id is None:
        return []
    agent = present(tree_store.get_node(connection, node.managed_by_agent_id), "the client's agent")
    if agent.currency != node.currency:
        return []
    return commission_requests(
        deposit_id=payment_id,
        amount_micros=amount_micros,
        terms=terms_of(connection, agent),
        agent=agent_accounts(connection, agent),
    )


def withdraw_commission(
    database: Database,
    *,
    agent_login: str,
    transfer_id: str,
    amount_micros: int | None = None,
    principal: Principal | None = None,
) -> Applied:
    """The agent moves accrued commission (all of it, or an amount) to its wallet."""

    def use_case(connection: Connection) -> Applied:
        agent = require_agent(connection, agent_login, principal, Action.COMMISSION_WITHDRAW)
        commission = account_id(connection, agent, AccountPurpose.COMMISSION)
        amount = amount_micros
        if amount is None:
            # A retry of an earlier "all of it" repeats that transfer's amount, whatever has accrued since.
            earlier = ledger_store.get_transfers(connection, [transfer_id]).get(transfer_id)
            account = present(ledger_store.get_account(connection, commission, lock=True), "commission account")
            amount = earlier.amount_micros if earlier else account.available_micros
            if amount <= 0:
                raise Refusal("nothing_to_withdraw", f"{agent.login} has no commission to move")
        request = TransferRequest(
            id=transfer_id,
            amount_micros=amount,
            debit_account_id=commission,
            credit_account_id=account_id(connection, agent, AccountPurpose.WALLET),
            kind=TransferKind.COMMISSION,
            reference="commission to wallet",
        )
        payers = {commission: f"{agent.login}'s commission"}
        return _recorded(connection, principal, "agent.commission_withdraw", agent, [request], payers=payers)

    return database.run(use_case)


def commission_statement(
    database: Database,
    *,
    agent_login: str,
    since: datetime,
    until: datetime,
    principal: Principal | None = None,
) -> CommissionStatement:
    """The commissions an agent earned in [since, until), deposit by deposit, and what it withdrew."""
    if until <= since:
        raise Refusal("period_invalid", "a period ends after it starts")
    with database.reading() as connection:
        agent = require_agent(connection, agent_login, principal, Action.BALANCE_READ)
        commission = account_id(connection, agent, AccountPurpose.COMMISSION)
        lines = store.commission_lines(connection, commission, since=since, until=until, limit=STATEMENT_LINES_MAX)
        account = present(ledger_store.get_account(connection, commission), "commission account")
        return CommissionStatement(
            agent=agent.login,
            currency=agent.currency,
            period_from=since.isoformat(),
            period_to=until.isoformat(),
            lines=tuple(lines),
            accrued_micros=sum(line.commission_micros for line in lines),
            withdrawn_micros=store.withdrawn(connection, commission, since=since, until=until),
            balance_micros=account.balance_micros,
        )


def _recorded(
    connection: Connection,
    principal: Principal | None,
    action: str,
    node: Node,
    requests: list[TransferRequest],
    *,
    payers: Mapping[int, str] | None = None,
    breakdown: str | None = None,
) -> Applied:
    """Record and audit the batch; refused for funds, the refusal names the payer and the numbers."""
    applied = execute_paid(connection, requests, now=utc_now(), payers=payers or {}, breakdown=breakdown)
    return audit_transfers(connection, principal, action, node, applied)


def deposit_breakdown(
    amount_micros: int,
    terms: AgentTerms,
    currency: str,
    *,
    count: int = 1,
    account_fees: bool = False,
    unit: str = "accounts",
) -> str | None:
    """What deposits cost their agent, part by part, at the currency's precision: '24.10 + fee 0.50', or for
    a batch '10 accounts x (5.00 + fee 0.50 + account fee 1.00)'; None when one amount is all there is."""
    parts = []
    if amount_micros:
        parts.append(str(rounded(amount_micros, currency)))
        if terms.topup_fee_micros:
            parts.append(f"fee {rounded(terms.topup_fee_micros, currency)}")
    if account_fees and terms.account_fee_micros:
        parts.append(f"account fee {rounded(terms.account_fee_micros, currency)}")
    if count == 1:
        return " + ".join(parts) if len(parts) > 1 else None
    return f"{count} {unit} x ({' + '.join(parts)})" if parts else None
