"""The portal's error pages: Django's handler400, handler403, handler404 and handler500 (set in
`emodal_portal/urls.py`). The usual pages (templates/400.html … 500.html), except under a path
whose owner registered answers of its own (the API answers JSON under /api/, registered when its
app is ready), so that this module knows no app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.views import defaults

ErrorView = Callable[[HttpRequest, Exception], HttpResponse]


@dataclass(frozen=True)
class ErrorAnswers:
    """How a part of the site answers its errors instead of the HTML pages."""

    bad_request: ErrorView
    permission_denied: ErrorView
    page_not_found: ErrorView
    server_error: Callable[[HttpRequest], HttpResponse]


_answers: dict[str, ErrorAnswers] = {}


def answer_errors_under(prefix: str, answers: ErrorAnswers) -> None:
    """Have the paths that start with `prefix` answer their errors with `answers`."""
    _answers[prefix] = answers


def answers_for(request: HttpRequest) -> ErrorAnswers | None:
    return next(
        (answers for prefix, answers in _answers.items() if request.path.startswith(prefix)),
        None,
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    answers = answers_for(request)
    if answers is not None:
        return answers.bad_request(request, exception)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    answers = answers_for(request)
    if answers is not None:
        return answers.permission_denied(request, exception)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    answers = answers_for(request)
    if answers is not None:
        return answers.page_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    answers = answers_for(request)
    if answers is not None:
        return answers.server_error(request)
    return defaults.server_error(request)
