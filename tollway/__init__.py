"""Tollway: VoIP billing for a provider and its resellers, agents and clients."""

__version__ = "0.1.0"
__all__ = ["__version__"]
