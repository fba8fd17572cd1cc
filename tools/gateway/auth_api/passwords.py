"""Passwords of the local `/auth/v1` (a development stand-in, not GoTrue), stored as GoTrue
stores them: bcrypt, cost 10, in auth.users.encrypted_password. Hashing takes tens of
milliseconds, so it runs in a thread, off the gateway's event loop."""

from __future__ import annotations

import asyncio

import bcrypt

BCRYPT_COST = 10


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(BCRYPT_COST)).decode()


def _matches(password: str, stored: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), stored.encode("utf-8"))
    except ValueError:  # not a bcrypt hash (a row written by hand), or over 72 bytes
        return False


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash, password)


async def password_matches(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    return await asyncio.to_thread(_matches, password, stored)
