"""HTTP to URLs a tenant typed (iCal feeds, push APIs, webhooks), refusing internal targets.

Invariant: no connection is opened to an address that is private, loopback,
link-local, reserved, multicast or unspecified (loopback only with
``CHANNEL_FETCH_ALLOW_LOOPBACK``). The check runs where the socket is created,
on every address DNS returned, for every hop: redirects are followed by hand
(at most ``MAX_REDIRECTS``) and each one goes through the same connection
class, so neither DNS rebinding nor a redirect reaches an internal service.
Bodies are streamed with a byte cap; the whole exchange (connect, send, every
redirect, the whole answer) has a wall-clock deadline, enforced on the sockets
themselves (``_ExchangeDeadline``), so a server that trickles bytes is cut at the
deadline, not at the task's time limit.
Environment proxies are ignored (they would bypass the check).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from pms.pipeline.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
USER_AGENT = "PMS-ChannelSync/1.0"


class FetchRefused(PermanentError):
    """The target is not allowed (internal address, bad scheme, too many redirects)."""


class FetchTooLarge(PermanentError):
    pass


class FetchHTTPError(PermanentError):
    """A 4xx answer other than 429: retrying the same request will not help."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class FetchTransientError(TransientError):
    """Timeout, connection failure, 5xx or 429 (with the server's Retry-After, if any)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


# Global by Python's tables, but a way to reach an internal host: 6to4 embeds an IPv4
# address (a relay can deliver to 2002:0a00:0001:: = 10.0.0.1), site-local is a
# deprecated private range still routed inside some networks.
REFUSED_NETWORKS = (
    (ipaddress.ip_network("2002::/16"), "6to4"),
    (ipaddress.ip_network("fec0::/10"), "site-local"),
)
# What a refused address is reported as. The reason (and the address) is only logged:
# a channel's stored error must not tell a tenant what an internal name resolves to.
REFUSED_ADDRESS_MESSAGE = "refused: not a public address"


def address_refusal(address: str, *, allow_loopback: bool) -> str | None:
    """Why ``address`` may not be contacted, or None if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    for network, name in REFUSED_NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    for attribute in (
        "is_private",
        "is_link_local",
        "is_site_local",
        "is_multicast",
        "is_reserved",
    ):
        if getattr(ip, attribute, False):
            return attribute.removeprefix("is_").replace("_", "-")
    if ip.is_unspecified or not ip.is_global:
        return "not globally routable"
    return None


def vetted_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """Resolve ``host``; refuse if ANY address is internal. Returns getaddrinfo entries."""
    allow_loopback = settings.CHANNEL_FETCH_ALLOW_LOOPBACK
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchTransientError(f"cannot resolve {host}: {exc}") from exc
    if not infos:
        raise FetchTransientError(f"{host} resolves to no address")
    for info in infos:
        address = str(info[4][0])  # sockaddr[0]: the address text (IPv4 and IPv6 alike)
        reason = address_refusal(address, allow_loopback=allow_loopback)
        if reason:
            logger.info("refused %s: resolves to %s (%s)", host, address, reason)
            raise FetchRefused(REFUSED_ADDRESS_MESSAGE)
    return infos


