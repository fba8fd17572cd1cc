"""Refresh-token rotation and reuse detection for the local `/auth/v1` (a development
stand-in, not GoTrue), following GoTrue's refresh_token grant:

- an unknown token is refused (`refresh_token_not_found`), as is a token of an ended
  session (`session_expired`) or of a banned user (`user_banned`);
- a live token is revoked and a child issued (`parent` = the used token);
- a revoked token that is the parent of the session's active one gives that active token
  back (the client lost the answer of its last refresh);
- another revoked token within the reuse interval is swapped for a child like a live one;
- after it, the whole session is revoked (every token, and the session ended) and the
  token refused `refresh_token_already_used`. Unlike GoTrue, which only revokes the
  session's tokens, the session is ended too, so none of its tokens works again.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tools.gateway.auth_api.errors import AuthApiError
from tools.gateway.auth_api.store import AuthConn, new_refresh_token

ALREADY_USED = AuthApiError(400, "refresh_token_already_used",
                            "Invalid Refresh Token: Already Used")


@dataclass(frozen=True)
class Rotated:
    """The refresh token to hand out, in the session of the token that was used."""

    user_id: UUID
    session_id: UUID
    refresh_token: str


def not_found() -> AuthApiError:
    return AuthApiError(400, "refresh_token_not_found",
                        "Invalid Refresh Token: Refresh Token Not Found")


async def _swap(conn: AuthConn, token_id: int, token: str, user_id: UUID,
                session_id: UUID) -> str:
    child = new_refresh_token()
    await conn.execute("update auth.refresh_tokens set revoked = true, updated_at = now()"
                       " where id = %s", (token_id,))
    await conn.execute(
        "insert into auth.refresh_tokens (instance_id, token, user_id, revoked, parent,"
        " session_id) values ('00000000-0000-0000-0000-000000000000', %s, %s, false, %s, %s)",
        (child, str(user_id), token, session_id))
    return child


async def _active_token(conn: AuthConn, session_id: UUID) -> tuple[str, str | None] | None:
    cursor = await conn.execute(
        "select token, parent from auth.refresh_tokens where session_id = %s"
        " and revoked is false order by id desc limit 1", (session_id,))
    row = await cursor.fetchone()
    return (row["token"], row["parent"]) if row else None


async def revoke_session(conn: AuthConn, session_id: UUID) -> None:
    """Every token of the session revoked, and the session ended."""
    await conn.execute("update auth.refresh_tokens set revoked = true, updated_at = now()"
                       " where session_id = %s and revoked is false", (session_id,))
    await conn.execute("update auth.sessions set not_after = now(), updated_at = now()"
                       " where id = %s", (session_id,))


async def rotate(conn: AuthConn, token: str, *, reuse_interval: int,
                 rotation: bool) -> Rotated | AuthApiError:
    """Use `token` (in the caller's transaction, which locks its row and its session's).
    An AuthApiError is returned, not raised, when what was done must be committed (the
    session revoked on reuse); raised when nothing was changed."""
    cursor = await conn.execute(
        "select rt.id, rt.revoked, rt.session_id, s.user_id,"
        " s.not_after is not null and s.not_after <= now() as ended,"
        " u.banned_until is not null and u.banned_until > now() as banned,"
        " now() > rt.updated_at + make_interval(secs => %s) as past_reuse"
        " from auth.refresh_tokens rt join auth.sessions s on s.id = rt.session_id"
        " join auth.users u on u.id = s.user_id"
        " where rt.token = %s for update of rt, s", (reuse_interval, token))
    row = await cursor.fetchone()
    if row is None:
        raise not_found()
    if row["banned"]:
        raise AuthApiError(400, "user_banned", "Invalid Refresh Token: User Banned")
    if row["ended"]:
        raise AuthApiError(400, "session_expired", "Invalid Refresh Token: Session Expired")
    user_id, session_id = row["user_id"], row["session_id"]
    if row["revoked"]:
        active = await _active_token(conn, session_id)
        if active is not None and active[1] == token:
            return Rotated(user_id, session_id, active[0])
        if row["past_reuse"]:
            if not rotation:
                raise ALREADY_USED
            await revoke_session(conn, session_id)
            return ALREADY_USED
    child = await _swap(conn, row["id"], token, user_id, session_id)
    await conn.execute("update auth.sessions set refreshed_at = now() at time zone 'utc',"
                       " updated_at = now() where id = %s", (session_id,))
    return Rotated(user_id, session_id, child)
