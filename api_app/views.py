"""The API (/api/v1/): views shape requests and answers; the services and selectors the pages
use decide (`queries_app.services`, `queries_app.access`, `queries_app.selectors`, and the
board's `containers_app.selectors`).

Every view needs a bearer token (`authentication.BearerTokenAuthentication`), counts against
the token's rate limit (`throttling.TokenRateThrottle`) and answers errors in one shape
(`errors.exception_handler`); see REST_FRAMEWORK in the settings.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from containers_app.forms import BoardFilterForm
from containers_app.models import Container, HistoryEntry
from containers_app.money import Tariffs
from containers_app.selectors import HISTORY_LIMIT, filter_board, visible_containers
from containers_app.selectors import visible_accounts as board_accounts
from containers_app.table import DEFAULT_SORT as DEFAULT_BOARD_SORT
from containers_app.table import SORTS as BOARD_SORTS
from containers_app.table import parse_sort as parse_board_sort
from containers_app.table import sort_rows as sort_board
from emodal_portal.ids import id_error, parse_id
from queries_app import access
from queries_app.access import NO_ACCOUNT_MESSAGE
from queries_app.models import Query
from queries_app.registry import all_kinds
from queries_app.selectors import (
    annotated_containers,
    filter_containers,
    own_account,
    visible_queries,
)
from queries_app.services import cancel_query, start_query
from queries_app.tables import sort_containers

from .errors import error_body
from .models import WebhookDelivery, WebhookEndpoint
from .serializers import (
    AccountSerializer,
    AppointmentSerializer,
    BoardContainerSerializer,
    ChangeRowSerializer,
    CheckSerializer,
    ContainerDetailSerializer,
    ContainerFilterSerializer,
    ContainerSerializer,
    ErrorSerializer,
    InfoSerializer,
    KindSerializer,
    QueryDetailSerializer,
    QuerySerializer,
    SecretSerializer,
    StartQuerySerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
from .webhooks import endpoints as webhook_endpoints

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
        keys = list(page.object_list.values_list("pk", flat=True))
        rows = {row.pk: row for row in self.object_list.order_by().filter(pk__in=keys)}
        page.object_list = [rows[key] for key in keys]
        return page


class ContainerPagination(Pagination):
    django_paginator_class = KeysFirstPaginator


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "Conflict."


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


# -- accounts and kinds --------------------------------------------------------------------------


@extend_schema(tags=["accounts"], responses={200: AccountSerializer(many=True), **errors()})
class AccountList(generics.ListAPIView):
    """The E-Modal accounts the caller may see (their own; staff with “Can view query”:
    all), and whether the caller may start queries for each."""

    serializer_class = AccountSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return access.visible_accounts(self.request.user)


@extend_schema(tags=["queries"], responses={200: KindSerializer(many=True), **errors()})
class KindList(APIView):
    """The query kinds and the parameters each takes."""

    def get(self, request: Request) -> Response:
        return Response(KindSerializer(all_kinds(), many=True).data)


# -- queries -------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        tags=["queries"],
        summary="List queries",
        parameters=[
            OpenApiParameter("status", str, enum=[s for s, _ in Query.Status.choices]),
            OpenApiParameter("kind", str, description="A kind's code."),
            OpenApiParameter("account", int),
        ],
        responses={200: QuerySerializer(many=True), **errors(400)},
    ),
    post=extend_schema(
        tags=["queries"],
        summary="Start a query",
        request=StartQuerySerializer,
        responses={
            201: OpenApiResponse(QuerySerializer, description="Started."),
            200: OpenApiResponse(
                QuerySerializer,
                description="The same query (account, kind, parameters) was already pending "
                "or running: that one, not a second.",
            ),
            **errors(400, 403, 404),
        },
    ),
)
class QueryList(generics.ListAPIView):
    """Queries the caller may see, newest first; POST starts one (the same checks as the
    results page: the kind's parameter form, the trigger limit, one live query per account,
    kind and parameters)."""

    serializer_class = QuerySerializer
    pagination_class = QueryPagination

    def get_queryset(self) -> QuerySet:
        queries = visible_queries(self.request.user).select_related("started_by")
        params = self.request.query_params
        if params.get("status"):
            if params["status"] not in Query.Status.values:
                raise exceptions.ValidationError(
                    {"status": [f"One of {', '.join(Query.Status.values)}."]}
                )
            queries = queries.filter(status=params["status"])
        if params.get("kind"):
            queries = queries.filter(kind=params["kind"])
        if params.get("account"):
            queries = queries.filter(account_id=account_param(params["account"]))
        return queries

    def post(self, request: Request) -> Response:
        given = StartQuerySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        user = request.user
        if data.get("account") is not None:
            account = access.visible_accounts(user).filter(pk=data["account"]).first()
            if account is None:
                raise exceptions.NotFound(f"No account #{data['account']} you may see.")
            if not access.may_start_for(user, account):
                raise exceptions.PermissionDenied(
                    "Starting queries for another account needs “Can view query” and “Can "
                    "start queries for any account”."
                )
        else:
            account = own_account(user)
            if account is None:
                raise exceptions.PermissionDenied(NO_ACCOUNT_MESSAGE)
        try:
            query, created = start_query(
                account=account, kind=data["kind"], params=data["params"], started_by=user
            )
        except DjangoValidationError as error:
            raise service_error(error, prefix="params.") from None
        query = visible_queries(user).select_related("started_by").get(pk=query.pk)
        return Response(
            QuerySerializer(query).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={"Location": reverse("api:query-detail", args=[query.pk])},
        )


def visible_query(request: Request, pk: int) -> Query:
    return get_object_or_404(visible_queries(request.user).select_related("started_by"), pk=pk)


@extend_schema(tags=["queries"], responses={200: QueryDetailSerializer, **errors(404)})
class QueryDetail(APIView):
    """A query: its parameters, status, progress, readable error, and how many rows of each
    result it has."""

    def get(self, request: Request, pk: int) -> Response:
        return Response(QueryDetailSerializer(visible_query(request, pk)).data)


@extend_schema(
    tags=["queries"],
    request=None,
    responses={
        200: OpenApiResponse(
            QuerySerializer,
            description="Cancelled, or (cancel_requested) stopping once its step in progress "
            "has finished.",
        ),
        409: OpenApiResponse(ErrorSerializer, description="It had already ended."),
        **errors(403, 404),
    },
)
class QueryCancel(APIView):
    """Cancel a live query: the caller's own, or any with “Can start queries for any
    account”."""

    def post(self, request: Request, pk: int) -> Response:
        query = visible_query(request, pk)
        if not access.may_cancel(request.user, query):
            raise exceptions.PermissionDenied(
                "Cancelling another account's query needs “Can start queries for any account”."
            )
        if not cancel_query(query=query):
            raise Conflict(f"Query #{query.pk} had already ended ({query.status}).")
        return Response(QuerySerializer(visible_query(request, pk)).data)


def container_filters(request: Request) -> tuple[dict[str, Any], str, bool]:
    given = ContainerFilterSerializer(data=request.query_params)
    given.is_valid(raise_exception=True)
    filters = dict(given.validated_data)
    sort = filters.pop("sort", "container_number")
    return filters, sort.removeprefix("-"), sort.startswith("-")


PAGE_PARAMETERS = [
    OpenApiParameter("page", int, description="A page number (from 1)."),
    OpenApiParameter("page_size", int, description="Rows per page (100; at most 1000)."),
]
CONTAINER_PARAMETERS = [ContainerFilterSerializer, *PAGE_PARAMETERS]


@extend_schema(
    tags=["queries"],
    parameters=CONTAINER_PARAMETERS,
    responses={200: ContainerSerializer(many=True), **errors(400, 404)},
)
class QueryContainers(generics.ListAPIView):
    """A query's containers, filtered and sorted as on its results page."""

    serializer_class = ContainerSerializer
    pagination_class = ContainerPagination

    def get_queryset(self) -> QuerySet:
        query = visible_query(self.request, self.kwargs["pk"])
        filters, sort, descending = container_filters(self.request)
        rows = annotated_containers(query)
        return sort_containers(
            filter_containers(rows, filters, today=timezone.localdate()), sort, descending
        )


