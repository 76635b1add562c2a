"""What every endpoint shares: the answer type, the request context (with the glitch the call
may meet), debug bundles, and the runner that resolves the session block, drives the browser
and turns a browser lost mid-call or a collision into the endpoint's own failure text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import data, glitches, texts
from .state import ApiError, BrowserGone, Call, HtmlCrash, Session, SimState

HTML_PAGES = {
    404: (
        "404 Not Found",
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again.",
    ),
    405: (
        "405 Method Not Allowed",
        "Method Not Allowed",
        "The method is not allowed for the requested URL.",
    ),
    500: (
        "500 Internal Server Error",
        "Internal Server Error",
        "The server encountered an internal error and was unable to complete your request. "
        "Either the server is overloaded or there is an error in the application.",
    ),
}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: dict[str, Any], status: int = 200) -> Response:
        return cls(status, json.dumps(payload).encode())

    @classmethod
    def html(cls, status: int) -> Response:
        """The page Flask/Werkzeug answers for an unknown route, a wrong method, a crash."""
        title, heading, text = HTML_PAGES[status]
        page = (
            f"<!doctype html>\n<html lang=en>\n<title>{title}</title>\n"
            f"<h1>{heading}</h1>\n<p>{text}</p>\n"
        )
        return cls(status, page.encode(), "text/html; charset=utf-8")

    def copy(self) -> Response:
        return Response(self.status, self.body, self.content_type, dict(self.headers))


# A failure builder: the endpoint's error for an exception (its text given) raised by the
# browser at the step the call is at.
Failure = Callable[["Context", str], ApiError]


@dataclass
class Context:
    state: SimState
    body: dict[str, Any]
    call: Call
    base_url: str
    session: Session | None = None
    is_new: bool = False
    # Where the call is, for the failure text of a browser lost or disturbed there.
    stage: str = "navigation"

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"

    def glitch(self, kind: str, step: str = "") -> glitches.Glitch | None:
        """The call's glitch, if it is of ``kind`` and strikes here (at ``step``, when the
        glitch names one); it fires once and is counted."""
        glitch = self.call.glitch
        if glitch is None or glitch.fired or glitch.kind != kind:
            return None
        if glitch.step and glitch.step != step:
            return None
        glitch.fired = True
        if not glitch.exception:
            glitch.exception = texts.PAGE_EXCEPTIONS[0]
        self.state.count_glitch(self.call.endpoint, kind)
        return glitch

    def sleep(self, simulated: float) -> None:
        assert self.session is not None
        self.state.sleep(simulated, self.session)


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean option as the real server reads it: the value's truth, absent = default."""
    if name not in body:
        return default
    return bool(body.get(name))


def debug_bundle(ctx: Context, name: Callable[[str], str], *, absolute: bool) -> str:
    """Build a screenshots zip (costs debug_bundle) under ``name(<stamp>)``; its URL, absolute
    or relative as the endpoint writes it."""
    state = ctx.state
    state.sleep(state.config.latency("debug_bundle"), None)
    state.count("debug_bundles")
    shot = data.png_bytes(32, 16, data.stable_int(ctx.call.id, ctx.call.endpoint))
    stored = state.store_file(
        name, data.zip_bytes({"screenshots/screenshot_1.png": shot}), data.ZIP_CONTENT_TYPE
    )
    return ctx.file_url(stored) if absolute else f"/files/{stored}"


def failure_bundle(ctx: Context) -> str:
    """get_containers zips what it has on every failure, debug or not (relative URL)."""
    assert ctx.session is not None
    sid = ctx.session.session_id
    stored = ctx.state.store_file(
        lambda ts: f"{sid}_{ts}_FAILED.zip",
        data.zip_bytes({f"{sid}/error.txt": b"Step: Download Excel"}),
        data.ZIP_CONTENT_TYPE,
    )
    return f"/files/{stored}"


def stamp() -> str:
    return time.strftime("%Y%m%d_%H%M%S")


def collided(ctx: Context, failure: Failure) -> Response | None:
    """The garbage a call gets when it drove a browser another call was already driving: the
    earlier call's answer when both are the same endpoint, else the endpoint's failure with a
    stale-element exception. None when the call drove the browser alone."""
    earlier = ctx.call.collided_with
    if earlier is None:
        return None
    if earlier.endpoint == ctx.call.endpoint:
        ctx.state.wait_for_call(earlier)
        if isinstance(earlier.response, Response):
            ctx.call.forced_outcome = "collision"
            return earlier.response.copy()
    error = failure(ctx, texts.STALE_ELEMENT)
    error.outcome = "collision"
    raise error


def run_operation(
    ctx: Context,
    work: Callable[[Session], dict[str, Any] | Response],
    failure: Failure,
) -> Response:
    """Resolve the session block, then run ``work`` on that browser. A browser lost mid-call
    fails with ``failure`` at the step the call was at; so does the later of two calls on one
    browser (unless both are the same endpoint: then it gets the earlier answer)."""
    state, call = ctx.state, ctx.call
    session, is_new = state.acquire(ctx.body, call)
    ctx.session, ctx.is_new = session, is_new
    try:
        try:
            if call.page_return:
                state.step("page_return", session)
            if ctx.glitch("html500"):
                raise HtmlCrash("glitch")
            try:
                result = work(session)
            except ApiError:
                # A call that shared its browser gets the collision's garbage, not its own end.
                if call.collided_with is None:
                    raise
                result = {}
        except BrowserGone as gone:
            error = failure(ctx, gone.text)
            error.outcome = gone.outcome
            raise error from None
        garbage = collided(ctx, failure)
        if garbage is not None:
            return garbage
        if isinstance(result, Response):
            return result
        payload = {"success": True, "session_id": session.session_id, "is_new_session": is_new}
        payload.update(result)
        if call.answer_fields:
            payload.update(call.answer_fields)
        return Response.json(payload)
    finally:
        state.release(session, call)


__all__ = [
    "ApiError",
    "BrowserGone",
    "Context",
    "Failure",
    "HtmlCrash",
    "Response",
    "collided",
    "debug_bundle",
    "failure_bundle",
    "flag",
    "run_operation",
    "stamp",
]
