"""``tollway agent``, ``tollway profile``, ``tollway accounts`` and the money commands that go with them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from tollway.agents import batch as batches
from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CustomerProfile, commission_ppm_of
from tollway.balances import service as balances
from tollway.cli.common import (
    Amount,
    Cell,
    FormatOption,
    Listing,
    amount,
    database,
    err,
    fail,
    one_line_errors,
    out,
    print_listing,
    progress_bar,
)
from tollway.clock import utc_now
from tollway.money import format_amount, to_decimal

agent_app = typer.Typer(help="Agents: terms, deposits, commission.", no_args_is_help=True)
profile_app = typer.Typer(help="Customer profiles: templates for new client accounts.", no_args_is_help=True)
accounts_app = typer.Typer(help="Client accounts made in batches.", no_args_is_help=True)
money_app = typer.Typer(help="Payments, refunds and reversals.", no_args_is_help=True)

IdOption = Annotated[str, typer.Option("--id", help="Idempotency key: a retry with the same id changes nothing.")]


@agent_app.command("terms")
@one_line_errors
def agent_terms(
    login: str,
    commission: Annotated[str, typer.Option(help="Percentage of its clients' deposits, e.g. 10 or 12.5.")] = "0",
    topup_fee: Annotated[str, typer.Option(help="Fee per deposit, e.g. 0.50.")] = "0",
    account_fee: Annotated[str, typer.Option(help="Fee per new account, e.g. 1.00.")] = "0",
    profiles: Annotated[str | None, typer.Option(help="Comma-separated profiles of its reseller it may use.")] = None,
) -> None:
    """Set an agent's commission, its fees and the profiles it may create accounts from."""
    terms = AgentTerms(commission_ppm_of(commission), amount(topup_fee), amount(account_fee))
    names = None if profiles is None else [p.strip() for p in profiles.split(",") if p.strip()]
    saved, allowed = agents.set_terms(database(), agent_login=login, terms=terms, profiles=names)
    out.print(
        f"{login}: commission {saved.commission_percent} %, top-up fee {to_decimal(saved.topup_fee_micros)}, "
        f"account fee {to_decimal(saved.account_fee_micros)}, profiles {', '.join(allowed) or '(none)'}"
    )


@agent_app.command("deposit")
@one_line_errors
def agent_deposit(
    agent: str,
    client: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT")],
    transfer_id: IdOption,
) -> None:
    """Move money from an agent's wallet to one of its clients (the agent pays its fee, earns its commission)."""
    db = database()
    result = agents.deposit(
        db, client_login=client, amount_micros=amount(value), transfer_id=transfer_id, agent_login=agent
    )
    out.print(
        "already recorded: nothing changed" if result.already_existed else f"{agent} deposited {value} to {client}"
    )
    for t in result.transfers:
        out.print(f"  {t.id}  {t.kind}  {format_amount(t.amount_micros, t.currency)}")


@agent_app.command("withdraw")
@one_line_errors
def agent_withdraw(
    agent: str,
    transfer_id: IdOption,
    value: Annotated[str | None, typer.Argument(metavar="[AMOUNT]", help="Default: all of it.")] = None,
) -> None:
    """Move an agent's accrued commission to its wallet."""
    result = agents.withdraw_commission(
        database(), agent_login=agent, transfer_id=transfer_id, amount_micros=None if value is None else amount(value)
    )
    moved = result.transfers[0]
    out.print(f"moved {format_amount(moved.amount_micros, moved.currency)} of commission to {agent}'s wallet")


@agent_app.command("statement")
@one_line_errors
def agent_statement(
    agent: str,
    since: Annotated[datetime | None, typer.Option(help="Start (UTC); default: 30 days ago.")] = None,
    until: Annotated[datetime | None, typer.Option(help="End, excluded (UTC); default: now.")] = None,
    output_format: FormatOption = None,
) -> None:
    """The commissions an agent earned in a period, deposit by deposit."""
    end = until or utc_now()
    start = since or end - timedelta(days=30)
    statement = agents.commission_statement(database(), agent_login=agent, since=start, until=end)
    money = statement.currency
    rows: list[list[Cell]] = [
        [line.at[:19], line.client, Amount(line.deposit_micros, money), Amount(line.commission_micros, money)]
        for line in statement.lines
    ]
    totals = (
        f"deposits {format_amount(statement.deposits_micros, money)}, "
        f"accrued {format_amount(statement.accrued_micros, money)}, "
        f"withdrawn {format_amount(statement.withdrawn_micros, money)}, "
        f"commission account now {format_amount(statement.balance_micros, money)}"
    )
    title = f"{agent}: commission {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC"
    print_listing(
        Listing(("when", "client", "deposit", "commission"), rows, title=title, notes=[totals]), output_format
    )


