"""``tollway``: set up, run and operate Tollway from a terminal.

Every command ends with one clear line on error and a non-zero exit: 1 for a refusal (the
request was understood and refused), 2 for bad usage or a database that is not ready.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tollway import __version__, metrics
from tollway.access import service as access
from tollway.access.model import Action, Role
from tollway.agents import service as agents
from tollway.balances import service as balances
from tollway.balances import statements
from tollway.cli import agents as agents_cli
from tollway.cli import calls as calls_cli
from tollway.cli import organizations as organizations_cli
from tollway.cli import radius as radius_cli
from tollway.cli import rating as rating_cli
from tollway.cli import welcome
from tollway.cli.brands import brand_app
from tollway.cli.cards import card_app
from tollway.cli.common import (
    Amount,
    Cell,
    FormatOption,
    Listing,
    OutputFormat,
    amount,
    database,
    err,
    fail,
    one_line_errors,
    out,
    print_listing,
    print_whole,
    progress_bar,
)
from tollway.cli.notices import notices_app
from tollway.cli.shop import shop_app
from tollway.config import Settings
from tollway.demo import DEMO_NODES, load_demo
from tollway.demo_logins import load_logins
from tollway.errors import refuse_nul
from tollway.ledger import service as ledger
from tollway.ledger.exchange import list_rates
from tollway.money import format_amount
from tollway.payments.reconcile import reconcile
from tollway.store import migrate
from tollway.tree import model
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, NodeKind, Status

app = typer.Typer(help="Tollway: VoIP billing for providers, resellers, agents and clients.", no_args_is_help=True)
node_app = typer.Typer(help="Nodes of the ownership tree.", no_args_is_help=True)
balance_app = typer.Typer(help="Balances and money movements.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger's invariants and housekeeping.", no_args_is_help=True)
rates_app = typer.Typer(help="Exchange rates between currencies.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(balance_app, name="balance")
app.add_typer(ledger_app, name="ledger")
app.add_typer(rates_app, name="rates")
user_app = typer.Typer(help="Logins of people: a user belongs to a node, with a role.", no_args_is_help=True)
key_app = typer.Typer(help="API keys for machines: shown once, stored hashed.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="api-key")
app.add_typer(rating_cli.tariff_app, name="tariff")
app.add_typer(rating_cli.plan_app, name="plan")
app.command("rate")(rating_cli.rate)
app.add_typer(calls_cli.switch_app, name="switch")
app.add_typer(calls_cli.calls_app, name="calls")
app.add_typer(agents_cli.agent_app, name="agent")
app.add_typer(agents_cli.profile_app, name="profile")
app.add_typer(agents_cli.accounts_app, name="accounts")
app.add_typer(card_app, name="card")
app.add_typer(agents_cli.money_app, name="money")
app.add_typer(notices_app, name="notices")
app.add_typer(organizations_cli.organization_app, name="organization")
app.add_typer(organizations_cli.line_app, name="line")
app.add_typer(shop_app, name="shop")
app.command("radius")(radius_cli.radius_command)
app.add_typer(brand_app, name="brand")


@app.command()
@one_line_errors
def version() -> None:
    """Print Tollway's version."""
    out.print(__version__)


@app.command()
@one_line_errors
def init() -> None:
    """Create the database, or migrate it to the current schema."""
    db = database()
    before = migrate.current_revision(db)
    migrate.upgrade(db)
    after = migrate.current_revision(db)
    out.print(f"database {db.engine.url.render_as_string(hide_password=True)}: schema {before or 'none'} → {after}")


