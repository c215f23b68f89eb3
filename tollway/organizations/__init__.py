"""UC/PBX organizations: their users, extensions with SIP credentials, limits and spending caps."""
