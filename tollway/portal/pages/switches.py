"""The provider's switches and RADIUS clients.

- **Switches** (``/switches``): the switches registered (their node, how disconnects are pushed to them,
  their API key's public id); the form that registers one (``calls.create_switch``) and the button that
  gives one a new key (``calls.rotate_switch_key``, the old key revoked at once). A new key is shown once,
  on the answer to that form (``Cache-Control: no-store``), and on no other page.
- **RADIUS clients** (``/radius-clients``): the voice gateways allowed to talk RADIUS to this installation,
  as its configuration names them (``radius_clients``, docs/radius.md): their address, the switch each acts
  as, whether it must sign its requests. Their shared secrets are never shown.

Provider admins only: for anyone else these pages do not exist (404).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response

from tollway.calls import service as calls
from tollway.calls.notify import NOTIFIER_KINDS
from tollway.errors import Refusal
from tollway.http.errors import status_for
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.web import PROVIDER_ROLES, ProviderDep, Visitor, render

router = APIRouter()
NAVIGATION = (
    NavItem("/switches", N_("Switches"), PROVIDER_ROLES, order=70),
    NavItem("/radius-clients", N_("RADIUS clients"), PROVIDER_ROLES, order=71),
)
Name = Annotated[str, Form(max_length=63)]


def switches_page(visitor: Visitor, *, error: Refusal | None = None, typed: dict[str, str] | None = None) -> Response:
    return render(
        visitor,
        "switches.html",
        status_code=status_for(error) if error else 200,
        values={
            "switches": calls.list_switches(visitor.database, principal=visitor.principal),
            "notify_kinds": NOTIFIER_KINDS,
            "error": refusal_text(visitor, error) if error else None,
            "typed": typed or {"name": "", "node": visitor.login, "notify_kind": "none", "notify_url": ""},
        },
    )


@router.get("/switches")
def switch_list(visitor: ProviderDep) -> Response:
    return switches_page(visitor)


@router.post("/switches")
def create_switch(
    visitor: ProviderDep,
    name: Name = "",
    node: Name = "",
    notify_kind: Annotated[str, Form(max_length=16)] = "none",
    notify_url: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    typed = {"name": name.strip(), "node": node.strip(), "notify_kind": notify_kind, "notify_url": notify_url.strip()}
    try:
        if not typed["name"]:
            raise Refusal("name_required", "a switch has a name")
        _, key = calls.create_switch(
            visitor.database,
            name=typed["name"],
            node_login=typed["node"] or visitor.login,
            notify_kind=notify_kind,
            notify_url=typed["notify_url"] or None,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return switches_page(visitor, error=refusal, typed=typed)
    return render(visitor, "switch_key.html", values={"name": typed["name"], "key": key, "created": True})


@router.post("/switches/{name}/rotate-key")
def rotate_key(visitor: ProviderDep, name: str) -> Response:
    key = calls.rotate_switch_key(visitor.database, name=name, principal=visitor.principal)
    return render(visitor, "switch_key.html", values={"name": name, "key": key, "created": False})


@router.get("/radius-clients")
def radius_clients(visitor: ProviderDep) -> Response:
    clients = sorted(visitor.settings.radius_clients.items(), key=lambda item: item[0])
    return render(visitor, "radius_clients.html", values={"clients": clients})