class _QueryRows(generics.ListAPIView):
    pagination_class = Pagination
    relation = ""

    def get_queryset(self) -> QuerySet:
        query = visible_query(self.request, self.kwargs["pk"])
        return getattr(query, self.relation).all()


@extend_schema(tags=["queries"], responses={200: InfoSerializer(many=True), **errors(404)})
class QueryInfos(_QueryRows):
    """Container details a query read (bulk info, timelines, booking numbers)."""

    serializer_class = InfoSerializer
    relation = "infos"


@extend_schema(tags=["queries"], responses={200: CheckSerializer(many=True), **errors(404)})
class QueryChecks(_QueryRows):
    """Appointment availability checks (nothing is ever booked)."""

    serializer_class = CheckSerializer
    relation = "checks"


@extend_schema(tags=["queries"], responses={200: AppointmentSerializer(many=True), **errors(404)})
class QueryAppointments(_QueryRows):
    """The account's appointments, as the query read them."""

    serializer_class = AppointmentSerializer
    relation = "appointments"

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().defer("raw")


@extend_schema(tags=["queries"], responses={200: ChangeRowSerializer(many=True), **errors(404)})
class QueryChanges(_QueryRows):
    """What changed since the account's previous run of the same kind."""

    serializer_class = ChangeRowSerializer
    relation = "changes"


# -- containers --------------------------------------------------------------------------------


