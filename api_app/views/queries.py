"""/api/v1/queries/: start, list, read and cancel queries, and read their results."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from queries_app import access
from queries_app.models import Query
from queries_app.selectors import (
    annotated_containers,
    filter_containers,
    run_changes,
    sort_containers,
    visible_queries,
)
from queries_app.services import cancel_query, start_query

from ..serializers import (
    AppointmentSerializer,
    ChangeRowSerializer,
    CheckSerializer,
    ContainerFilterSerializer,
    ContainerSerializer,
    ErrorSerializer,
    InfoSerializer,
    QueryDetailSerializer,
    QuerySerializer,
    StartQuerySerializer,
)
from .common import (
    PAGE_PARAMETERS,
    Conflict,
    ContainerPagination,
    Pagination,
    QueryPagination,
    account_param,
    account_to_start_for,
    errors,
    service_error,
    start_responses,
    started,
)


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
        responses=start_responses(
            QuerySerializer,
            started="Started.",
            under_way="The same query (account, kind, parameters) was already pending or "
            "running: that one, not a second.",
        ),
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
        account = account_to_start_for(user, data.get("account"))
        if data.get("account") is not None and not access.may_start_for(user, account):
            raise exceptions.PermissionDenied(
                "Starting queries for another account needs “Can view query” and “Can start "
                "queries for any account”."
            )
        try:
            query, created = start_query(
                account=account, kind=data["kind"], params=data["params"], started_by=user
            )
        except DjangoValidationError as error:
            raise service_error(error, prefix="params.") from None
        query = visible_queries(user).select_related("started_by").get(pk=query.pk)
        location = reverse("api:query-detail", args=[query.pk])
        return started(QuerySerializer(query).data, created=created, location=location)


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


@extend_schema(
    tags=["queries"],
    parameters=[ContainerFilterSerializer, *PAGE_PARAMETERS],
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
    """What the board observed changing when it merged the run (the containers' history entries
    of this run): new, back, gone, which fields moved; by container number."""

    serializer_class = ChangeRowSerializer

    def get_queryset(self) -> QuerySet:
        return run_changes(visible_query(self.request, self.kwargs["pk"]))


# -- containers --------------------------------------------------------------------------------
