"""The one place webhook HTTP leaves the portal: a POST to a registered URL, to public
addresses only, with no redirect followed.

The host is resolved here and every address it resolves to is checked (loopback, private,
link-local, multicast, reserved and unspecified ones are refused unless
WEBHOOK_ALLOW_PRIVATE_ADDRESSES is on); the request then goes to the address that was checked,
with the host name kept for the `Host` header, SNI and certificate verification, so a second
DNS answer (rebinding) cannot send it elsewhere. A redirect is an answer like any other
non-2xx: it is recorded, never followed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

RESPONSE_KEEP = 200


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
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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


def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to, each checked; the first is used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AddressRefused(f"{host} could not be resolved ({exc.strerror}).") from None
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
    try:
        check_literal_host(host)
        address = resolve(host, port)[0]
    except AddressRefused as exc:
        return answer(None, str(exc))
    timeout = urllib3.Timeout(
        connect=min(5.0, settings.WEBHOOK_TIMEOUT_SECONDS), read=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    pool: urllib3.HTTPConnectionPool
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
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
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
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
            },
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            text = response.read(RESPONSE_KEEP, decode_content=False).decode(
                "utf-8", errors="replace"
            )
        finally:
            response.release_conn()
    except urllib3.exceptions.TimeoutError:
        return answer(None, f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s.")
    except urllib3.exceptions.SSLError as exc:
        return answer(None, f"TLS failed: {exc.__class__.__name__}.")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return answer(None, f"Could not connect: {reason.__class__.__name__}.")
    finally:
        pool.close()
    status = response.status
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error += " (a redirect: not followed; register the final URL)"
    return answer(status, error, text)