@app.command()
@one_line_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (health on /health, readiness on /ready, docs on /api/docs)."""
    import uvicorn

    settings = Settings()
    db = database()
    if not migrate.is_up_to_date(db):
        raise fail("the database schema is not current: run `tollway init` first", 2)
    welcome.print_serve_banner(host or settings.http_host, port or settings.http_port)
    if workers > 1 and not os.environ.get(metrics.MULTIPROCESS_DIRECTORY):  # the workers' counters add up
        os.environ[metrics.MULTIPROCESS_DIRECTORY] = tempfile.mkdtemp(prefix="tollway-metrics-")
    uvicorn.run(
        "tollway.http.main:app_factory",
        factory=True,
        host=host or settings.http_host,
        port=port or settings.http_port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        timeout_worker_healthcheck=WORKER_START_SECONDS_MAX,
    )


# How long a worker process may take to start (import, connect) before uvicorn gives up on it and starts
# another: its default of 5 s is shorter than an import on a busy machine, and workers then die in a loop.
WORKER_START_SECONDS_MAX = 60


@app.command()
@one_line_errors
def demo(
    dev: Annotated[
        bool, typer.Option("--dev", help="Load it into PostgreSQL too: this database is for development.")
    ] = False,
) -> None:
    """Load demo data (a provider, resellers on every level, agents, clients, balances), a login per role with
    its development-only password, and a switch with its API key."""
    db = database()
    if db.engine.dialect.name == "postgresql" and not dev:
        raise fail(
            "the demo's logins have published passwords: load it into PostgreSQL only for development, "
            "with `tollway demo --dev`",
            2,
        )
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("loading demo", total=len(DEMO_NODES))
        changed = load_demo(db, progress=lambda _login: progress.advance(task))
    report = ledger.check(db)
    if not report.ok:
        raise fail("the ledger check failed after the demo: run `tollway ledger check`")
    out.print("demo data loaded" if changed else "demo data already loaded")
    welcome.print_demo_access(load_logins(db))


@ledger_app.command("check")
@one_line_errors
def ledger_check() -> None:
    """Verify the ledger's invariants; exit 1 if any is broken."""
    report = ledger.check(database())
    for problem in report.problems:
        err.print(f"problem: {problem}", markup=False, highlight=False, soft_wrap=True)
    summary = f"{report.accounts} accounts, {report.transfers} transfers, {report.currencies} currencies"
    if not report.ok:
        raise fail(f"ledger check failed: {len(report.problems)} problems ({summary})")
    out.print(f"ledger ok: {summary}")
    shop = reconcile(database())  # the shop's payments against their credits
    for problem in shop.problems:
        err.print(f"problem: {problem}", markup=False, highlight=False, soft_wrap=True)
    if not shop.ok:
        raise fail(f"shop check failed: {len(shop.problems)} problems ({shop.payments} payments)")
    out.print(f"shop ok: {shop.payments} payments, {shop.credits} credited, each once, none invented")
    out.print(f"postings not yet folded: {report.unfolded} (counted in every total; `tollway ledger settle`)")


@ledger_app.command("settle")
@one_line_errors
def ledger_settle() -> None:
    """Fold every posting not yet folded into its account (what each `tollway serve` does a little at a time)."""
    db = database()
    backlog = ledger.unfolded(db)
    with progress_bar() as progress:
        task = progress.add_task("folding postings", total=backlog)
        folded = ledger.settle(db, progress=lambda count: progress.advance(task, count))
    out.print(f"folded {folded} postings into their accounts; {ledger.unfolded(db)} left")


@ledger_app.command("expire")
@one_line_errors
def ledger_expire() -> None:
    """Void every reservation (pending transfer) past its timeout."""
    out.print(f"voided {ledger.void_expired(database())} expired reservations")


def _position(kind: NodeKind, level: int | None, client_type: ClientType | None) -> model.Position:
    if kind is NodeKind.RESELLER and level is None:
        raise fail("a reseller needs --level 1, 2 or 3", 2)
    if kind is NodeKind.CLIENT and client_type is None:
        raise fail("a client needs --type (retail, pbx, wholesale, calling_card, callshop)", 2)
    return model.Position(kind, level=level, client_type=client_type)