# What each of the board page's filters means, said for an API caller.
BOARD_PARAMETER_TEXT = {
    "q": "Part of a container number.",
    "pickup": "Whether it still needs a pickup: one verdict (ready, on_hold, not_arrived, "
    "picked_up, export, unknown), or needs (ready or on_hold). Default: any.",
    "due": "Last free day overdue, today, or soon (in 1 or 2 days); only containers that still "
    "need a pickup (the windows do not overlap).",
    "due_within": "Last free day within this many days (0: today); overdue ones included; only "
    "containers that still need a pickup (ready, on_hold).",
    "holds": "With holds (yes) or without (no).",
    "slot": "With an available appointment slot found by the latest check (yes), or not (no).",
    "terminal": "A terminal's code, as in `terminal_code`.",
    "changed_since": f"Changed on or after this day, in the portal's zone ({settings.TIME_ZONE}).",
    "watched": "Only containers the token's owner watches (★).",
    "show": "Containers gone from their list (gone), or all; default: those on it.",
    "account": "Only this account's containers (an id from /api/v1/accounts/).",
}


def board_parameters() -> list[OpenApiParameter]:
    """The board's filters as query parameters, read off the board page's form."""
    types = {
        forms.IntegerField: int,
        forms.DateField: OpenApiTypes.DATE,
        forms.ModelChoiceField: int,
    }
    parameters = []
    for name, field in BoardFilterForm.base_fields.items():
        enum = None
        if isinstance(field, forms.ChoiceField) and name not in ("account", "terminal"):
            enum = [value for value, _ in field.choices if value != ""]
        description = BOARD_PARAMETER_TEXT.get(name) or str(field.label)
        parameters.append(
            OpenApiParameter(name, types.get(type(field), str), description=description, enum=enum)
        )
    sorts = [*BOARD_SORTS, *(f"-{key}" for key in BOARD_SORTS)]
    parameters.append(
        OpenApiParameter(
            "sort",
            str,
            enum=sorts,
            description="A column; a leading - reverses it (blanks last either way). "
            "Default: lfd (soonest last free day first).",
        )
    )
    return parameters


def board_rows(request: Request) -> QuerySet[Container]:
    """The containers the caller may see, filtered and sorted as on the board page (its form,
    its filters, its sorts); a bad filter is a 400 naming it. Days are the portal's zone's."""
    params = request.query_params
    form = BoardFilterForm(
        params,
        terminals=[(params["terminal"], "")] if params.get("terminal") else [],
        accounts=board_accounts(request.user),
    )
    problems = dict(form.errors) if not form.is_valid() else {}
    sort = params.get("sort", DEFAULT_BOARD_SORT)
    if sort.removeprefix("-") not in BOARD_SORTS:
        problems["sort"] = [f"One of {', '.join(BOARD_SORTS)}, optionally with a leading -."]
    if problems:
        raise exceptions.ValidationError({name: list(errs) for name, errs in problems.items()})
    rows = filter_board(
        visible_containers(request.user),
        form.cleaned_data,
        today=timezone.localdate(),
        zone=timezone.get_current_timezone(),
    )
    return sort_board(rows, *parse_board_sort(sort), today=timezone.localdate())


@extend_schema(
    tags=["containers"],
    parameters=[
        *board_parameters(),
        *PAGE_PARAMETERS,
    ],
    responses={200: BoardContainerSerializer(many=True), **errors(400)},
)
class ContainerList(generics.ListAPIView):
    """The container board: every container of the accounts the caller may see, as last known
    (merged from the runs that saw it, each part with its run and time), with the board
    page's filters and sorts. Containers gone from the list are left out unless `show` asks."""

    serializer_class = BoardContainerSerializer
    pagination_class = ContainerPagination

    def get_queryset(self) -> QuerySet[Container]:
        return board_rows(self.request)

    def get_serializer_context(self) -> dict[str, Any]:
        return {
            **super().get_serializer_context(),
            "today": timezone.localdate(),
            "tariffs": Tariffs.load(),
        }


@extend_schema(
    tags=["containers"],
    parameters=[OpenApiParameter("account", int, description="Only this account's.")],
    responses={200: ContainerDetailSerializer, **errors(404)},
)
class ContainerDetail(APIView):
    """One container: its latest state in each account the caller may see (gone or not), and
    what every run observed changing for it, newest first."""

    def get(self, request: Request, number: str) -> Response:
        number = number.strip().upper()
        found = visible_containers(request.user).filter(container_number=number)
        account = request.query_params.get("account", "")
        if account:
            found = found.filter(account_id=account_param(account))
        rows = list(found.order_by("account_id"))
        if not rows:
            raise exceptions.NotFound(f"No container {number} in the accounts you may see.")
        history = (
            HistoryEntry.objects.filter(container__in=[row.pk for row in rows])
            .annotate(account_id=F("container__account_id"))
            .order_by("-observed_at", "-id")[:HISTORY_LIMIT]
        )
        data = {"container_number": number, "rows": rows, "history": list(history)}
        context = {"today": timezone.localdate()}
        return Response(ContainerDetailSerializer(data, context=context).data)


