"""The one claim helper: one winner among racing workers, a lapsed claim free again, and only
its holder renews or gives it back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.claims import CLAIM, new_token
from queries_app.models import Query

from ..threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def test_of_workers_racing_for_one_row_exactly_one_wins(alice):
    query = Query.objects.create(account=alice, kind="containers")
    tokens = [new_token() for _ in range(8)]

    won = in_threads(
        8,
        lambda i: CLAIM.take(Query.objects.filter(pk=query.pk), token=tokens[i], seconds=60),
    )

    assert won.count(True) == 1, won
    winner = tokens[won.index(True)]
    assert Query.objects.get(pk=query.pk).claim_token == winner


def test_a_lapsed_claim_can_be_taken_and_the_old_holder_can_neither_renew_nor_give_it_back(
    alice,
):
    query = Query.objects.create(account=alice, kind="containers")
    rows = Query.objects.filter(pk=query.pk)
    first, second = new_token(), new_token()
    start = timezone.now()
    assert CLAIM.take(rows, token=first, seconds=30, now=start)
    assert not CLAIM.take(rows, token=second, seconds=30, now=start + timedelta(seconds=29))

    assert CLAIM.take(rows, token=second, seconds=30, now=start + timedelta(seconds=31))
    assert not CLAIM.renew(rows, token=first, seconds=30)
    assert not CLAIM.give_back(rows, token=first)
    assert Query.objects.get(pk=query.pk).claim_token == second

    assert CLAIM.renew(rows, token=second, seconds=300)
    renewed = Query.objects.get(pk=query.pk).claim_expires_at
    assert renewed > timezone.now() + timedelta(seconds=250)
    assert CLAIM.give_back(rows, token=second, error="given back")
    freed = Query.objects.get(pk=query.pk)
    assert (freed.claim_token, freed.claim_expires_at, freed.error) == ("", None, "given back")


def test_a_claim_writes_its_changes_only_when_it_wins(alice):
    query = Query.objects.create(account=alice, kind="containers")
    rows = Query.objects.filter(pk=query.pk)
    assert CLAIM.take(rows, token=new_token(), seconds=60, error="first")
    assert not CLAIM.take(rows, token=new_token(), seconds=60, error="second")
    assert Query.objects.get(pk=query.pk).error == "first"
