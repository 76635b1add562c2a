"""The containers table's sorts are selector inputs: the page's columns and the API's `sort`
name the same keys, and each key orders the rows by what it names."""

from __future__ import annotations

import pytest

from queries_app.models import ContainerRow, Query
from queries_app.selectors import CONTAINER_SORTS, annotated_containers, sort_containers
from queries_app.tables import CONTAINER_COLUMNS
from sessions_app.models import Account

pytestmark = pytest.mark.django_db


def test_every_column_of_the_page_is_a_sort_and_every_sort_a_column() -> None:
    assert [column.key for column in CONTAINER_COLUMNS] == list(CONTAINER_SORTS)


def test_each_sort_orders_the_rows_with_blanks_last(alice: Account) -> None:
    query = Query.objects.create(account=alice, kind="containers", status="succeeded")
    for number, lfd in (
        ("MSCU0000001", "2026-12-09"),
        ("MSCU0000002", None),
        ("MSCU0000003", "2026-12-08"),
    ):
        ContainerRow.objects.create(query=query, container_number=number, last_free_day=lfd, raw={})
    rows = annotated_containers(query)
    for key in CONTAINER_SORTS:
        assert sort_containers(rows, key, descending=True).count() == 3  # every key orders
    ascending = sort_containers(rows, "last_free_day", descending=False)
    descending = sort_containers(rows, "last_free_day", descending=True)
    assert [r.container_number for r in ascending] == ["MSCU0000003", "MSCU0000001", "MSCU0000002"]
    assert [r.container_number for r in descending] == ["MSCU0000001", "MSCU0000003", "MSCU0000002"]