# -- webhooks ------------------------------------------------------------------------------------


def own_endpoint(request: Request, pk: int) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint.objects.filter(user=request.user), pk=pk)


@extend_schema_view(
    get=extend_schema(
        tags=["webhooks"], responses={200: WebhookEndpointSerializer(many=True), **errors()}
    ),
    post=extend_schema(
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer, **errors(400)},
    ),
)
class WebhookList(generics.ListAPIView):
    """The caller's webhook endpoints; POST registers one (its signing secret is in the
    answer, and only there)."""

    serializer_class = WebhookEndpointSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return WebhookEndpoint.objects.filter(user=self.request.user)

    def post(self, request: Request) -> Response:
        given = WebhookEndpointWriteSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            endpoint, secret = webhook_endpoints.create_endpoint(
                user=request.user,
                url=data["url"],
                events=data["events"],
                description=data.get("description", ""),
            )
        except DjangoValidationError as error:
            raise service_error(error) from None
        if data.get("enabled") is False:
            webhook_endpoints.update_endpoint(endpoint=endpoint, enabled=False)
        body = {**WebhookEndpointSerializer(endpoint).data, "secret": secret}
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:webhook-detail", args=[endpoint.pk])},
        )


@extend_schema_view(
    get=extend_schema(tags=["webhooks"], responses={200: WebhookEndpointSerializer, **errors(404)}),
    patch=extend_schema(
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, **errors(400, 404)},
    ),
    delete=extend_schema(tags=["webhooks"], responses={204: None, **errors(404)}),
)
class WebhookDetail(APIView):
    """One of the caller's endpoints. PATCH changes its URL, events or description, or
    enables it again after it was disabled ({"enabled": true})."""

    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookEndpointSerializer(own_endpoint(request, pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        endpoint = own_endpoint(request, pk)
        given = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        try:
            webhook_endpoints.update_endpoint(endpoint=endpoint, **given.validated_data)
        except DjangoValidationError as error:
            raise service_error(error) from None
        return Response(WebhookEndpointSerializer(endpoint).data)

    def delete(self, request: Request, pk: int) -> Response:
        own_endpoint(request, pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["webhooks"],
    request=None,
    responses={
        202: OpenApiResponse(
            WebhookDeliverySerializer, description="Queued: a worker sends it at once."
        ),
        **errors(404),
        429: OpenApiResponse(
            ErrorSerializer,
            description="A test event went to this endpoint within the last minute (or the "
            "token's rate limit): see Retry-After.",
        ),
    },
)
class WebhookTest(APIView):
    """Send a test event (type webhook.test) to the endpoint, enabled or not: one attempt,
    which never counts against it. Its outcome appears in the delivery log. At most one per
    endpoint a minute (WEBHOOK_TEST_INTERVAL_SECONDS)."""

    def post(self, request: Request, pk: int) -> Response:
        endpoint = own_endpoint(request, pk)
        try:
            delivery = webhook_endpoints.send_test_event(endpoint=endpoint)
        except webhook_endpoints.TestEventTooSoon as refused:
            return Response(
                error_body(429, "test_event_limit", str(refused)),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(refused.wait_seconds)},
            )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["webhooks"], request=None, responses={200: SecretSerializer, **errors(404)})
class WebhookRotateSecret(APIView):
    """A new signing secret for the endpoint (the old one stops signing at once)."""

    def post(self, request: Request, pk: int) -> Response:
        secret = webhook_endpoints.rotate_secret(endpoint=own_endpoint(request, pk))
        return Response({"secret": secret})


@extend_schema(
    tags=["webhooks"], responses={200: WebhookDeliverySerializer(many=True), **errors(404)}
)
class WebhookDeliveries(generics.ListAPIView):
    """The endpoint's delivery log, newest first: each event's status, attempts and the
    receiver's answers."""

    serializer_class = WebhookDeliverySerializer
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet:
        endpoint = own_endpoint(self.request, self.kwargs["pk"])
        return WebhookDelivery.objects.filter(endpoint=endpoint).prefetch_related("attempt_log")


@extend_schema(
    tags=["webhooks"],
    responses={
        200: inline_serializer(
            "EventTypes",
            {"type": serializers.CharField(), "label": serializers.CharField()},
            many=True,
        ),
        **errors(),
    },
)
class EventTypeList(APIView):
    """The event types an endpoint may subscribe to."""

    def get(self, request: Request) -> Response:
        from queries_app.events import EventType

        return Response([{"type": value, "label": label} for value, label in EventType.choices])
