"""A user as GoTrue's API shows it, from a row of auth.users, for the local `/auth/v1`
(a development stand-in, not GoTrue).

The one identity is made up from the row (GoTrue keeps them in auth.identities, which the
stand-in does not have): the clients only read it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.rows import DictRow


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as GoTrue writes times."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def app_metadata(row: DictRow) -> dict[str, Any]:
    """raw_app_meta_data, with GoTrue's provider keys when the row has none."""
    stored = row["raw_app_meta_data"] or {}
    return {"provider": "email", "providers": ["email"], **stored}


def _identity(row: DictRow) -> dict[str, Any]:
    user_id = str(row["id"])
    return {
        "identity_id": user_id, "id": user_id, "user_id": user_id,
        "identity_data": {"email": row["email"], "email_verified": True,
                          "phone_verified": False, "sub": user_id},
        "provider": "email", "last_sign_in_at": timestamp(row["last_sign_in_at"]),
        "created_at": timestamp(row["created_at"]), "updated_at": timestamp(row["updated_at"]),
        "email": row["email"],
    }


def user_json(row: DictRow) -> dict[str, Any]:
    """GoTrue's user object (`banned_until` only when set, as GoTrue omits it)."""
    shown: dict[str, Any] = {
        "id": str(row["id"]),
        "aud": row["aud"] or "authenticated",
        "role": row["role"] or "authenticated",
        "email": row["email"] or "",
        "email_confirmed_at": timestamp(row["email_confirmed_at"]),
        "phone": row["phone"] or "",
        "confirmed_at": timestamp(row["confirmed_at"]),
        "last_sign_in_at": timestamp(row["last_sign_in_at"]),
        "app_metadata": app_metadata(row),
        "user_metadata": row["raw_user_meta_data"] or {},
        "identities": [_identity(row)] if row["email"] else [],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
    }
    if row["banned_until"] is not None:
        shown["banned_until"] = timestamp(row["banned_until"])
    return shown


def merged(current: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's metadata update: keys are merged in; a null value removes its key."""
    result = dict(current or {})
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
