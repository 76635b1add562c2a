"""The OpenAPI schema is valid and names every endpoint; the docs page needs nothing from
another site and runs under the strict Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def api_routes() -> dict[str, set[str]]:
    """Each /api/v1/ route (as OpenAPI writes paths) with the methods its view answers."""
    routes: dict[str, set[str]] = {}
    for pattern in get_resolver().url_patterns:
        if str(pattern.pattern) != "api/":
            continue
        for inner in pattern.url_patterns:
            if not isinstance(inner, URLPattern) or not str(inner.pattern).startswith("v1/"):
                continue
            view = inner.callback.view_class
            path = "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(inner.pattern))
            # drf-spectacular names a primary key "id" (SCHEMA_COERCE_PATH_PK).
            path = path.replace("{pk}", "{id}")
            routes[path] = {m for m in HTTP_METHODS if hasattr(view, m)}
    return routes


def test_the_schema_is_valid_openapi_and_names_every_endpoint() -> None:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["openapi"].startswith("3.")
    routes = api_routes()
    assert len(routes) >= 15
    assert {path: set(spec["paths"].get(path, {})) & HTTP_METHODS for path in routes} == routes
    assert set(spec["paths"]) == set(routes)
    assert spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    # Every operation documents the error shape for a missing token.
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ref = operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (path, method)
    assert set(spec["components"]["schemas"]["EventTypeEnum"]["enum"]) >= {
        "query.finished",
        "container.lfd_changed",
    }


def test_the_boards_filters_are_the_board_pages_each_described() -> None:
    from api_app.serializers.containers import BOARD_PARAMETER_TEXT
    from containers_app.forms import BoardFilterForm

    spec = Client().get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/containers/"]["get"]["parameters"]}
    assert set(parameters) == {*BoardFilterForm.base_fields, "sort", "page", "page_size"}
    assert set(BOARD_PARAMETER_TEXT) == set(BoardFilterForm.base_fields)
    assert all(p.get("description") for p in parameters.values())
    assert parameters["holds"]["schema"]["enum"] == ["no", "yes"]


def test_the_docs_page_is_served_without_a_cdn_or_inline_code() -> None:
    client = Client()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<style" not in html
    sources = re.findall(r'<script src="([^"]+)"', html)
    assert len(sources) == 3 and len(re.findall(r"<script", html)) == 3
    links = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert all(link.startswith("/") for link in links), links
    for link in links:
        served = client.get(link.replace("&amp;", "&"))
        assert served.status_code == 200, link
    script = client.get(sources[-1].replace("&amp;", "&"))
    assert script["Content-Type"].startswith("application/javascript")
    assert b"/api/schema/" in script.content