@profile_app.command("put")
@one_line_errors
def profile_put(
    owner: str,
    name: str,
    client_type: Annotated[str, typer.Option(help="retail, pbx, wholesale, calling_card or callshop.")] = "retail",
    login_prefix: Annotated[str, typer.Option(help="New logins start with it, then 9 random digits.")] = "",
    tariff: Annotated[str | None, typer.Option(help="The owner's tariff they pay at, e.g. city:retail.")] = None,
    language: Annotated[str | None, typer.Option()] = None,
    time_zone: Annotated[str | None, typer.Option()] = None,
    credit_limit: Annotated[str, typer.Option()] = "0",
    concurrent_calls_limit: Annotated[int | None, typer.Option(min=0)] = None,
    max_call_seconds: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Create or change a customer profile of a reseller (or the provider)."""
    profile = CustomerProfile(
        name=name,
        client_type=client_type,
        login_prefix=login_prefix,
        tariff=tariff,
        language=language,
        time_zone=time_zone,
        credit_limit_micros=amount(credit_limit),
        concurrent_calls_limit=concurrent_calls_limit,
        max_call_seconds=max_call_seconds,
    )
    agents.put_profile(database(), owner_login=owner, profile=profile)
    out.print(f"profile {name} of {owner} saved")


@accounts_app.command("batch")
@one_line_errors
def accounts_batch(
    owner: str,
    profile: Annotated[str, typer.Option(help="The owner's profile to create them from.")],
    count: Annotated[int, typer.Option(min=1, help="How many accounts.")],
    batch_id: Annotated[str, typer.Option("--id", help="Idempotency key of the batch.")],
    output: Annotated[Path, typer.Option("--out", help="Where the CSV of logins and passwords goes (new file).")],
    balance: Annotated[str, typer.Option(help="Initial balance of each, e.g. 5.00.")] = "0",
    agent: Annotated[str | None, typer.Option(help="The agent whose clients they are, and who pays.")] = None,
) -> None:
    """Create client accounts from a profile in one transaction; their passwords are written once, to --out."""
    if output.exists():
        raise fail(f"{output} exists: the passwords are written to a new file only")
    with progress_bar() as progress:
        task = progress.add_task(f"creating {count} accounts", total=batches.progress_total(count))
        made = batches.create_batch(
            database(),
            owner_login=owner,
            profile_name=profile,
            count=count,
            batch_id=batch_id,
            initial_balance_micros=amount(balance),
            agent_login=agent,
            progress=lambda steps: progress.advance(task, steps),
        )
    output.touch(mode=0o600)  # passwords: readable by the operator only
    output.write_text(batches.to_csv(made))
    err.print(f"{len(made.accounts)} accounts created below {owner}; logins and passwords in {output}")


@money_app.command("payment")
@one_line_errors
def money_payment(
    login: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT")],
    transfer_id: IdOption,
    reference: Annotated[str | None, typer.Option(help="e.g. the bank transfer's reference.")] = None,
) -> None:
    """Record a payment a node made to its owner (its agent, if any, earns its commission)."""
    result = agents.record_payment(
        database(), login=login, amount_micros=amount(value), transfer_id=transfer_id, reference=reference
    )
    out.print("already recorded: nothing changed" if result.already_existed else f"payment of {value} recorded")


@money_app.command("refund")
@one_line_errors
def money_refund(
    login: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT")],
    reason: Annotated[str, typer.Option()],
    transfer_id: IdOption,
) -> None:
    """Give money back to a node outside Tollway: its wallet is debited."""
    result = balances.refund(
        database(), login=login, amount_micros=amount(value), reason=reason, transfer_id=transfer_id
    )
    out.print("already recorded: nothing changed" if result.already_existed else f"refunded {value} to {login}")


@money_app.command("reverse")
@one_line_errors
def money_reverse(
    login: str,
    transfer_id: Annotated[str, typer.Argument(help="The transfer of the node's wallet to reverse.")],
    reason: Annotated[str, typer.Option()],
) -> None:
    """Reverse a movement (with its fee and commission) by new transfers the other way."""
    result = balances.reverse(database(), login=login, transfer_id=transfer_id, reason=reason)
    for t in result.transfers:
        out.print(f"  {t.id}  {t.kind}  {format_amount(t.amount_micros, t.currency)}")
