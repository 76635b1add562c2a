"""The pages where a person manages their API tokens and webhook endpoints.

A new token, and a new or rotated signing secret, are shown in the answer to the POST that
made them and nowhere else (not in a message: messages travel in a cookie), with
`Cache-Control: no-store`. Each person sees and changes only their own.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from notifications import endpoints as webhook_endpoints
from notifications.models import Delivery, WebhookEndpoint
from portal.http import AuthenticatedHttpRequest

from .forms import TokenForm, WebhookForm
from .models import ApiToken
from .tokens import create_token, revoke_token

DELIVERIES_PER_PAGE = 50


def _shown_once(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


# -- tokens --------------------------------------------------------------------------------------


def _tokens_page(
    request: AuthenticatedHttpRequest, form: TokenForm, new: str = "", status: int = 200
) -> Any:
    context = {
        "form": form,
        "tokens": ApiToken.objects.filter(user=request.user),
        "new_token": new,
        "api_base": request.build_absolute_uri(reverse("api:query-list")).rsplit("queries/", 1)[0],
        "docs_url": reverse("api:docs"),
    }
    return render(request, "api/tokens.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def token_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _tokens_page(request, TokenForm())
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token, plain = create_token(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"],
            )
        except ValidationError as error:
            for name, problems in error.message_dict.items():
                form.add_error(name if name in form.fields else None, problems)
        else:
            return _shown_once(_tokens_page(request, TokenForm(), new=plain))
    return _tokens_page(request, form, status=400)


@require_POST
@login_required
def token_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.filter(user=request.user), pk=pk)
    if revoke_token(token=token):
        messages.success(request, f"The token “{token.name}” is revoked: it no longer works.")
    else:
        messages.info(request, f"The token “{token.name}” was already revoked.")
    return redirect("integrations:tokens")


# -- webhooks ------------------------------------------------------------------------------------


def _own_endpoint(request: AuthenticatedHttpRequest, pk: int) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint.objects.filter(user=request.user), pk=pk)


def _webhooks_page(
    request: AuthenticatedHttpRequest,
    form: WebhookForm,
    *,
    created: Any = None,
    secret: str = "",
    status=200,
) -> HttpResponse:
    context = {
        "form": form,
        "endpoints": WebhookEndpoint.objects.filter(user=request.user).defer("secret"),
        "created": created,
        "secret": secret,
    }
    return render(request, "api/webhooks.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def webhook_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _webhooks_page(request, WebhookForm())
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            endpoint, secret = webhook_endpoints.create_endpoint(
                user=request.user,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            return _shown_once(
                _webhooks_page(request, WebhookForm(), created=endpoint, secret=secret)
            )
    return _webhooks_page(request, form, status=400)


def _detail_page(
    request: AuthenticatedHttpRequest,
    endpoint: WebhookEndpoint,
    form: WebhookForm,
    *,
    secret: str = "",
    status: int = 200,
) -> HttpResponse:
    deliveries = (
        Delivery.objects.webhooks().filter(endpoint=endpoint).prefetch_related("attempt_log")
    )
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"endpoint": endpoint, "form": form, "page_obj": page, "secret": secret}
    return render(request, "api/webhook_detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def webhook_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    endpoint = _own_endpoint(request, pk)
    if request.method != "POST":
        initial = {"url": endpoint.url, "description": endpoint.description}
        return _detail_page(
            request, endpoint, WebhookForm(initial={**initial, "events": endpoint.events})
        )
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook_endpoints.update_endpoint(endpoint=endpoint, **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "The endpoint is saved.")
            return redirect("integrations:webhook", pk=endpoint.pk)
    return _detail_page(request, endpoint, form, status=400)


@require_POST
@login_required
def webhook_test(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    endpoint = _own_endpoint(request, pk)
    try:
        webhook_endpoints.send_test_event(endpoint=endpoint)
    except webhook_endpoints.TestEventTooSoon as refused:
        messages.error(request, str(refused))
        initial = {"url": endpoint.url, "description": endpoint.description}
        form = WebhookForm(initial={**initial, "events": endpoint.events})
        response = _detail_page(request, endpoint, form, status=429)
        response["Retry-After"] = str(refused.wait_seconds)
        return response
    messages.success(
        request, "A test event is on its way: reload in a moment to see how it went below."
    )
    return redirect("integrations:webhook", pk=endpoint.pk)


@require_POST
@login_required
def webhook_enable(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    endpoint = _own_endpoint(request, pk)
    enable = request.POST.get("enabled") == "1"
    webhook_endpoints.update_endpoint(endpoint=endpoint, enabled=enable)
    messages.success(request, "The endpoint is enabled." if enable else "The endpoint is disabled.")
    return redirect("integrations:webhook", pk=endpoint.pk)


@require_POST
@login_required
def webhook_rotate(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    endpoint = _own_endpoint(request, pk)
    secret = webhook_endpoints.rotate_secret(endpoint=endpoint)
    initial = {"url": endpoint.url, "description": endpoint.description, "events": endpoint.events}
    return _shown_once(_detail_page(request, endpoint, WebhookForm(initial=initial), secret=secret))


@require_POST
@login_required
def webhook_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    endpoint = _own_endpoint(request, pk)
    url = endpoint.url
    endpoint.delete()
    messages.success(request, f"The endpoint {url} is deleted.")
    return redirect("integrations:webhooks")
