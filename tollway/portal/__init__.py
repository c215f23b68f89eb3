"""The web portal: server-rendered pages for every role, branded per reseller, in several languages.

Served by ``tollway serve`` at ``/`` (the API stays at ``/api``); see docs/portal.md.
"""

from tollway.portal.app import create_portal
from tollway.portal.web import PortalSettings

__all__ = ["PortalSettings", "create_portal"]
