"""The alert settings page (/containers/alerts/): what a person wants to hear of, and the last
alerts they were sent. A POST with CSRF; the form shapes input."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal.http import AuthenticatedHttpRequest
from portal.timezones import user_zone

from .forms import AlertPreferenceForm
from .models import Delivery, preferences_for


@require_http_methods(["GET", "POST"])
@login_required
def alert_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    preference = preferences_for(request.user)
    form = AlertPreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your alert settings are saved.")
        return redirect("notifications:alerts")
    recent = Delivery.objects.emails().filter(user=request.user).select_related("query")[:20]
    return render(
        request,
        "notifications/alerts.html",
        {"form": form, "recent": recent, "zone_name": str(user_zone(request))},
        status=400 if request.method == "POST" else 200,
    )
