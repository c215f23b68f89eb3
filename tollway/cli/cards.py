"""``tollway card``: batches of calling cards, their sale (activation), blocking, closing and recharges."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from tollway.cards import numbers
from tollway.cards import service as cards
from tollway.cards.model import BatchTerms
from tollway.cli.common import amount, database, err, fail, one_line_errors, out, progress_bar
from tollway.config import Settings
from tollway.money import format_amount
from tollway.sealing import Sealer

card_app = typer.Typer(help="Calling cards: batches, sale, blocking, recharges.", no_args_is_help=True)

FirstArgument = Annotated[str | None, typer.Argument(metavar="[FIRST]", help="A serial, or the first of a range.")]
LastOption = Annotated[str | None, typer.Option("--last", help="The last serial of the range.")]
BatchOption = Annotated[str | None, typer.Option("--batch", help="Every card of this batch.")]


@card_app.command("batch")
@one_line_errors
def card_batch(
    owner: str,
    count: Annotated[int, typer.Option(min=1, help="How many cards.")],
    face_value: Annotated[str, typer.Option(help="Each card's value in the owner's currency, e.g. 5.00.")],
    batch_id: Annotated[str, typer.Option("--id", help="The batch's name and idempotency key.")],
    output: Annotated[Path, typer.Option("--out", help="Where the CSV of serials and PINs goes (new file).")],
    tariff: Annotated[str | None, typer.Option(help="The owner's tariff the cards pay at.")] = None,
    plan: Annotated[str | None, typer.Option(help="The owner's plan each card is given when activated.")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry date of every card (YYYY-MM-DD).")] = None,
    expiry_days: Annotated[int | None, typer.Option(help="Or: days a card lasts after its first use.")] = None,
    pin_length: Annotated[int, typer.Option(help="Digits of each PIN (10 to 16).")] = 12,
    serial_prefix: Annotated[str, typer.Option(help="Letters or digits before each serial's number.")] = "",
) -> None:
    """Make a batch of new cards; their serials and PINs are written once, to --out (mode 0600)."""
    if output.exists():
        raise fail(f"{output} exists: the PINs are written to a new file only")
    expires_at = None if expires is None else datetime.combine(date.fromisoformat(expires), datetime.min.time(), UTC)
    terms = BatchTerms(
        name=batch_id,
        count=count,
        face_value_micros=amount(face_value),
        tariff=tariff,
        plan=plan,
        expires_at=expires_at,
        expiry_days=expiry_days,
        pin_length=pin_length,
        serial_prefix=serial_prefix,
    )
    key = cards.installation_pin_key(database(), Sealer.from_settings(Settings()))
    with progress_bar() as progress:
        task = progress.add_task(f"making {count} cards", total=cards.progress_total(count))
        made = cards.create_batch(
            database(),
            owner_login=owner,
            terms=terms,
            pin_key=key,
            progress=lambda steps: progress.advance(task, steps),
        )
    output.touch(mode=0o600)  # PINs: readable by the operator only
    output.write_text(cards.to_csv(made))
    first, last = made.cards[0].serial, made.cards[-1].serial
    err.print(f"{len(made.cards)} cards of {owner} made, {first} to {last}; serials and PINs in {output}")


@card_app.command("rekey")
@one_line_errors
def card_rekey() -> None:
    """Re-seal the PIN digest key with the current secret_key: after a rotation (the new key as secret_key,
    the old one still in secret_keys_retired), before the old key is dropped. The PINs' digests stay."""
    done = cards.rekey_pin_key(database(), Sealer.from_settings(Settings()))
    err.print("the PIN digest key is " + ("resealed with the current secret key" if done == "resealed" else "kept"))


def _selection(first: str | None, last: str | None, batch: str | None) -> cards.Selection:
    return cards.Selection(first=first, last=last, batch=batch)


@card_app.command("activate")
@one_line_errors
def card_activate(owner: str, first: FirstArgument = None, last: LastOption = None, batch: BatchOption = None) -> None:
    """Sell new cards: each one's face value moves from the owner into it."""
    done = cards.activate(database(), owner_login=owner, selection=_selection(first, last, batch))
    out.print(f"{done} cards activated")


@card_app.command("block")
@one_line_errors
def card_block(owner: str, first: FirstArgument = None, last: LastOption = None, batch: BatchOption = None) -> None:
    """Block cards: none of them authorizes a call until unblocked."""
    done = cards.block(database(), owner_login=owner, selection=_selection(first, last, batch))
    out.print(f"{done} cards blocked")


@card_app.command("unblock")
@one_line_errors
def card_unblock(owner: str, first: FirstArgument = None, last: LastOption = None, batch: BatchOption = None) -> None:
    done = cards.unblock(database(), owner_login=owner, selection=_selection(first, last, batch))
    out.print(f"{done} cards unblocked")


@card_app.command("close")
@one_line_errors
def card_close(owner: str, first: FirstArgument = None, last: LastOption = None, batch: BatchOption = None) -> None:
    """Close cards for ever."""
    done = cards.close(database(), owner_login=owner, selection=_selection(first, last, batch))
    out.print(f"{done} cards closed")


@card_app.command("recharge")
@one_line_errors
def card_recharge(
    owner: str,
    serial: str,
    value: Annotated[str, typer.Argument(metavar="AMOUNT")],
    transfer_id: Annotated[str, typer.Option("--id", help="Idempotency key: a retry changes nothing.")],
) -> None:
    """Top up an active or depleted card."""
    cards.recharge(database(), owner_login=owner, serial=serial, amount_micros=amount(value), transfer_id=transfer_id)
    out.print(f"card {serial} recharged with {value}")


@card_app.command("show")
@one_line_errors
def card_show(owner: str, serial: str) -> None:
    """A card's state, balance and expiry."""
    view = cards.get_card(database(), owner_login=owner, serial=serial)
    card = view.card
    expires = card.expires_at.isoformat() if card.expires_at else "-"
    balance = format_amount(view.balance_micros, card.currency)
    out.print(f"{card.serial} ({card.batch}): {card.state}, balance {balance}, expires {expires}, account {card.login}")


@card_app.command("access-number")
@one_line_errors
def card_access_number(
    owner: str,
    number: str,
    language: Annotated[str, typer.Option(help="The prompts' language, e.g. es.")] = "en",
    exclusive: Annotated[bool, typer.Option(help="Only the cards of the owner's subtree may use it.")] = False,
) -> None:
    """Create or change an access number (a DID card holders dial) of the provider or a reseller."""
    made = numbers.put_access_number(
        database(), owner_login=owner, number=number, language=language, exclusive=exclusive
    )
    kind = "exclusive" if made.exclusive else "open to every card"
    out.print(f"access number {made.number} of {owner}: prompts in {made.language}, {kind}")


@card_app.command("caller")
@one_line_errors
def card_caller(
    owner: str,
    serial: str,
    number: str,
    remove: Annotated[bool, typer.Option("--remove", help="The number needs the PIN again.")] = False,
) -> None:
    """Let a caller number (ANI) use a card without its PIN (or, with --remove, no longer)."""
    change = cards.remove_caller if remove else cards.add_caller
    held = change(database(), owner_login=owner, serial=serial, number=number)
    out.print(f"card {serial}: {', '.join(held) or 'no caller numbers'}")
