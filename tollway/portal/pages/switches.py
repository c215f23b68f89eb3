"""The provider's switches and RADIUS clients.

- **Switches** (``/switches``): the switches registered (their node, how disconnects are pushed to them,
  their API key's public id); the form that registers one (``calls.create_switch``) and the button that
  gives one a new key (``calls.rotate_switch_key``, the old key revoked at once). A new key is shown once,
  on the answer to that form (``Cache-Control: no-store``), and on no other page. Whether a switch is
  **trusted with its durations** (``calls.set_switch_trusted_durations``): trusting one is asked on a page
  of its own that explains the risk (``/switches/<name>/trusted-durations``) and takes a ticked box; not
  trusting it again is one button.
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
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.web import PROVIDER_ROLES, ProviderDep, Visitor, redirect, render

router = APIRouter()
NAVIGATION = (
    NavItem("/switches", N_("Switches"), PROVIDER_ROLES, order=70),
    NavItem("/radius-clients", N_("RADIUS clients"), PROVIDER_ROLES, order=71),
)
Name = Annotated[str, Form(max_length=63)]
SAVED = {
    "trusted": N_("The switch is trusted with its durations: they are charged as it reports them."),
    "not_trusted": N_("The switch's durations are capped again at what each call was granted."),
}


def switches_page(visitor: Visitor, *, error: Refusal | None = None, typed: dict[str, str] | None = None) -> Response:
    return render(
        visitor,
        "switches.html",
        status_code=status_for(error) if error else 200,
        values={
            "switches": calls.list_switches(visitor.database, principal=visitor.principal),
            "notify_kinds": NOTIFIER_KINDS,
            "error": refusal_text(visitor, error) if error else None,
            "saved": SAVED.get(visitor.request.query_params.get("saved", "")),
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


def _switch(visitor: Visitor, name: str) -> calls.Switch:
    for switch in calls.list_switches(visitor.database, principal=visitor.principal):
        if switch.name == name:
            return switch
    raise NotFound("switch", name)


def _trust_page(visitor: Visitor, name: str, *, error: Refusal | None = None) -> Response:
    return render(
        visitor,
        "switch_trust.html",
        status_code=status_for(error) if error else 200,
        values={"switch": _switch(visitor, name), "error": refusal_text(visitor, error) if error else None},
    )


@router.get("/switches/{name}/trusted-durations")
def trust_page(visitor: ProviderDep, name: str) -> Response:
    """What trusting a switch's durations risks, and the form that does it."""
    return _trust_page(visitor, name)


@router.post("/switches/{name}/trusted-durations")
def set_trusted_durations(
    visitor: ProviderDep,
    name: str,
    trusted: Annotated[str, Form(max_length=8)] = "",
    understood: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """``trusted=yes`` with the risk understood (the ticked box) trusts it; ``trusted=no`` stops trusting it."""
    if trusted not in ("yes", "no"):
        raise Refusal("request_invalid", "trusted is yes or no")
    if trusted == "yes" and understood != "yes":
        return _trust_page(visitor, name, error=Refusal("confirmation_required", "tick the box to confirm"))
    calls.set_switch_trusted_durations(
        visitor.database, name=name, trusted=trusted == "yes", principal=visitor.principal
    )
    return redirect("/switches?saved=" + ("trusted" if trusted == "yes" else "not_trusted"))


@router.get("/radius-clients")
def radius_clients(visitor: ProviderDep) -> Response:
    clients = sorted(visitor.settings.radius_clients.items(), key=lambda item: item[0])
    return render(visitor, "radius_clients.html", values={"clients": clients})
