"""The zone a person picks (kept in their session) applies to every page, the admin and pages
that never asked for it included; the API answers in the site's zone whatever session comes
along with a token; after a request the zone is the site's again."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api_app.models import ApiToken
from api_app.tokens import create_token
from containers_app.models import Container
from portal.timezones import TIMEZONE_SESSION_KEY
from sessions_app.models import Account

pytestmark = pytest.mark.django_db

NOON_UTC = datetime(2026, 12, 7, 12, 0, tzinfo=ZoneInfo("UTC"))  # 07:00 in New York, 04:00 here


def in_zone(user: Any, zone: str, **headers: str) -> Client:
    client = Client(**headers)
    client.force_login(user)
    session = client.session
    session[TIMEZONE_SESSION_KEY] = zone
    session.save()
    return client


def test_the_tokens_page_shows_times_in_the_chosen_zone(alice: Account) -> None:
    token, _ = create_token(user=alice.user, name="TMS")
    ApiToken.objects.filter(pk=token.pk).update(created_at=NOON_UTC, last_used_at=NOON_UTC)
    url = reverse("integrations:tokens")

    html = in_zone(alice.user, "America/New_York").get(url).content.decode()
    assert html.count("2026-12-07 07:00") == 2 and "2026-12-07 04:00" not in html

    html = in_zone(alice.user, "UTC").get(url).content.decode()
    assert html.count("2026-12-07 12:00") == 2


def test_an_admin_change_list_shows_times_in_the_chosen_zone(staff: Any, alice: Account) -> None:
    token, _ = create_token(user=alice.user, name="TMS")
    ApiToken.objects.filter(pk=token.pk).update(created_at=NOON_UTC)
    url = reverse("admin:api_app_apitoken_changelist")

    html = in_zone(staff, "America/New_York").get(url).content.decode()
    assert "Dec. 7, 2026, 7 a.m." in html and "4 a.m." not in html

    client = Client()
    client.force_login(staff)
    assert "Dec. 7, 2026, 4 a.m." in client.get(url).content.decode()  # no choice: the site's


def test_the_api_answers_in_the_site_zone_whatever_session_comes_along(alice: Account) -> None:
    Container.objects.create(account=alice, container_number="MSCU1234567", check_seen_at=NOON_UTC)
    bearer = f"Bearer {create_token(user=alice.user, name='TMS')[1]}"
    with_session = in_zone(alice.user, "America/New_York", HTTP_AUTHORIZATION=bearer)
    without = Client(HTTP_AUTHORIZATION=bearer)

    answers = [c.get("/api/v1/containers/").json()["results"] for c in (with_session, without)]
    assert answers[0] == answers[1]
    assert answers[0][0]["check_seen_at"] == "2026-12-07T04:00:00-08:00"


def test_after_a_page_the_zone_is_the_site_zone_again(alice: Account) -> None:
    client = in_zone(alice.user, "America/New_York")
    assert client.get(reverse("containers:board")).status_code == 200
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE
