"""A reseller's brand, as rules: what it may say and show, and which brand each visitor sees (pure).

Who sees whose brand: every node buys from its owner, so every login sees its *owner's* brand (a client
its reseller's, an agent its reseller's, a reseller its supplier's), and the provider's admins see the
provider's. Before logging in, a visitor sees the brand of the node whose host name it asked for, and the
provider's on any other host. A brand never borrows from above its node: a reseller without a logo shows
its name, a reseller without a brand name shows its own node name, never its supplier's.

Colours must keep text readable (WCAG 2.1 AA, contrast 4.5:1): white text on the primary colour, dark
text on the accent colour. A logo is PNG, JPEG, WebP or SVG, recognised by its first bytes, at most
``LOGO_BYTES_MAX``. An SVG is a document that could carry scripts: one is refused unless it is plain
drawing (no script, no event handler, no embedded page or foreign content, no link but to its own parts,
no DOCTYPE and so no entities), and every logo is served as an image in a sandbox with a policy that runs
nothing (tollway/portal/app.py) and shown only through ``<img>``, never inlined into a page.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from tollway.errors import Refusal

DEFAULT_PRIMARY = "#1f4e79"
DEFAULT_ACCENT = "#e8f0f8"
WHITE = "#ffffff"
TEXT = "#1a1a1a"  # the portal's body text colour, on the accent colour
CONTRAST_MIN = 4.5  # WCAG 2.1 AA for normal text
LOGO_BYTES_MAX = 256 * 1024
HOSTS_PER_BRAND_MAX = 20
HOST_LENGTH_MAX = 253
SUPPORT_PHONE_LENGTH_MAX = 40
SUPPORT_URL_LENGTH_MAX = 300

COLOUR = re.compile(r"#[0-9a-f]{6}")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_PHONE = re.compile(r"\+?[0-9 ()./-]{3,40}")
SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"
# Elements that run or embed something: an SVG logo holding one is refused, whatever its namespace says.
SVG_ACTIVE_ELEMENTS = frozenset({"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"})
SVG_MEDIA_TYPE = "image/svg+xml"
_OUTSIDE_URL = re.compile(r"url\((?!['\"]?#)")
LOGO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


class HostTaken(Refusal):
    """A host name another brand has: host names are unique across the installation."""

    def __init__(self, hosts: list[str]) -> None:
        super().__init__("host_taken", f"another brand already has {', '.join(hosts)}")
        self.hosts = hosts


class Keep(Enum):
    """A setting left out of a change: it stays as it is (None, by contrast, clears it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Logo:
    content: bytes
    media_type: str
    digest: str  # SHA-256, hex: the logo's address


@dataclass(frozen=True, slots=True)
class Brand:
    """What a visitor sees: the name, the colours, the logo's address, how to get help, the default language."""

    node_id: int
    name: str
    colour_primary: str = DEFAULT_PRIMARY
    colour_accent: str = DEFAULT_ACCENT
    logo_digest: str | None = None
    support_email: str | None = None
    support_phone: str | None = None
    support_url: str | None = None
    language: str = "en"


@dataclass(frozen=True, slots=True)
class BrandRow:
    """A node's own brand settings as stored (NULL: not set)."""

    node_id: int
    colour_primary: str | None = None
    colour_accent: str | None = None
    support_email: str | None = None
    support_phone: str | None = None
    support_url: str | None = None
    customer_language: str | None = None
    logo_digest: str | None = None


def brand_of(*, node_id: int, node_name: str, brand_name: str | None, language: str, row: BrandRow | None) -> Brand:
    """The brand a node shows its customers, from its own settings only (never its owners')."""
    if row is None:
        return Brand(node_id=node_id, name=brand_name or node_name, language=language)
    return Brand(
        node_id=node_id,
        name=brand_name or node_name,
        colour_primary=row.colour_primary or DEFAULT_PRIMARY,
        colour_accent=row.colour_accent or DEFAULT_ACCENT,
        logo_digest=row.logo_digest,
        support_email=row.support_email,
        support_phone=row.support_phone,
        support_url=row.support_url,
        language=row.customer_language or language,
    )


def _luminance(colour: str) -> float:
    """Relative luminance (WCAG 2.1)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def check_colour(colour: str, *, against: str, what: str) -> str:
    """'#1F4E79' -> '#1f4e79', refused unless text in ``against`` stays readable on it."""
    normalized = colour.strip().lower()
    if not COLOUR.fullmatch(normalized):
        raise Refusal("colour_invalid", f"{colour!r} is not a colour such as #1f4e79")
    if contrast(normalized, against) < CONTRAST_MIN:
        raise Refusal(
            "colour_contrast_too_low",
            f"the {what} colour {normalized} leaves text unreadable: it needs a contrast of {CONTRAST_MIN}:1 "
            f"with {against} (it has {contrast(normalized, against):.2f}:1)",
        )
    return normalized


def check_primary(colour: str) -> str:
    return check_colour(colour, against=WHITE, what="primary")


def check_accent(colour: str) -> str:
    return check_colour(colour, against=TEXT, what="accent")


def check_host(host: str) -> str:
    """A host name as the Host header carries it, lower case, without port: 'portal.north.example'."""
    normalized = host.strip().lower().rstrip(".")
    labels = normalized.split(".")
    if (
        not normalized
        or len(normalized) > HOST_LENGTH_MAX
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise Refusal("host_invalid", f"{host!r} is not a host name such as portal.example.com")
    return normalized


def host_of_header(header: str) -> str | None:
    """The host name a Host header names ('Portal.Example.com:8443' -> 'portal.example.com'); None if none."""
    name = header.strip().lower()
    if name.startswith("["):  # an IPv6 literal: no brand has one
        return None
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name.rstrip(".") or None


def check_support_phone(phone: str) -> str:
    if not _PHONE.fullmatch(phone.strip()):
        raise Refusal("support_phone_invalid", f"{phone!r} is not a phone number such as +1 555 0100")
    return phone.strip()


def check_support_url(url: str) -> str:
    """An http(s) address: a support page is a link, and a link may not run a script."""
    parts = urlsplit(url.strip())
    if len(url) > SUPPORT_URL_LENGTH_MAX or parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refusal("support_url_invalid", f"{url!r} is not an http or https address")
    return url.strip()


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _points_outside(value: str) -> bool:
    """Whether an attribute's value or a style's text reaches beyond the logo: a script URL or ``url(...)``
    of anything but the logo's own parts ('url(#gradient)')."""
    squeezed = "".join(value.lower().split())
    return "javascript:" in squeezed or _OUTSIDE_URL.search(squeezed) is not None


def check_svg(content: bytes) -> None:
    """Refuse an SVG that is not plain drawing: scripts, event handlers, embedded or foreign content, links
    out of the logo, DOCTYPEs (and so entities, which could expand without end) are all refused."""
    refused = Refusal("logo_svg_unsafe", "an SVG logo may hold drawing only: no script, handler, link or DOCTYPE")
    if b"<!doctype" in content.lower() or b"<!entity" in content.lower():
        raise refused
    try:
        root = ElementTree.fromstring(content)  # noqa: S314 - no DOCTYPE (refused above), so no entity to expand
    except ElementTree.ParseError:
        raise Refusal("logo_invalid", "the SVG logo is not well-formed XML") from None
    if root.tag not in (f"{SVG_NAMESPACE}svg", "svg"):
        raise Refusal("logo_invalid", "an SVG logo's root element is <svg>")
    for element in root.iter():
        if _local_name(element.tag) in SVG_ACTIVE_ELEMENTS or _points_outside(element.text or ""):
            raise refused
        for name, value in element.attrib.items():
            local = _local_name(name)
            if local.startswith("on") or _points_outside(value):
                raise refused
            if local == "href" and not value.strip().startswith("#"):
                raise refused


def _looks_like_svg(content: bytes) -> bool:
    start = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:256].lower()
    return start.startswith((b"<svg", b"<?xml", b"<!--")) and b"<svg" in content[:4096].lower()


def logo_media_type(content: bytes) -> str:
    """The image type a logo's first bytes say, or a refusal: PNG, JPEG, WebP or a drawing-only SVG."""
    if not content:
        raise Refusal("logo_invalid", "the logo is empty")
    if len(content) > LOGO_BYTES_MAX:
        raise Refusal("logo_too_large", f"a logo is at most {LOGO_BYTES_MAX // 1024} KiB")
    for signature, media_type in LOGO_SIGNATURES:
        if content.startswith(signature):
            return media_type
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if _looks_like_svg(content):
        check_svg(content)
        return SVG_MEDIA_TYPE
    raise Refusal("logo_invalid", "a logo is a PNG, JPEG, WebP or SVG image")
