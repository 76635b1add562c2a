"""The one list of an account's secrets: the admin, the pages' reads, key rotation, the upstream
errors' payload filter and the leak tests all read it, so a new secret is named here once."""

from __future__ import annotations

# Each secret of an account by its model field, with the name it goes by in the upstream's
# request and answer bodies.
ACCOUNT_SECRET_FIELDS: dict[str, str] = {
    "emodal_username": "username",
    "password": "password",
    "captcha_api_key": "captcha_api_key",
    "session_id": "session_id",
}

# Names an upstream body may carry a secret under: the account's, plus the id of a check's held
# workflow (a bearer token like the session id, never stored).
UPSTREAM_SECRET_NAMES: frozenset[str] = frozenset(
    {*ACCOUNT_SECRET_FIELDS.values(), "appointment_session_id"}
)


def account_secrets(relation: str = "") -> list[str]:
    """The secrets' lookups, for `defer()` on a model's relation to an account (e.g. "account"):
    pages name an account, never show its secrets, and leaving them unloaded spares decrypting."""
    prefix = f"{relation}__" if relation else ""
    return [f"{prefix}{name}" for name in ACCOUNT_SECRET_FIELDS]
