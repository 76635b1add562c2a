"""What the API's views share: the error answers of the schema, pagination, how a service's
refusal or a bad id becomes a 400, and the shape of a POST that starts something (also used by
the bookings API)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from emodal_portal.ids import id_error, parse_id
from queries_app import access
from queries_app.access import NO_ACCOUNT_MESSAGE
from queries_app.selectors import own_account
from sessions_app.models import Account

from ..serializers import ErrorSerializer

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input."),
    401: OpenApiResponse(
        ErrorSerializer, description="No token, or a bad, expired or revoked one."
    ),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed."),
    404: OpenApiResponse(ErrorSerializer, description="No such thing, or not yours."),
    429: OpenApiResponse(
        ErrorSerializer, description="Rate limit (or trigger limit) reached: see Retry-After."
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in (401, 429, *codes)}


def start_responses(serializer: Any, *, started: str, under_way: str) -> dict[int, OpenApiResponse]:
    """The answers of a POST that starts something: 201, or 200 with the one already under way."""
    return {
        201: OpenApiResponse(serializer, description=started),
        200: OpenApiResponse(serializer, description=under_way),
        **errors(400, 403, 404),
    }


def started(data: Any, *, created: bool, location: str) -> Response:
    """A POST's answer (`start_responses`): 201 for a new one, 200 for the one under way."""
    return Response(
        data,
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        headers={"Location": location},
    )


def account_to_start_for(user: Any, account_id: int | None) -> Account:
    """The account a POST starts something for: the one it names (404 unless the caller may
    see it), else the caller's own (403 without one)."""
    if account_id is not None:
        account = access.visible_accounts(user).filter(pk=account_id).first()
        if account is None:
            raise exceptions.NotFound(f"No account #{account_id} you may see.")
        return account
    own = own_account(user)
    if own is None:
        raise exceptions.PermissionDenied(NO_ACCOUNT_MESSAGE)
    return own


class Pagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class QueryPagination(Pagination):
    page_size = 25


class KeysFirstPaginator(Paginator):
    """A page of rows found by key first, then read with their joined columns: PostgreSQL
    evaluates the select list's subqueries (slot check, change) for every row an OFFSET skips,
    so reading page 100 of 10 000 containers in one statement computes them 10 000 times.
    Two statements instead: the page's keys (sorted and filtered, no other subquery), then
    those rows (bench/README.md, "The API")."""

    def page(self, number: Any) -> Any:
        page = super().page(number)
        keys = list(cast(QuerySet, page.object_list).values_list("pk", flat=True))
        found = cast(QuerySet, self.object_list).order_by().filter(pk__in=keys)
        rows = {row.pk: row for row in found}
        page.object_list = [rows[key] for key in keys]
        return page


class ContainerPagination(Pagination):
    django_paginator_class = KeysFirstPaginator


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "Conflict."


def caller(request: Request) -> User:
    """The token's owner: every view of the API needs a token (no anonymous caller)."""
    return cast(User, request.user)


def account_param(value: str) -> int:
    """`?account=`: an account id, or a 400 naming it."""
    account = parse_id(value)
    if account is None:
        raise exceptions.ValidationError({"account": [id_error("an account id", value)]})
    return account


def service_error(error: DjangoValidationError, *, prefix: str = "") -> exceptions.ValidationError:
    """A service's ValidationError as the API's: fields named as in the request."""
    if not hasattr(error, "error_dict"):
        return exceptions.ValidationError({"_": error.messages})
    return exceptions.ValidationError(
        {
            ("_" if name == "__all__" else f"{prefix}{name}"): messages
            for name, messages in error.message_dict.items()
        }
    )


PAGE_PARAMETERS = [
    OpenApiParameter("page", int, description="A page number (from 1)."),
    OpenApiParameter("page_size", int, description="Rows per page (100; at most 1000)."),
]
