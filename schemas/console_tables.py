"""SQLModel table of the operator console's sign-in sessions, shared by every admin replica.

A row is what the admin needs to accept a session cookie, and nothing that would let a reader
of the database use one: the browser's cookie carries a random session id, the row only its
SHA-256 (``id_hash``). It names who signed in by the token's name and role, never the token;
``token_proof`` (an HMAC of the session id keyed by the token's digest) ties the session to
that very token, so a rotated token ends its sessions, yet without the session id it says
nothing about the token. Times are UTC wall clock, so every replica agrees on an expiry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class ConsoleSessionRow(SQLModel, table=True):
    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expiry", "namespace", "expires_at"),)

    id_hash: str = Field(primary_key=True, max_length=64)
    """Hex SHA-256 of the session id the cookie carries."""
    namespace: str = Field(max_length=64)
    token_name: str = Field(max_length=64)
    role: str = Field(max_length=16)
    token_proof: str = Field(max_length=64)
    csrf: str = Field(max_length=64)
    """The session's CSRF token (useless without the cookie, which the database lacks)."""
    created_at: datetime
    expires_at: datetime
