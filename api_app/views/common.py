"""What the API's views share: the error answers of the schema, pagination, and how a service's
refusal or a bad id becomes a 400 (also used by the bookings API)."""

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

from emodal_portal.ids import id_error, parse_id

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
