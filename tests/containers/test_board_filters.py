"""The board's filters and sort are plain values (`BoardFilters`) that the board page's form and
the API's query parameters both give, alike for the same input."""

from __future__ import annotations

from datetime import date

from django.http import QueryDict

from api_app.serializers.containers import BoardFilterSerializer
from containers_app.forms import BoardFilterForm
from containers_app.selectors import DEFAULT_SORT, BoardFilters
from sessions_app.models import Account

GIVEN = (
    "q=%20mscu1%20&pickup=needs&due_within=3&holds=no&slot=yes&terminal=PIER400"
    "&changed_since=2026-12-01&watched=yes&show=all&sort=-money"
)


def from_page(query: str) -> BoardFilters:
    params = QueryDict(query)
    form = BoardFilterForm(params, terminals=[("PIER400", "Pier 400")], accounts=None)
    return form.board_filters(params.get("sort", ""))


def from_api(query: str) -> BoardFilters:
    given = BoardFilterSerializer(
        data=QueryDict(query), context={"accounts": Account.objects.none()}
    )
    assert given.is_valid(), given.errors
    return given.board_filters()


def test_the_page_and_the_api_read_the_same_filters() -> None:
    expected = BoardFilters(
        q="mscu1",
        pickup="needs",
        due_within=3,
        holds=False,
        slot=True,
        terminal="PIER400",
        changed_since=date(2026, 12, 1),
        watched=True,
        show="all",
        sort="money",
        descending=True,
    )
    assert from_page(GIVEN) == expected
    assert from_api(GIVEN) == expected
    assert from_page("") == from_api("") == BoardFilters(sort=DEFAULT_SORT)


def test_the_page_ignores_a_bad_filter_or_sort_where_the_api_names_it() -> None:
    assert from_page("holds=maybe&sort=colour&due=today") == BoardFilters(due="today")
    given = BoardFilterSerializer(
        data=QueryDict("holds=maybe&sort=colour&due=today"),
        context={"accounts": Account.objects.none()},
    )
    assert not given.is_valid()
    assert set(given.errors) == {"holds", "sort"}