@node_app.command("create")
@one_line_errors
def node_create(
    owner: Annotated[str, typer.Argument(help="Login of the owner.")],
    login: Annotated[str, typer.Argument(help="Login of the new node.")],
    kind: Annotated[NodeKind, typer.Option(help="reseller, agent or client.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    level: Annotated[int | None, typer.Option(min=1, max=3, help="Reseller level.")] = None,
    client_type: Annotated[ClientType | None, typer.Option("--type", help="Client type.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code (default: the owner's).")] = None,
    language: Annotated[str | None, typer.Option(help="Language (default: the owner's).")] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA time zone (default: the owner's).")] = None,
    credit_limit: Annotated[str, typer.Option(help="Postpaid credit line; 0 = prepaid.")] = "0",
    agent: Annotated[str | None, typer.Option(help="Agent of the owner that manages this client.")] = None,
) -> None:
    """Create a reseller, agent or client below OWNER."""
    if kind is NodeKind.PROVIDER:
        raise fail("the provider is created by `tollway demo` or `tollway node create-provider`", 2)
    node = agents.create_node(
        database(),
        owner_login=owner,
        new=tree.NewNode(
            position=_position(kind, level, client_type),
            login=login,
            name=name,
            currency=currency,
            language=language,
            time_zone=time_zone,
            credit_limit_micros=amount(credit_limit),
            managed_by_agent_login=agent,
        ),
    )
    out.print(f"created {node.position} {node.login} (id {node.id}) under {owner}")


@node_app.command("create-provider")
@one_line_errors
def node_create_provider(
    login: str,
    name: Annotated[str, typer.Option()],
    currency: Annotated[str, typer.Option()] = "USD",
    language: Annotated[str, typer.Option()] = "en",
    time_zone: Annotated[str, typer.Option()] = "UTC",
) -> None:
    """Create the provider: the root of the tree (once)."""
    node = tree.create_provider(
        database(), login=login, name=name, currency=currency, language=language, time_zone=time_zone
    )
    out.print(f"created provider {node.login} (id {node.id})")


@node_app.command("show")
@one_line_errors
def node_show(login: str) -> None:
    """Show a node, its place in the tree and its balance."""
    db = database()
    with db.reading() as connection:
        node = tree.require_node(connection, login)
        ancestors = tree_store.chain(connection, node)
        balance = balances.balance_of(connection, node)
    status = model.effective_status([n.status for n in ancestors])
    table = Table(show_header=False, box=None)
    rows = [
        ("login", node.login),
        ("name", node.name),
        ("position", str(node.position)),
        ("chain", " → ".join(n.login for n in ancestors)),
        ("status", f"{node.status} (effective: {status})"),
        ("currency", node.currency),
        ("language", node.language),
        ("time zone", node.time_zone),
        ("email", node.email or "none"),
        ("phone", node.phone or "none"),
        ("balance", format_amount(balance.balance_micros, balance.currency)),
        ("credit limit", format_amount(balance.credit_limit_micros, balance.currency)),
        ("reserved", format_amount(balance.pending_micros, balance.currency)),
        ("available", "unlimited" if balance.unlimited else format_amount(balance.available_micros, balance.currency)),
    ]
    if node.position.kind is NodeKind.RESELLER:
        rows.append(("may sell", ", ".join(sorted(node.grants.client_types)) or "nothing"))
        rows.append(("features", _features(node.grants.features)))
        rows.append(("clients limit", str(node.clients_limit) if node.clients_limit is not None else "none"))
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


def _features(features: frozenset[model.Feature]) -> str:
    """What a reseller may sell, the coming features marked as such."""
    shown = [f"{f} (coming)" if f in model.FEATURES_COMING else str(f) for f in sorted(features)]
    return ", ".join(shown) or "none"


@node_app.command("tree")
@one_line_errors
def node_tree(
    login: Annotated[str | None, typer.Argument(help="Root of the view (default: the provider).")] = None,
    output_format: Annotated[
        OutputFormat | None,
        typer.Option("--format", case_sensitive=False, help="table (the drawn tree, default), plain, csv or json."),
    ] = None,
) -> None:
    """Draw the tree below a node, with balances (or list its nodes, one a line)."""
    db = database()
    with db.reading() as connection:
        root = tree.require_node(connection, login) if login else tree_store.find_provider(connection)
        if root is None:
            raise fail("there is no provider yet: run `tollway demo` or `tollway node create-provider`")
        nodes = tree_store.subtree(connection, root)
        money = {n.id: balances.balance_of(connection, n) for n in nodes}
    truncated = (
        [f"(first {tree_store.LIST_PAGE_SIZE_MAX} nodes shown)"] if len(nodes) == tree_store.LIST_PAGE_SIZE_MAX else []
    )
    if output_format not in (None, OutputFormat.TABLE):
        logins = {n.id: n.login for n in nodes}
        rows: list[list[Cell]] = [
            [
                n.login,
                logins.get(n.parent_id or 0, ""),
                str(n.position),
                str(n.status),
                None if money[n.id].unlimited else Amount(money[n.id].balance_micros, money[n.id].currency),
            ]
            for n in nodes
        ]
        print_listing(
            Listing(("login", "owner", "position", "status", "balance"), rows, notes=truncated), output_format
        )
        return
    labels = {n.id: _label(n, money[n.id]) for n in nodes}
    branches = {root.id: Tree(labels[root.id])}
    for node in nodes[1:] if nodes and nodes[0].id == root.id else nodes:
        parent = branches.get(node.parent_id or 0)
        if parent is not None:
            branches[node.id] = parent.add(labels[node.id])
    print_whole(branches[root.id])
    for note in truncated:
        out.print(note)


def _label(node: model.Node, balance: balances.Balance) -> Text:
    money = "unlimited" if balance.unlimited else format_amount(balance.balance_micros, balance.currency)
    status = "" if node.status is Status.ACTIVE else f" [{node.status}]"
    return Text(f"{node.login} ({node.position}) {money}{status}")


def _set_status(login: str, status: Status) -> None:
    node = tree.set_status(database(), login=login, status=status)
    out.print(f"{node.login} is now {node.status}")


@node_app.command("suspend")
@one_line_errors
def node_suspend(login: str) -> None:
    """Suspend a node: it and everything below it are blocked."""
    _set_status(login, Status.SUSPENDED)


@node_app.command("activate")
@one_line_errors
def node_activate(login: str) -> None:
    """Reactivate a suspended node."""
    _set_status(login, Status.ACTIVE)


@node_app.command("close")
@one_line_errors
def node_close(login: str) -> None:
    """Close a node for good (its children closed and its balance zero first)."""
    _set_status(login, Status.CLOSED)


@balance_app.command("show")
@one_line_errors
def balance_show(login: str) -> None:
    """Show a node's balance, credit limit, reservations and available amount."""
    b = balances.get_balance(database(), login=login)
    available = "unlimited" if b.unlimited else format_amount(b.available_micros, b.currency)
    out.print(
        f"{b.login}: balance {format_amount(b.balance_micros, b.currency)}, credit limit "
        f"{format_amount(b.credit_limit_micros, b.currency)}, reserved {format_amount(b.pending_micros, b.currency)}, "
        f"available {available}"
    )


@balance_app.command("margin")
@one_line_errors
def balance_margin(
    login: Annotated[str, typer.Argument(help="A reseller, or the provider.")],
    since: Annotated[datetime, typer.Option(help="From (ISO 8601, UTC if no zone).")],
    until: Annotated[datetime, typer.Option(help="To, excluded (ISO 8601, UTC if no zone).")],
    output_format: FormatOption = None,
) -> None:
    """A seller's revenue, cost and margin on calls for a period, in its currency, from posted charges."""
    found = statements.call_margin(database(), None, login=login, since=_utc(since), until=_utc(until))
    money = found.currency
    rows: list[list[Cell]] = [
        ["revenue", found.calls_sold, Amount(found.revenue_micros, money)],
        ["cost", found.calls_bought, Amount(found.cost_micros, money)],
        ["margin", None, Amount(found.margin_micros, money)],
    ]
    notes = [
        f"also revenue in {currency}: {format_amount(micros, currency)} (not in the margin)"
        for currency, micros in found.revenue_other_micros.items()
    ]
    title = f"{found.login}, calls from {found.since.isoformat()} to {found.until.isoformat()}"
    print_listing(Listing(("", "calls", "amount"), rows, title=title, notes=notes), output_format)


@balance_app.command("statement")
@one_line_errors
def balance_statement(
    login: str,
    month: Annotated[str, typer.Option(help="YYYY-MM; default: this month.")] = "",
    output_format: FormatOption = None,
) -> None:
    """A monthly statement: opening balance, every movement but calls, the calls as one total (each call once,
    at its cost: a reservation moves no balance), closing balance."""
    chosen = _month(month)
    found = statements.monthly_statement(database(), None, login=login, month=chosen)
    money = found.currency
    rows: list[list[Cell]] = [["", "opening balance", Amount(found.opening_micros, money)]]
    rows += [
        [m.at.isoformat(), f"{m.kind} {m.reference or m.transfer_id}", Amount(m.amount_micros, money)]
        for m in found.movements
    ]
    rows.append(["", f"calls ({found.calls_count})", Amount(found.calls_micros, money)])
    rows.append(["", "closing balance", Amount(found.closing_micros, money)])
    notes = [] if found.complete else ["more movements than a statement shows: list them with the API"]
    title = f"{found.login}, {chosen:%Y-%m} ({found.time_zone})"
    print_listing(Listing(("at", "movement", "amount"), rows, title=title, notes=notes), output_format)


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _month(text: str) -> date:
    if not text:
        return datetime.now(UTC).date().replace(day=1)
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise fail(f"{text!r} is not a month: YYYY-MM") from None


@balance_app.command("topup")
@one_line_errors
def balance_topup(
    login: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="Amount in the node's currency, e.g. 12.50.")],
    transfer_id: Annotated[
        str, typer.Option("--id", help="Idempotency key: a retry with the same id changes nothing.")
    ],
    reference: Annotated[str | None, typer.Option(help="Payment reference.")] = None,
) -> None:
    """The owner tops up a node's wallet."""
    result = balances.topup(
        database(), login=login, amount_micros=amount(value), transfer_id=transfer_id, reference=reference
    )
    out.print("already recorded: nothing changed" if result.already_existed else f"topped up {login} by {value}")
    balance_show(login)


@balance_app.command("adjust")
@one_line_errors
def balance_adjust(
    login: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="Signed amount, e.g. -3.20.")],
    reason: Annotated[str, typer.Option(help="Why: recorded on the transfer.")],
    transfer_id: Annotated[str, typer.Option("--id", help="Idempotency key.")],
) -> None:
    """Correct a node's balance by a signed amount, with a reason (put `--` before a negative amount)."""
    result = balances.adjust(
        database(), login=login, amount_micros=amount(value), reason=reason, transfer_id=transfer_id
    )
    out.print("already recorded: nothing changed" if result.already_existed else f"adjusted {login} by {value}")
    balance_show(login)


