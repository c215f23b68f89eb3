"""Branding: each reseller's name, colours, logo, support contact and host names, and which brand a visitor sees."""
