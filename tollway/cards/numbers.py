"""Access numbers: the numbers card holders dial, owned by the provider or a reseller, in a prompt language,
exclusive to the owner's subtree or open to every card."""

from __future__ import annotations

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, authorize
from tollway.cards import store
from tollway.cards.model import AccessNumber
from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.lines.model import check_e164
from tollway.store.database import Database
from tollway.tree.model import Feature, NodeKind, check_feature_granted, check_language
from tollway.tree.service import require_node

ACCESS_NUMBERS_PAGE_MAX = 1_000


def put_access_number(
    database: Database,
    *,
    owner_login: str,
    number: str,
    language: str,
    exclusive: bool,
    principal: Principal | None = None,
) -> AccessNumber:
    """Create or change an access number of ``owner_login``; a number another owner holds is refused."""
    e164 = check_e164(number)
    check_language(language)

    def use_case(connection: Connection) -> AccessNumber:
        owner = require_node(connection, owner_login)
        authorize(principal, Action.TARIFFS_WRITE, owner)
        if owner.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER):
            raise Refusal("access_number_owner_invalid", "access numbers belong to the provider or a reseller")
        if owner.position.kind is NodeKind.RESELLER:
            check_feature_granted(owner.grants, Feature.CALLING_CARDS)
        before = store.find_access_number(connection, e164)
        if before is not None and before.owner_id != owner.id:
            raise Refusal("access_number_taken", f"{e164} is another owner's access number")
        made = AccessNumber(e164, owner.id, language, exclusive)
        store.put_access_number(connection, made, now=utc_now())
        audit(
            connection,
            principal,
            action="card.access_number",
            target_type="access_number",
            target_id=e164,
            node=owner,
            before=None if before is None else {"language": before.language, "exclusive": before.exclusive},
            after={"language": language, "exclusive": exclusive},
        )
        return made

    return database.run(use_case)


def list_access_numbers(
    database: Database, *, owner_login: str, principal: Principal | None = None
) -> list[AccessNumber]:
    with database.reading() as connection:
        owner = require_node(connection, owner_login)
        authorize(principal, Action.TARIFFS_READ, owner)
        return store.list_access_numbers(connection, owner.id, limit=ACCESS_NUMBERS_PAGE_MAX)
