"""Users, roles, permissions, tokens, password hashing and login throttling."""
