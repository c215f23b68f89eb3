"""What a newcomer reads first: the demo's logins and switch key, and where to point a browser."""

from __future__ import annotations

import ipaddress

from tollway import __version__
from tollway.cli.common import Listing, OutputFormat, out, print_listing
from tollway.demo_logins import DemoAccess

DEVELOPMENT_ONLY = (
    "Demo logins, for development only: these passwords are published in Tollway's README. "
    "Never load the demo into a database you run in production."
)
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names of the wildcard addresses, not a bind)


def print_demo_access(demo: DemoAccess, output_format: OutputFormat | None = None) -> None:
    out.print(DEVELOPMENT_ONLY, markup=False, highlight=False, soft_wrap=True)
    rows = [[d.role_label, d.login, d.password, d.node] for d in demo.logins]
    print_listing(Listing(("role", "login", "password", "node"), rows), output_format)
    out.print(
        f"switch {demo.switch} (authorizes every call, at {demo.switch_node}); its API key, new at each run "
        "(the previous one is revoked):",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    out.print(demo.switch_api_key, markup=False, highlight=False, soft_wrap=True)


def base_url(host: str, port: int) -> str:
    """The address a browser on this machine opens for a server listening on ``host``."""
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{port}"


def print_serve_banner(host: str, port: int) -> None:
    url = base_url(host, port)
    lines = [
        f"Tollway {__version__} on {url}" + (" (every address of this machine)" if host in WILDCARD_HOSTS else ""),
        f"  portal      {url}/",
        f"  API docs    {url}/api/docs  (ReDoc: {url}/api/redoc)",
        f"  readiness   {url}/ready",
        "  log in with a demo login (`tollway demo` prints them), or make one: `tollway user create`",
    ]
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
