"""`Authorization: Bearer <token>` for the API (personal tokens only: no session, no CSRF)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiToken
from .tokens import check_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not credentials.strip():
            raise exceptions.AuthenticationFailed(
                "Send the token as “Authorization: Bearer <token>”."
            )
        verdict = check_token(credentials.strip())
        if verdict.token is None:
            raise exceptions.AuthenticationFailed(verdict.refused)
        return verdict.token.user, verdict.token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without valid credentials.
        return f'{self.keyword} realm="api"'
