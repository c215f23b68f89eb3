"""The versioned management API, ``/api/v1``."""
