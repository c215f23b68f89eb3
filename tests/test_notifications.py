"""Low-balance notices through the database and a real SMTP server on loopback (aiosmtpd), on SQLite and PostgreSQL.

The world:  house (provider, USD)
              ├── atlas (L2: "Atlas Voice", billing@atlas.example)
              │     ├── north (L1: "North Telecom", billing@north.example; default threshold 5 for its clients)
              │     │     ├── ana (en, USD, ana@example.com)
              │     │     ├── pepe (es, EUR, pepe@example.es)
              │     │     └── nomail (no address)
              │     └── plain (L1: no brand, no sender; default threshold 5)
              │           └── zoe (zoe@example.com): signed and sent as Atlas Voice, the nearest above her
              └── hal (hal@example.com, own threshold 5): nobody above has a brand: the configured sender
Every client starts with 20 (pepe: 20 EUR), above every threshold.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from itertools import count
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.processes import START_SECONDS_MAX, race, unexpected
from tollway.access import service as access
from tollway.access.model import Role
from tollway.balances import service as balances
from tollway.balances.service import account_id
from tollway.cli.notices import notices_app
from tollway.errors import Refusal
from tollway.http.api import notices as notices_api
from tollway.http.app import API_PREFIX, create_app
from tollway.ledger import service as ledger
from tollway.ledger.model import AccountPurpose, Phase, TransferKind, TransferRequest
from tollway.money import to_micros
from tollway.notifications import service as notices
from tollway.notifications.model import SEND_ATTEMPTS_MAX, Alert, Branding, EmailState
from tollway.notifications.service import MailSettings, NoticeChanges, NoticeReport
from tollway.notifications.smtp import SendFailed, SendFailure, SmtpMailer, SmtpSettings, compose
from tollway.notifications.store import EmailRecord
from tollway.store.database import Database
from tollway.store.schema import audit_log, emails
from tollway.tree import service as tree
from tollway.tree.model import ClientType, NodeKind, Position

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RETAIL = Position(NodeKind.CLIENT, client_type=ClientType.RETAIL)
DEFAULT_SENDER = Branding("Tollway", "billing@localhost")
_ids = count(1)


# -- a real SMTP server on loopback -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """What the server accepted. Addresses starting 'bounce' get 550 on RCPT, 'busy' get 451."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox here"
        if address.startswith("busy"):
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        wire = envelope.content.replace(b"\r\n", b"\n")  # SMTP lines end CRLF; Python's text in LF
        message = message_from_bytes(wire, policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        with self.mailbox.lock:
            return list(self.mailbox.received)

    def start(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self) -> MailSettings:
        # A real server in a thread of this process: on a machine loaded by parallel tests it has been seen to
        # take over 5 s to answer, so the tests give it the time a real relay gets (not what they test).
        return MailSettings(smtp=SmtpSettings(port=self.port, timeout_seconds=20.0), default_sender=DEFAULT_SENDER)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


# -- the world and its verbs -------------------------------------------------------------------------


def create(database: Database, owner: str, position: Position, login: str, **details: Any) -> None:
    new = tree.NewNode(position=position, login=login, name=login.title(), **details)
    tree.create_node(database, owner_login=owner, new=new)


def configure(database: Database, login: str, **changes: Any) -> None:
    notices.set_notices(database, login=login, changes=NoticeChanges(**changes))


def micros(amount: str) -> int:
    return to_micros(amount)


def topup(database: Database, login: str, amount: str) -> None:
    balances.topup(database, login=login, amount_micros=micros(amount), transfer_id=f"topup-{next(_ids)}")


def spend(database: Database, login: str, amount: str) -> None:
    """Calls that ended: posted, so the level moves."""
    balances.adjust(
        database, login=login, amount_micros=-micros(amount), reason="calls", transfer_id=f"spend-{next(_ids)}"
    )


def build_world(database: Database) -> None:
    tree.create_provider(database, login="house", name="House", currency="USD")
    create(database, "house", Position(NodeKind.RESELLER, level=2), "atlas")
    create(database, "atlas", Position(NodeKind.RESELLER, level=1), "north")
    create(database, "atlas", Position(NodeKind.RESELLER, level=1), "plain")
    create(database, "north", RETAIL, "ana")
    create(database, "north", RETAIL, "pepe", language="es", currency="EUR")
    create(database, "north", RETAIL, "nomail")
    create(database, "plain", RETAIL, "zoe")
    create(database, "house", RETAIL, "hal")
    configure(database, "atlas", brand_name="Atlas Voice", email_from="billing@atlas.example")
    configure(
        database,
        "north",
        brand_name="North Telecom",
        email_from="billing@north.example",
        default_threshold_micros=micros("5"),
    )
    configure(database, "plain", default_threshold_micros=micros("5"))
    for login, address in (("ana", "ana@example.com"), ("pepe", "pepe@example.es"), ("zoe", "zoe@example.com")):
        configure(database, login, email=address)
    configure(database, "hal", email="hal@example.com", threshold_micros=micros("5"))
    for login in ("ana", "pepe", "nomail", "zoe", "hal"):
        topup(database, login, "20")


def run(database: Database, server: SmtpServer, at: datetime = NOW) -> NoticeReport:
    return notices.run_notices(database, settings=server.settings(), now=at)


def alert(database: Database, login: str) -> Alert:
    return notices.get_notices(database, None, login=login).alert


def outbox(database: Database, login: str | None = None) -> list[EmailRecord]:
    return notices.list_emails(database, None, login=login, limit=100)


def node_id(database: Database, login: str) -> int:
    return tree.get_node(database, None, login=login).id


@pytest.fixture
def world(database: Database) -> Database:
    build_world(database)
    return database


# -- one email per crossing ------------------------------------------------------------------------------


def test_one_email_per_fall_below_the_threshold_rearmed_when_back_above(world: Database, smtp: SmtpServer) -> None:
    assert run(world, smtp) == NoticeReport()  # everyone starts above
    spend(world, "ana", "16")  # 20 -> 4, below north's default of 5
    assert run(world, smtp) == NoticeReport(queued=1, sent=1)
    [first] = smtp.received
    assert first.mail_from == "billing@north.example" and first.rcpt_tos == ["ana@example.com"]
    message = first.message
    assert message["From"] == "North Telecom <billing@north.example>"
    assert message["To"] == "ana@example.com"
    assert message["Subject"] == "North Telecom: low balance on your account ana"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert "The credit left on your account ana is $4.00, below the $5.00 at which we warn you." in body
    assert body.rstrip().endswith("North Telecom")

    spend(world, "ana", "1")  # further below, still disarmed: nothing
    assert run(world, smtp) == NoticeReport()
    assert alert(world, "ana") == Alert(armed=False, crossings=1)
    topup(world, "ana", "10")  # 13: back above re-arms, and sends nothing
    assert run(world, smtp) == NoticeReport(rearmed=1)
    assert alert(world, "ana") == Alert(armed=True, crossings=1)
    spend(world, "ana", "10")  # 3: the next fall, the next email
    assert run(world, smtp) == NoticeReport(queued=1, sent=1)
    assert len(smtp.received) == 2
    assert "$3.00" in smtp.received[1].message.get_content()
    ana = node_id(world, "ana")
    assert [(e.key, e.state, e.attempts) for e in outbox(world, "ana")] == [
        (f"low_balance:{ana}:2", EmailState.SENT, 1),
        (f"low_balance:{ana}:1", EmailState.SENT, 1),
    ]
    assert outbox(world, "ana")[1].sent_at == NOW


def test_at_the_threshold_is_not_below_it(world: Database, smtp: SmtpServer) -> None:
    spend(world, "ana", "15")  # exactly 5
    assert run(world, smtp) == NoticeReport()
    spend(world, "ana", "0.000001")
    assert run(world, smtp).queued == 1
    # At the currency's precision, the level rounded down: never read as equal to the threshold.
    assert "is $4.99, below the $5.00 at which" in smtp.received[0].message.get_content()


def test_the_owners_default_applies_and_an_own_threshold_wins(world: Database, smtp: SmtpServer) -> None:
    configure(world, "pepe", threshold_micros=micros("2"))  # below north's default of 5
    spend(world, "pepe", "16")  # 4: above her own 2
    spend(world, "ana", "16")  # 4: below the default 5
    assert run(world, smtp) == NoticeReport(queued=1, sent=1)
    assert smtp.received[0].rcpt_tos == ["ana@example.com"]
    configure(world, "pepe", threshold_micros=micros("10"))
    configure(world, "north", default_threshold_micros=micros("3"))  # ana's 4 is now above her threshold
    assert run(world, smtp) == NoticeReport(queued=1, rearmed=1, sent=1)
    assert smtp.received[1].rcpt_tos == ["pepe@example.es"]
    configure(world, "pepe", threshold_micros=None)  # back to north's default, now 3: her 4 is above it
    assert run(world, smtp) == NoticeReport(rearmed=1)


def test_a_spanish_client_reads_spanish_with_amounts_written_the_spanish_way(world: Database, smtp: SmtpServer) -> None:
    configure(world, "pepe", threshold_micros=micros("20000"))
    topup(world, "pepe", "12325.67")  # 12,345.67 EUR
    assert run(world, smtp).sent == 1
    [received] = smtp.received
    assert received.message["Subject"] == "North Telecom: saldo bajo en su cuenta pepe"
    body = received.message.get_content()
    assert body.startswith("Hola, Pepe:\n")
    assert "es de 12.345,67\xa0€, por debajo del umbral de aviso de 20.000,00\xa0€." in body
    assert "Atentamente,\nNorth Telecom" in body


def test_notices_are_signed_and_sent_by_the_nearest_reseller_with_a_brand_else_the_default(
    world: Database, smtp: SmtpServer
) -> None:
    spend(world, "zoe", "16")  # plain has no brand nor sender: atlas above it speaks for it
    spend(world, "hal", "16")  # nobody above hal has any: the configured sender
    assert run(world, smtp) == NoticeReport(queued=2, sent=2)
    by_recipient = {r.rcpt_tos[0]: r for r in smtp.received}
    zoe = by_recipient["zoe@example.com"]
    assert (zoe.mail_from, zoe.message["From"]) == ("billing@atlas.example", "Atlas Voice <billing@atlas.example>")
    assert zoe.message.get_content().rstrip().endswith("Atlas Voice")
    hal = by_recipient["hal@example.com"]
    assert (hal.mail_from, hal.message["From"]) == ("billing@localhost", "Tollway <billing@localhost>")
    assert hal.message["Subject"] == "Tollway: low balance on your account hal"


def test_an_account_without_an_address_is_disarmed_and_nothing_is_queued(world: Database, smtp: SmtpServer) -> None:
    spend(world, "nomail", "16")
    assert run(world, smtp) == NoticeReport(skipped=1)
    assert alert(world, "nomail") == Alert(armed=False, crossings=1)
    assert outbox(world) == [] and smtp.received == []
    configure(world, "nomail", email="late@example.com")  # this fall was not told; the next one will be
    assert run(world, smtp) == NoticeReport()
    topup(world, "nomail", "10")
    assert run(world, smtp) == NoticeReport(rearmed=1)
    spend(world, "nomail", "10")
    topup(world, "nomail", "10")  # below and back between two scans: no scan saw it below, no notice
    assert run(world, smtp) == NoticeReport()
    spend(world, "nomail", "10")
    assert run(world, smtp) == NoticeReport(queued=1, sent=1)
    assert outbox(world, "nomail")[0].key == f"low_balance:{node_id(world, 'nomail')}:2"


def test_reservations_of_live_calls_do_not_count_but_the_credit_limit_does(world: Database, smtp: SmtpServer) -> None:
    with world.reading() as connection:
        ana = tree.require_node(connection, "ana")
        north = tree.require_node(connection, "north")
        wallet = account_id(connection, ana, AccountPurpose.WALLET)
        revenue = account_id(connection, north, AccountPurpose.REVENUE, "USD")
    reserve = TransferRequest(
        id="call-1",
        amount_micros=micros("18"),
        debit_account_id=wallet,
        credit_account_id=revenue,
        kind=TransferKind.CALL_CHARGE,
        phase=Phase.PENDING,
    )
    ledger.execute(world, [reserve])  # a call up now holds 18 of her 20
    assert run(world, smtp) == NoticeReport()
    ledger.execute(world, [TransferRequest(id="call-1.end", amount_micros=None, phase=Phase.VOID, pending_id="call-1")])
    balances.set_credit_limit(world, login="ana", credit_limit_micros=micros("10"))
    spend(world, "ana", "16")  # balance 4, plus 10 of credit: 14, above 5
    assert run(world, smtp) == NoticeReport()
    spend(world, "ana", "10")  # -6 + 10 = 4
    assert run(world, smtp) == NoticeReport(queued=1, sent=1)


# -- sending: retries and failures ---------------------------------------------------------------------


def test_a_server_down_at_first_is_retried_with_backoff_until_it_answers(world: Database, smtp: SmtpServer) -> None:
    smtp.stop()
    spend(world, "ana", "16")
    spend(world, "zoe", "16")
    assert run(world, smtp) == NoticeReport(queued=2, retried=1)  # the server is down: the second is not tried
    first, second = sorted(outbox(world), key=lambda e: e.id)
    assert (first.state, first.attempts, first.next_at) == (EmailState.DUE, 1, NOW + timedelta(seconds=30))
    assert first.last_error is not None and "could not reach the SMTP server" in first.last_error
    assert (second.state, second.attempts) == (EmailState.DUE, 0)
    assert run(world, smtp, NOW + timedelta(seconds=10)) == NoticeReport(retried=1)  # only the second was due
    smtp.start()
    assert run(world, smtp, NOW + timedelta(seconds=29)) == NoticeReport()  # neither is due yet
    assert run(world, smtp, NOW + timedelta(seconds=60)) == NoticeReport(sent=2)
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["ana@example.com", "zoe@example.com"]
    assert {(e.state, e.attempts) for e in outbox(world)} == {(EmailState.SENT, 2)}
    assert outbox(world, "ana")[0].sent_at == NOW + timedelta(seconds=60)


def test_a_permanent_refusal_fails_at_once_and_a_temporary_one_is_retried(world: Database, smtp: SmtpServer) -> None:
    configure(world, "ana", email="bounce@example.com")
    configure(world, "zoe", email="busy@example.com")
    configure(world, "hal", email="hal@example.com")
    for login in ("ana", "zoe", "hal"):
        spend(world, login, "16")
    assert run(world, smtp) == NoticeReport(queued=3, sent=1, retried=1, failed=1)  # one refusal stops nothing
    ana, zoe, hal = outbox(world, "ana")[0], outbox(world, "zoe")[0], outbox(world, "hal")[0]
    assert (ana.state, ana.attempts, ana.next_at) == (EmailState.FAILED, 1, None)
    assert ana.last_error is not None and "550" in ana.last_error and "bounce@example.com" in ana.last_error
    assert (zoe.state, zoe.attempts, zoe.next_at) == (EmailState.DUE, 1, NOW + timedelta(seconds=30))
    assert zoe.last_error is not None and "451" in zoe.last_error
    assert hal.state is EmailState.SENT
    assert [r.rcpt_tos for r in smtp.received] == [["hal@example.com"]]


def test_an_email_is_given_up_on_after_the_last_attempt(world: Database, smtp: SmtpServer) -> None:
    smtp.stop()
    spend(world, "ana", "16")
    at = NOW
    for _ in range(SEND_ATTEMPTS_MAX):
        run(world, smtp, at)
        at += timedelta(hours=1, seconds=1)
    [email] = outbox(world, "ana")
    assert (email.state, email.attempts, email.next_at) == (EmailState.FAILED, SEND_ATTEMPTS_MAX, None)
    assert run(world, smtp, at + timedelta(days=1)) == NoticeReport()


# -- several processes ----------------------------------------------------------------------------------

RACERS = 4
CROWD = 12


def crowd(database: Database) -> list[str]:
    """``CROWD`` clients of north, each 4 below its threshold of 5 and with an address."""
    logins = [f"client-{n:02d}" for n in range(CROWD)]
    for login in logins:
        create(database, "north", RETAIL, login)
        configure(database, login, email=f"{login}@example.com")
        topup(database, login, "4")
    return logins


def test_scans_racing_in_threads_queue_one_email_per_fall(world: Database, smtp: SmtpServer) -> None:
    crowd(world)
    start = threading.Barrier(RACERS)
    reports: list[NoticeReport] = []

    def scan() -> None:
        start.wait(timeout=START_SECONDS_MAX)
        reports.append(notices.scan_crossings(world, settings=smtp.settings(), now=NOW))

    threads = [threading.Thread(target=scan) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(reports) == RACERS
    assert sum(r.queued for r in reports) == CROWD
    assert notices.scan_crossings(world, settings=smtp.settings(), now=NOW) == NoticeReport()  # a repeat: nothing
    queued = outbox(world)
    assert len(queued) == CROWD and all(e.key.endswith(":1") for e in queued)
    assert len({e.recipient for e in queued}) == CROWD


def _scan_in_a_process(start: Any, results: Any, index: int, url: str) -> None:
    try:
        database = Database(url, pool_size=1)
        try:
            database.ping()
            start.wait(timeout=START_SECONDS_MAX)
            settings = MailSettings(smtp=SmtpSettings(port=1), default_sender=DEFAULT_SENDER)
            report: Any = notices.scan_crossings(database, settings=settings, now=NOW).queued
        finally:
            database.dispose()
    except BaseException as error:
        report = unexpected(f"process {index}", error)
    results.put((index, report))


def test_scans_racing_in_processes_queue_one_email_per_fall(world: Database) -> None:
    crowd(world)
    queued = race(_scan_in_a_process, [(world.url,)] * 3)
    assert all(isinstance(n, int) for n in queued), queued
    assert sum(queued) == CROWD
    with world.reading() as connection:
        assert connection.execute(select(func.count()).select_from(emails)).scalar_one() == CROWD


def test_senders_racing_send_each_email_once(world: Database, smtp: SmtpServer) -> None:
    crowd(world)
    assert notices.scan_crossings(world, settings=smtp.settings(), now=NOW).queued == CROWD
    start = threading.Barrier(RACERS)
    reports: list[NoticeReport] = []

    def send() -> None:
        start.wait(timeout=START_SECONDS_MAX)
        reports.append(notices.send_due(world, settings=smtp.settings(), now=NOW))

    threads = [threading.Thread(target=send) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r.sent for r in reports) == CROWD
    assert len(smtp.received) == CROWD
    assert len({r.rcpt_tos[0] for r in smtp.received}) == CROWD
    assert {(e.state, e.attempts) for e in outbox(world)} == {(EmailState.SENT, 1)}


def test_a_budget_bounds_one_run(world: Database, smtp: SmtpServer) -> None:
    crowd(world)
    started = time.monotonic()
    first = notices.run_notices(world, settings=smtp.settings(), now=NOW, budget_seconds=0)
    assert time.monotonic() - started < 30
    assert (first.queued, first.sent) == (1, 1)  # one of each, then out of budget
    rest = notices.run_notices(world, settings=smtp.settings(), now=NOW)
    assert (rest.queued, rest.sent) == (CROWD - 1, CROWD - 1)


# -- settings and the record, through the service, the API and the command line -------------------------------


def test_settings_are_checked_and_audited(world: Database) -> None:
    def refused(login: str, **changes: Any) -> str:
        with pytest.raises(Refusal) as refusal:
            configure(world, login, **changes)
        return refusal.value.reason

    assert refused("ana", email="ana@examplecom") == "email_invalid"
    assert refused("north", email_from="billing") == "email_invalid"
    assert refused("ana", threshold_micros=-1) == "threshold_invalid"
    assert refused("north", brand_name="two\nlines") == "brand_name_invalid"
    assert refused("ana", brand_name="Ana's") == "owner_settings_only"
    assert refused("ana", default_threshold_micros=1) == "owner_settings_only"
    assert refused("house", threshold_micros=1) == "provider_has_no_threshold"
    assert refused("ana") == "nothing_to_change"
    configure(world, "house", brand_name="House Telecom", default_threshold_micros=micros("1"))
    with world.reading() as connection:
        entry = connection.execute(
            select(audit_log.c.action, audit_log.c.after).where(audit_log.c.target_id == "house")
        ).all()[-1]
    assert entry.action == "node.notices"
    assert '"brand_name": "House Telecom"' in entry.after and '"default_threshold_micros": 1000000' in entry.after


def api(database: Database, login: str, role: Role) -> TestClient:
    app = create_app(database)
    app.include_router(notices_api.router, prefix=API_PREFIX)
    _, key = access.create_api_key(database, None, node_login=login, name="notices", role=role)
    return TestClient(app, base_url="https://testserver", headers={"Authorization": f"Bearer {key}"})


def test_who_may_set_what_through_the_api(world: Database) -> None:
    north = api(world, "north", Role.RESELLER_ADMIN)
    ana = api(world, "ana", Role.CLIENT)
    atlas = api(world, "atlas", Role.RESELLER_ADMIN)
    outsider = api(world, "plain", Role.RESELLER_ADMIN)

    changed = north.put("/api/v1/nodes/ana/notices", json={"threshold": "7.5"})
    assert changed.status_code == 200, changed.text
    assert changed.json() | {"armed": None} == {
        "login": "ana",
        "currency": "USD",
        "email": "ana@example.com",
        "threshold": "7.500000",
        "default_threshold": None,
        "brand_name": None,
        "email_from": None,
        "effective_threshold": "7.500000",
        "armed": None,
        "crossings": 0,
    }
    assert ana.put("/api/v1/nodes/ana/notices", json={"email": "ana.new@example.com"}).json()["email"] == (
        "ana.new@example.com"
    )
    own = ana.put("/api/v1/nodes/ana/notices", json={"threshold": "1"})  # a warning she gives herself
    assert (own.status_code, own.json()["threshold"]) == (200, "1.000000")
    assert ana.put("/api/v1/nodes/ana/notices", json={"default_threshold": "1"}).status_code == 403  # her owner's
    assert outsider.put("/api/v1/nodes/ana/notices", json={"threshold": "1"}).status_code == 404
    assert north.put("/api/v1/nodes/north/notices", json={"brand_name": "Me"}).status_code == 403  # its owner's
    rebranded = atlas.put("/api/v1/nodes/north/notices", json={"brand_name": "North 2", "default_threshold": "6"})
    assert rebranded.status_code == 200 and rebranded.json()["brand_name"] == "North 2"
    assert rebranded.json()["email_from"] == "billing@north.example"  # not sent: kept
    for body, reason in (
        ({"email": "not an address"}, "email_invalid"),
        ({"brand_name": "Ana Inc."}, "owner_settings_only"),
        ({}, "nothing_to_change"),
        ({"threshold": "-1"}, "request_invalid"),
        ({"colour": "red"}, "request_invalid"),
    ):
        answer = north.put("/api/v1/nodes/ana/notices", json=body)
        assert (answer.status_code, answer.json()["reason"]) == (422, reason), body
    cleared = north.put("/api/v1/nodes/ana/notices", json={"threshold": None, "email": None})
    assert cleared.json()["threshold"] is None and cleared.json()["email"] is None
    assert cleared.json()["effective_threshold"] == "6.000000"  # north's new default
    assert ana.get("/api/v1/nodes/ana/notices").json()["armed"] is True
    assert outsider.get("/api/v1/nodes/ana/notices").status_code == 404


def test_the_record_of_what_was_sent_through_the_api(world: Database, smtp: SmtpServer) -> None:
    spend(world, "ana", "16")
    run(world, smtp)
    topup(world, "ana", "16")
    run(world, smtp)
    spend(world, "ana", "16")
    run(world, smtp)
    ana = api(world, "ana", Role.CLIENT)
    page = ana.get("/api/v1/nodes/ana/emails", params={"limit": 1})
    assert page.status_code == 200, page.text
    [newest] = page.json()["items"]
    assert newest["state"] == "sent" and newest["attempts"] == 1
    assert newest["subject"] == "North Telecom: low balance on your account ana"
    assert newest["sender"] == "North Telecom <billing@north.example>" and newest["recipient"] == "ana@example.com"
    assert "$4.00" in newest["body"]
    rest = ana.get("/api/v1/nodes/ana/emails", params={"limit": 1, "before_id": page.json()["next_before_id"]})
    assert [e["id"] for e in rest.json()["items"]] == [newest["id"] - 1]
    assert ana.get("/api/v1/nodes/ana/emails", params={"state": "failed"}).json() == {
        "items": [],
        "next_before_id": None,
    }
    assert api(world, "plain", Role.RESELLER_ADMIN).get("/api/v1/nodes/ana/emails").status_code == 404
    assert api(world, "zoe", Role.CLIENT).get("/api/v1/nodes/ana/emails").status_code == 404


def test_the_command_line(world: Database, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tollway.cli.notices.database", lambda: world)  # one engine, which the fixture disposes
    monkeypatch.setenv("TOLLWAY_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("TOLLWAY_MAIL_FROM", "Ops <ops@example.net>")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    runner = CliRunner()

    def tollway(*args: str) -> Any:
        return runner.invoke(notices_app, list(args), catch_exceptions=False)

    shown = tollway("set", "ana", "--threshold", "7.5", "--email", "ana.cli@example.com")
    assert shown.exit_code == 0, shown.output
    assert "7.500000 USD" in shown.output and "ana.cli@example.com" in shown.output
    assert "North Telecom <billing@north.example>" in shown.output and "armed, 0 crossings" in shown.output
    assert "the owner's default" in tollway("set", "ana", "--threshold", "").output
    bad = tollway("set", "ana", "--email", "nope")
    assert bad.exit_code == 1 and "email_invalid" in bad.output
    assert "Ops <ops@example.net>" in tollway("show", "hal").output
    spend(world, "ana", "16")
    ran = tollway("run")
    assert ran.exit_code == 0 and "queued 1," in ran.output and "sent 1," in ran.output
    assert smtp.received[0].rcpt_tos == ["ana.cli@example.com"]
    listed = tollway("list", "--node", "ana")
    assert listed.exit_code == 0
    assert "North Telecom: low balance on your account ana" in listed.output and "sent" in listed.output
    assert "ana.cli@example.com" in tollway("list", "--state", "sent").output
    assert "ana.cli@example.com" not in tollway("list", "--state", "failed").output


# -- the SMTP session itself ---------------------------------------------------------------------------


def test_the_mailer_logs_in_and_reports_a_refused_login_as_the_servers_failure() -> None:
    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay", b"s3cret")
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself

    server = SmtpServer()
    controller = Controller(
        server.mailbox, hostname="127.0.0.1", port=server.port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        message, sender = compose_sample()
        good = SmtpMailer(SmtpSettings(port=server.port, username="relay", password="s3cret", timeout_seconds=5))
        good.send(message, sender=sender, recipient="ana@example.com")
        good.close()
        assert [r.rcpt_tos for r in server.received] == [["ana@example.com"]]
        bad = SmtpMailer(SmtpSettings(port=server.port, username="relay", password="wrong", timeout_seconds=5))
        with pytest.raises(SendFailed) as refused:
            bad.send(message, sender=sender, recipient="ana@example.com")
        bad.close()
    finally:
        controller.stop()
    failure = refused.value
    assert (failure.reason, failure.retryable, failure.server_down) == (SendFailure.SESSION_REFUSED, True, True)
    assert "s3cret" not in str(failure) and "wrong" not in str(failure)


def test_the_mailer_never_sends_credentials_in_clear_beyond_loopback() -> None:
    message, sender = compose_sample()
    mailer = SmtpMailer(SmtpSettings(host="192.0.2.1", username="relay", password="s3cret", timeout_seconds=1))
    with pytest.raises(SendFailed) as refused:
        mailer.send(message, sender=sender, recipient="ana@example.com")  # refused before connecting
    assert refused.value.reason is SendFailure.SESSION_REFUSED and "smtp_starttls" in str(refused.value)


def compose_sample() -> tuple[EmailMessage, str]:
    return compose(
        email_id=1,
        sender="North Telecom <billing@north.example>",
        recipient="ana@example.com",
        subject="Low balance",
        body="Hello\n",
        created_at=NOW,
        date=NOW,
    )
