"""Lines: what a client account or an extension presents as its caller id, and where it rings (FollowMe)."""
