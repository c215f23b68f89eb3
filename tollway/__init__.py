"""Tollway: VoIP billing for a provider and its resellers, agents and clients.

The design, with the module that holds each part, is docs/design.md.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