class _ExchangeDeadline:
    """The wall-clock end of one exchange (connect, send, read of the whole answer).

    Socket timeouts bound each wait, not their sum: a server that sends one byte
    every few seconds never trips them, and only the task's time limit would stop
    it. So at the deadline a timer thread shuts down every socket the exchange
    opened (``shutdown`` wakes a read blocked in another thread, under TLS too),
    and whatever that read then raises or returns is reported as a timeout.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        # Duplicates of the exchange's sockets: shutting one down ends the connection
        # even after TLS has taken over the original socket object, and an fd number
        # we hold cannot be reused by an unrelated socket meanwhile.
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[_ExchangeDeadline | None] | None = None

    def __enter__(self) -> _ExchangeDeadline:
        self._token = _current_exchange.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self._token is not None:
            _current_exchange.reset(self._token)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError("the exchange's deadline has passed")
            self._sockets.append(sock.dup())

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                # Not connected (yet, or any more): nothing to cut.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def timeout_error(self) -> FetchTransientError:
        return FetchTransientError(f"timed out: the whole exchange is limited to {self.seconds:g}s")


_current_exchange: contextvars.ContextVar[_ExchangeDeadline | None] = contextvars.ContextVar(
    "channelsync_fetch_exchange", default=None
)


def _connect_vetted(
    host: str, port: int, timeout: Any, source_address: Any = None
) -> socket.socket:
    last_error: OSError | None = None
    exchange = _current_exchange.get()
    for family, socktype, proto, _name, sockaddr in vetted_addresses(host, port):
        sock = socket.socket(family, socktype, proto)
        try:
            if exchange is not None:
                exchange.watch(sock)
            if isinstance(timeout, int | float):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            # Connect to the address we vetted, not to a second lookup's answer.
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last_error = exc
            sock.close()
    raise last_error or OSError(f"could not connect to {host}")


class _VettedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_vetted(self._dns_host, self.port, self.timeout, self.source_address)


class _VettedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_vetted(self._dns_host, self.port, self.timeout, self.source_address)


class _VettedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


class _VettedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _VettedHTTPPool,
            "https": _VettedHTTPSPool,
        }


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # an environment proxy would connect on our behalf, unchecked
    adapter = _VettedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class FetchResult:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes = b""
    redirects: list[str] = field(default_factory=list)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _check_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused(f"refused: only http(s) URLs are fetched, not {url[:200]!r}")
    if parts.username or parts.password:
        raise FetchRefused("refused: credentials in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # "Port out of range 0-65535", a non-numeric port
        raise FetchRefused(f"refused: invalid port in {url[:200]!r}") from exc
    vetted_addresses(parts.hostname, port)  # a clear error before any connection
    return parts.hostname, port


# Sent only to the origin the caller addressed: a redirect to another host
# (a compromised or hostile feed) must not collect the channel's credentials.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Methods whose redirect may be followed: following a POST's 301/302/303 turns
# it into a GET, and a 200 from that GET is not a delivery.
FOLLOW_REDIRECT_METHODS = frozenset({"GET", "HEAD"})


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def safe_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
) -> FetchResult:
    """One HTTP exchange under the guard. Raises the Fetch* errors above.

    429, 5xx, timeouts and connection failures are FetchTransientError; other
    4xx are FetchHTTPError; 2xx and 304 are returned. Redirects are followed for
    GET and HEAD only (credential headers are dropped once a hop leaves the
    first URL's origin); any other 3xx, and every 3xx answering a POST, is a
    FetchHTTPError naming the redirect.
    """
    budget = timeout if timeout is not None else settings.CHANNEL_FETCH_TIMEOUT
    with _ExchangeDeadline(budget) as exchange:
        try:
            result = _exchange(
                method,
                url,
                headers=headers,
                data=data,
                cap=max_bytes if max_bytes is not None else settings.CHANNEL_FETCH_MAX_BYTES,
                exchange=exchange,
            )
        except (FetchRefused, FetchTooLarge):
            raise
        except Exception as exc:
            # A read cut by the deadline surfaces as a reset or an incomplete answer.
            if exchange.expired:
                raise exchange.timeout_error() from exc
            raise
        if exchange.expired:  # the cut looked like the end of the body
            raise exchange.timeout_error()
        return result


def _exchange(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None,
    data: bytes | None,
    cap: int,
    exchange: _ExchangeDeadline,
) -> FetchResult:
    request_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    redirects: list[str] = []
    method = method.upper()
    first_origin: tuple[str, str, int] | None = None
    with _session() as session:
        current = url
        while True:
            _check_url(current)  # also validates the port _origin reads
            if first_origin is None:
                first_origin = _origin(current)
            elif _origin(current) != first_origin:
                request_headers = {
                    name: value
                    for name, value in request_headers.items()
                    if name.lower() not in CREDENTIAL_HEADERS
                }
            remaining = exchange.remaining()
            if remaining <= 0:
                raise exchange.timeout_error()
            try:
                response = session.request(
                    method,
                    current,
                    headers=request_headers,
                    data=data,
                    allow_redirects=False,
                    stream=True,
                    timeout=(min(remaining, 10.0), remaining),
                )
            except FetchRefused:
                raise
            except requests.exceptions.ConnectionError as exc:
                refused = _refusal_in(exc)
                if refused is not None:
                    raise refused from exc
                raise FetchTransientError(f"connection failed: {exc}") from exc
            except requests.exceptions.Timeout as exc:
                raise FetchTransientError(f"timed out: {exc}") from exc
            except requests.exceptions.RequestException as exc:
                raise FetchTransientError(f"request failed: {exc}") from exc
            with response:
                status = response.status_code
                if response.is_redirect and method in FOLLOW_REDIRECT_METHODS:
                    if len(redirects) >= MAX_REDIRECTS:
                        raise FetchRefused(f"refused: more than {MAX_REDIRECTS} redirects")
                    current = urljoin(current, response.headers.get("Location", ""))
                    redirects.append(current)
                    continue
                if 300 <= status < 400 and status != 304:
                    location = response.headers.get("Location", "")[:300]
                    raise FetchHTTPError(
                        f"HTTP {status} redirect from {urlsplit(current).hostname} "
                        f"to {location or '(no Location)'}; a {method} is not redirected: "
                        "configure the final URL",
                        status=status,
                    )
                if status == 429 or status >= 500:
                    raise FetchTransientError(
                        f"HTTP {status} from {urlsplit(current).hostname}",
                        status=status,
                        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                    )
                if status >= 400:
                    raise FetchHTTPError(
                        f"HTTP {status} from {urlsplit(current).hostname}", status=status
                    )
                body = _read_capped(response, cap=cap, exchange=exchange)
                return FetchResult(
                    url=current,
                    status=status,
                    headers=dict(response.headers),
                    body=body,
                    redirects=redirects,
                )


def _refusal_in(exc: BaseException) -> FetchRefused | None:
    # urllib3 wraps what our connection class raised; dig the refusal out.
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FetchRefused):
            return current
        stack.extend([current.__cause__, current.__context__])
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return None


def _read_capped(response: requests.Response, *, cap: int, exchange: _ExchangeDeadline) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise FetchTooLarge(f"response of {declared} bytes is over the {cap}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > cap:
                raise FetchTooLarge(f"response is over the {cap}-byte limit")
            if exchange.expired or exchange.remaining() <= 0:
                raise exchange.timeout_error()
            chunks.append(chunk)
    except requests.exceptions.RequestException as exc:
        raise FetchTransientError(f"reading the response failed: {exc}") from exc
    return b"".join(chunks)
