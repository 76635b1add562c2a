"""/api/v1/containers/: the container board, with the board page's filters and sorts."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics
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

from ..serializers import BoardContainerSerializer, ContainerDetailSerializer
from .common import PAGE_PARAMETERS, ContainerPagination, account_param, errors

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
    types: dict[type[forms.Field], Any] = {
        forms.IntegerField: int,
        forms.DateField: OpenApiTypes.DATE,
        forms.ModelChoiceField: int,
    }
    parameters = []
    for name, field in BoardFilterForm.base_fields.items():
        enum = None
        if isinstance(field, forms.ChoiceField) and name not in ("account", "terminal"):
            enum = [value for value, _ in cast(list[tuple[str, str]], field.choices) if value]
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
    problems: dict[str, list[str]] = {}
    if not form.is_valid():
        problems = {name: [str(error) for error in errs] for name, errs in form.errors.items()}
    sort = params.get("sort", DEFAULT_BOARD_SORT)
    if sort.removeprefix("-") not in BOARD_SORTS:
        problems["sort"] = [f"One of {', '.join(BOARD_SORTS)}, optionally with a leading -."]
    if problems:
        raise exceptions.ValidationError(problems)
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
