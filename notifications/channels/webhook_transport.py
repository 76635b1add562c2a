"""The one place webhook HTTP leaves the portal: a POST to a registered URL, to public
addresses only, with no redirect followed, ended by a deadline.

The host is resolved here and every address it resolves to is checked (loopback, private,
link-local, multicast, reserved and unspecified ones are refused unless
WEBHOOK_ALLOW_PRIVATE_ADDRESSES is on); an IPv6 address that carries an IPv4 one
(IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
`2002::/16`) is judged by that IPv4 address, and the forms whose IPv4 address cannot be told
(local NAT64 `64:ff9b:1::/48`) or that tunnel (Teredo `2001::/32`) are refused. The request
then goes to the address that was checked, with the host name kept for the `Host` header, SNI
and certificate verification, so a second DNS answer (rebinding) cannot send it elsewhere. A
redirect is an answer like any other non-2xx: it is recorded, never followed.

An attempt (resolving the name, connecting, sending, the receiver's status and headers)
ends within WEBHOOK_TIMEOUT_SECONDS however slowly the receiver answers
(`emodal_portal.outbound.Deadline`); of its body, only the first RESPONSE_KEEP bytes (decoded)
are read, for the delivery log. A refused connection or a missing route is logged as such.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import certifi
import urllib3
from django.conf import settings

from emodal_portal.outbound import (
    Deadline,
    EncodingRefused,
    WatchedHTTPConnectionPool,
    WatchedHTTPSConnectionPool,
    read_capped,
)

RESPONSE_KEEP = 200

# IPv6 ranges that carry an IPv4 address (judged by it), or that cannot be judged at all.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
UNJUDGEABLE = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local NAT64: the IPv4 part's place varies
    ipaddress.IPv6Network("2001::/32"),  # Teredo: a tunnel through another host
)

# Why a connection failed, in the delivery log's words.
CONNECT_ERRORS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRNOTAVAIL: "address not available from here",
    errno.ECONNRESET: "connection reset",
}


class AddressRefused(Exception):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str
    body: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def address_allowed(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in UNJUDGEABLE):
            return False
        carried = embedded_ipv4(ip)
        if carried is not None:
            ip = carried
    return ip.is_global and not ip.is_multicast


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (and reaches, where it is routed), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_literal_host(host: str) -> None:
    """Refuse a URL whose host is a literal address webhooks may not reach (checked when an
    endpoint is registered; names are checked on every delivery)."""
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise AddressRefused(f"{host} is this machine.") from None
        return
    if not address_allowed(str(literal)):
        raise AddressRefused(f"{host} is not a public address.")


def resolve(host: str, port: int, *, within: float | None = None) -> list[str]:
    """Every address the host resolves to, each checked; the first is used. With `within`,
    a resolver that has not answered in that many seconds fails the attempt (its lookup ends
    in the background: the worker does not wait for it)."""
    try:
        infos = _lookup(host, port, within)
    except socket.gaierror as exc:
        raise AddressRefused(f"{host} could not be resolved ({exc.strerror}).") from None
    except TimeoutError:
        raise AddressRefused(f"{host} could not be resolved within {within:g} s.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise AddressRefused(f"{host} resolves to no address.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        refused = [a for a in addresses if not address_allowed(a)]
        if refused:
            raise AddressRefused(
                f"{host} resolves to {', '.join(refused)}, not a public address: refused."
            )
    return addresses


def _lookup(host: str, port: int, within: float | None) -> list[tuple]:
    if within is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[str, object] = {}

    def look() -> None:
        try:
            found["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            found["error"] = exc

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(within)
    if worker.is_alive():
        raise TimeoutError
    if "error" in found:
        raise found["error"]  # type: ignore[misc]
    return found["infos"]  # type: ignore[return-value]


def connect_error(exc: BaseException) -> str:
    """Why a connection failed, in words (never a timeout when the network said otherwise)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.errno in CONNECT_ERRORS:
        return f"Could not connect: {CONNECT_ERRORS[cause.errno]}."
    if isinstance(cause, OSError) and cause.strerror:
        return f"Could not connect: {cause.strerror.lower()}."
    return f"Could not connect: {type(cause or exc).__name__}."


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    started = time.monotonic()

    def answer(status: int | None, error: str = "", text: str = "") -> Answer:
        return Answer(status, error[:255], text[:RESPONSE_KEEP], time.monotonic() - started)

    parts = urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return answer(None, "Not an http(s) URL.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return answer(None, "The URL's port is not a number.")
    seconds = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    with Deadline(seconds) as deadline:
        try:
            check_literal_host(host)
            address = resolve(host, port, within=deadline.remaining())[0]
        except AddressRefused as exc:
            return answer(None, str(exc))
        return _send(deadline, scheme, host, port, address, parts, body, headers, answer)


def _send(
    deadline: Deadline,
    scheme: str,
    host: str,
    port: int,
    address: str,
    parts: SplitResult,
    body: bytes,
    headers: dict[str, str],
    answer: Callable[..., Answer],
) -> Answer:
    too_slow = f"No complete answer within {deadline.seconds:g} s."
    left = deadline.remaining()
    timeout = urllib3.Timeout(connect=min(5.0, left), read=left)
    pool: urllib3.HTTPConnectionPool
    if scheme == "https":
        pool = WatchedHTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            server_hostname=host,
            assert_hostname=host,
        )
    else:
        pool = WatchedHTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers={
                **headers,
                "Host": host if default_port else f"{host}:{port}",
                "Content-Type": "application/json",
                "User-Agent": "E-Modal-Portal-Webhooks/1",
                "Accept-Encoding": "identity",
            },
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        if deadline.passed:  # its headers may have been cut short: not an answer
            response.close()
            return answer(None, too_slow)
        kept = bytearray()
        try:
            # What the delivery log keeps, and no more: the rest is never read.
            read_capped(response, RESPONSE_KEEP, truncate=True, sink=kept.extend)
        except EncodingRefused:
            kept[:] = b"(an answer compressed in a way the portal does not read)"
        except (urllib3.exceptions.HTTPError, OSError):
            pass  # the status is the answer; its body was cut short: what came is kept
        finally:
            response.close()
        text = kept.decode("utf-8", errors="replace")
    except urllib3.exceptions.NewConnectionError as exc:
        return answer(None, connect_error(exc))
    except urllib3.exceptions.SSLError as exc:
        if deadline.passed:
            return answer(None, too_slow)
        return answer(None, f"TLS failed: {exc.__class__.__name__}.")
    except urllib3.exceptions.ConnectTimeoutError:
        return answer(
            None,
            f"Could not connect within {timeout.connect_timeout:g} s (no answer to the "
            "connection: an address that drops it, or no route).",
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if deadline.passed:
            return answer(None, too_slow)
        reason = getattr(exc, "reason", None) or exc
        return answer(None, f"Could not connect: {reason.__class__.__name__}.")
    finally:
        pool.close()
    status = response.status
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error += " (a redirect: not followed; register the final URL)"
    return answer(status, error, text)
