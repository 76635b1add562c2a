"""The portal's URLs (and its error handlers) plus a page that crashes, for the 500 page."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from emodal_portal.urls import *  # noqa: F403  (handler400 … handler500 too)
from emodal_portal.urls import urlpatterns as portal_urlpatterns


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("crash/", crash), *portal_urlpatterns]
