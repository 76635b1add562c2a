"""One error shape for everything under /api/: `{"status", "code", "message", "fields"?}`.

DRF's own errors (validation, authentication, permission, throttling, 404, 405) pass through
`exception_handler`; the service layer's `ValidationError` and `TriggerLimitReached` too. What
happens outside a DRF view (an unknown path, a crash, a refused request body) reaches Django's
error handlers (`portal.errors`), which answer /api/ paths with the JSON answers below
(registered when the app is ready) and show the usual pages elsewhere.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from emodal_portal.ids import id_error, parse_id
from portal.errors import ErrorAnswers
from queries_app.services import TriggerLimitReached

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
SERVER_ERROR = "Something went wrong on the portal's side; it is logged."
NOT_FOUND_URL_NAME = "api-not-found"


def error_body(
    status_code: int, code: str, message: str, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status_code, "code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field" or "field.sub": [messages]}."""
    found: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "_"
            found.update(_flatten(value, name))
    elif (
        isinstance(detail, list) and detail and all(not isinstance(d, dict | list) for d in detail)
    ):
        found[prefix or "_"] = [str(item) for item in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            found.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        found[prefix or "_"] = [str(detail)]
    return found


def readable(fields: dict[str, list[str]]) -> str:
    parts = []
    for name, messages in fields.items():
        text = " ".join(messages)
        parts.append(text if name == "_" else f"{name}: {text}")
    return " ".join(parts) or "Invalid input."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, TriggerLimitReached):
        wait = exc.retry_after_seconds()
        return Response(
            error_body(429, "trigger_limit", exc.readable()),
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"_": exc.messages}
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):
        # DRF reads JSON through request.body, which holds to DATA_UPLOAD_MAX_MEMORY_SIZE.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        return Response(
            error_body(413, "payload_too_large", f"The request body is larger than {limit} KiB."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        # A crash. Logged as Django logs one, answered in the one shape (also with DEBUG on,
        # where Django would show its debug page).
        request = context.get("request")
        logger.error(
            "Internal Server Error: %s",
            getattr(request, "path", "?"),
            exc_info=exc,
            extra={"status_code": 500},
        )
        return Response(
            error_body(500, "server_error", SERVER_ERROR),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        response.data = error_body(response.status_code, "invalid", readable(fields), fields)
    else:
        said = getattr(exc, "detail", None)
        message = str(said) if said is not None else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if not isinstance(code, str):
            code = "error"
        if isinstance(exc, exceptions.Throttled):
            code = "rate_limited"
            reached = getattr(context.get("request"), "rate_limit_reached", "") or (
                f"Too many requests: at most {_rate()}."
            )
            # Throttled sets `wait` in its constructor; the stubs leave the attribute out.
            message = f"{reached} Try again in {exc.wait} seconds."  # type: ignore[attr-defined]
        response.data = error_body(response.status_code, code, message)
    return response


def _rate() -> str:
    return f"{settings.API_RATE_LIMIT} per {settings.API_RATE_WINDOW_SECONDS} seconds"


# -- Django's handlers for /api/ paths (`portal.errors`, registered in apps.py) --------------


def _json(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status_code, code, message), status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _json(400, "bad_request", "The request could not be read (too large, or malformed).")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    message = (
        str(exception)
        if isinstance(exception, PermissionDenied) and str(exception)
        else ("You may not do this.")
    )
    return _json(403, "permission_denied", message)


def _id_out_of_range(path: str) -> str | None:
    """The part of an API path that would name an id, were it not beyond any id (`<id:…>`
    refuses it, so the path matches nothing): that part, if the path is otherwise one of the
    API's."""
    parts = path.split("/")
    for index, part in enumerate(parts):
        if part.isascii() and part.isdigit() and parse_id(part) is None:
            candidate = "/".join([*parts[:index], "1", *parts[index + 1 :]])
            try:
                match = resolve(candidate)
            except Resolver404:
                continue
            if match.url_name != NOT_FOUND_URL_NAME:
                return part
    return None


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    wrong = _id_out_of_range(request.path)
    if wrong is not None:
        return _json(400, "invalid", id_error("in the path", wrong))
    message = f"No such API path: {request.path}."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != NOT_FOUND_URL_NAME:
            message += f" API paths end with a slash: {request.path}/"
    return _json(404, "not_found", message)


def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """The last pattern under /api/: a JSON 404 whatever DEBUG says (Django shows its debug
    page instead of handler404 when DEBUG is on)."""
    return page_not_found(request, Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    return _json(500, "server_error", SERVER_ERROR)


ANSWERS = ErrorAnswers(
    bad_request=bad_request,
    permission_denied=permission_denied,
    page_not_found=page_not_found,
    server_error=server_error,
)
