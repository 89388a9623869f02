"""Relational plumbing: engine, sessions, declarative base, embedded PostgreSQL, migrations."""
