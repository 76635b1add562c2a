"""/api/v1/containers/: the container board, with the board page's filters and sorts."""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from containers_app.models import Container
from containers_app.money import Tariffs
from containers_app.selectors import HISTORY_LIMIT, visible_containers
from containers_app.selectors import board_rows as select_board
from containers_app.selectors import visible_accounts as board_accounts
from history.models import HistoryEntry

from ..serializers import BoardContainerSerializer, BoardFilterSerializer, ContainerDetailSerializer
from .common import PAGE_PARAMETERS, ContainerPagination, account_param, errors


def board_rows(request: Request) -> QuerySet[Container]:
    """The containers the caller may see, filtered and sorted as on the board page (its
    filters, its sorts); a bad filter is a 400 naming it. Days are the portal's zone's."""
    given = BoardFilterSerializer(
        data=request.query_params, context={"accounts": board_accounts(request.user)}
    )
    given.is_valid(raise_exception=True)
    return select_board(
        visible_containers(request.user),
        given.board_filters(),
        today=timezone.localdate(),
        zone=timezone.get_current_timezone(),
    )


@extend_schema(
    tags=["containers"],
    parameters=[BoardFilterSerializer, *PAGE_PARAMETERS],
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
