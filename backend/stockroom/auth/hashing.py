"""Argon2id password hashing (pwdlib), run off the event loop."""

from __future__ import annotations

import asyncio

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# OWASP (2024): Argon2id, m=19 MiB, t=2, p=1.
_hasher = PasswordHash((Argon2Hasher(memory_cost=19_456, time_cost=2, parallelism=1),))


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """(valid, upgraded hash or None). An upgraded hash means the parameters changed since."""
    return await asyncio.to_thread(_hasher.verify_and_update, password, password_hash)