@balance_app.command("credit-limit")
@one_line_errors
def balance_credit_limit(login: str, value: Annotated[str, typer.Argument(metavar="AMOUNT")]) -> None:
    """Set a node's credit limit (0 = prepaid)."""
    balances.set_credit_limit(database(), login=login, credit_limit_micros=amount(value))
    balance_show(login)


@balance_app.command("move")
@one_line_errors
def balance_move(
    from_login: str,
    to_login: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="In FROM's currency.")],
    transfer_id: Annotated[str, typer.Option("--id", help="Idempotency key.")],
) -> None:
    """Move money from one wallet to another, converting at the current rate if currencies differ."""
    result = balances.move_between_wallets(
        database(), from_login=from_login, to_login=to_login, amount_micros=amount(value), transfer_id=transfer_id
    )
    out.print(
        "already recorded: nothing changed"
        if result.already_existed
        else f"moved {value} from {from_login} to {to_login}"
    )


@rates_app.command("set")
@one_line_errors
def rates_set(base: str, quote: str, rate: str) -> None:
    """Set the rate: one BASE buys RATE of QUOTE, from now on."""
    value = balances.set_exchange_rate(database(), base_currency=base, quote_currency=quote, rate=rate)
    out.print(
        f"1 {value.base_currency} = {value.rate} {value.quote_currency} from {value.valid_from:%Y-%m-%d %H:%M:%S} UTC"
    )


@rates_app.command("list")
@one_line_errors
def rates_list(output_format: FormatOption = None) -> None:
    """List exchange rates, newest first per pair."""
    with database().reading() as connection:
        rates = list_rates(connection)
    rows: list[list[Cell]] = [
        [r.base_currency, r.quote_currency, str(r.rate), f"{r.valid_from:%Y-%m-%d %H:%M:%S}"] for r in rates
    ]
    print_listing(Listing(("base", "quote", "rate", "valid from (UTC)"), rows), output_format)


@user_app.command("create")
@one_line_errors
def user_create(
    node: Annotated[str, typer.Argument(help="Login of the node the user belongs to.")],
    login: Annotated[str, typer.Argument(help="The user's own login.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Give a node a login (the password is asked for, or read from stdin: never an argument)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    refuse_nul("the password", password)  # argv cannot carry a NUL, but stdin and a terminal can
    user = access.create_user(database(), None, node_login=node, login=login, password=password, role=role)
    out.print(f"created {user.role} login {user.login} for {node}")


@key_app.command("create")
@one_line_errors
def api_key_create(
    node: Annotated[str, typer.Argument(help="Login of the node the key acts for.")],
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the switch's name.")],
    role: Annotated[Role, typer.Option(help="The role the key acts with.")],
    action: Annotated[list[Action] | None, typer.Option(help="Narrow to these actions (repeatable).")] = None,
) -> None:
    """Make an API key; it is printed once and never again."""
    key, plaintext = access.create_api_key(database(), None, node_login=node, name=name, role=role, actions=action)
    err.print(f"API key {key.key_id} for {node} ({key.role}); store it now, it is not shown again:")
    out.print(plaintext, markup=False, highlight=False, soft_wrap=True)


@key_app.command("revoke")
@one_line_errors
def api_key_revoke(key_id: str) -> None:
    """Revoke an API key at once, in every process."""
    access.revoke_api_key(database(), None, key_id=key_id)
    out.print(f"revoked API key {key_id}")


@node_app.command("edit")
@one_line_errors
def node_edit(
    login: str,
    name: Annotated[str | None, typer.Option(help="The node's name.")] = None,
    language: Annotated[str | None, typer.Option(help="A language code such as en or pt_BR.")] = None,
    time_zone: Annotated[str | None, typer.Option(help="An IANA time zone such as Europe/Paris.")] = None,
    email: Annotated[str | None, typer.Option(help="Contact address (its notices go there).")] = None,
    phone: Annotated[str | None, typer.Option(help="Contact number, international: +12125550100.")] = None,
    clear_email: Annotated[bool, typer.Option("--clear-email", help="Remove the contact address.")] = False,
    clear_phone: Annotated[bool, typer.Option("--clear-phone", help="Remove the contact number.")] = False,
) -> None:
    """Change a node's name, language, time zone, contact email or phone (only the options given)."""
    if (clear_email and email) or (clear_phone and phone):
        raise fail("give an address or clear it, not both")
    given = {"name": name, "language": language, "time_zone": time_zone, "email": email, "phone": phone}
    changes: dict[str, str | None] = {field: value for field, value in given.items() if value is not None}
    changes |= {"email": None} if clear_email else {}
    changes |= {"phone": None} if clear_phone else {}
    if not changes:
        raise fail("nothing to change: give --name, --language, --time-zone, --email or --phone")
    node = tree.edit_node(database(), login=login, **changes)  # type: ignore[arg-type]
    out.print(f"{node.login}: " + ", ".join(f"{field} {getattr(node, field) or 'none'}" for field in changes))


@user_app.command("password")
@one_line_errors
def user_password(
    login: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the current and the new password from stdin, a line each.")
    ] = False,
) -> None:
    """Change a user's password, giving the current one; the user's sessions are closed."""
    if password_stdin:
        current, new = sys.stdin.readline().rstrip("\n"), sys.stdin.readline().rstrip("\n")
    else:
        current = typer.prompt("current password", hide_input=True)
        new = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    refuse_nul("the password", current + new)
    closed = access.change_password(database(), None, login=login, current_password=current, new_password=new)
    out.print(f"changed the password of {login}; {closed} sessions closed")


@user_app.command("reset-password")
@one_line_errors
def user_reset_password(login: str) -> None:
    """Give a user a new, generated password, printed this once; its sessions are closed."""
    password = access.reset_password(database(), None, login=login)
    err.print(f"new password of {login}; give it to the user now, it is not shown again:")
    out.print(password, markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    app()
