"""Bounds and timeouts on the front's connections that a client without the token cannot
exhaust (docs/server.md, "Limits and timeouts").

uvicorn keeps a connection for as long as its client does: one that never sends a
request, or sends its headers a byte at a time, was held with no time limit, and enough
of them filled uvicorn's connection limit, after which everyone - token holders too - got
a plain-text 503. Here instead:

- a connection must deliver a request's line and headers within `header_timeout` of its
  first byte (of being opened, for a new one), and at most `max_head_bytes` of them;
- between requests it may stay idle `idle_timeout`;
- at most `max_waiting` connections may wait for a request (idle, or headers under way):
  one more closes the one that has waited longest, so a flood of idle or half-sent
  connections costs a real request no more than its own round trip;
- requests being served (behind the token gate) are bounded apart (RequestLimit: JSON
  503 beyond it); a request without the token is answered at once and its connection
  closed (auth.py), so it never holds a place;
- unacknowledged data is given up after `send_timeout` (TCP_USER_TIMEOUT, Linux): a
  client that vanished mid-download does not hold its connection for the kernel's ~15 min.

A request's body is the application's to time (api.read_body: `body_read_timeout` per
read). The guard wraps uvicorn's own protocol object (composition, through the public
Config(http=...) option) and follows each request through an ASGI middleware; the
request's client address (host, port) names its connection.
"""

import asyncio
import json
import logging
import math
import socket
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus

log = logging.getLogger("image_to_3d.server")


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0  # s from a request's first byte to the end of its headers
    idle_timeout: float = 30.0  # s a kept-alive connection may wait for its next request
    max_waiting: int = 256  # connections waiting for a request, at most
    max_head_bytes: int = 64 << 10  # a request's line and headers
    body_read_timeout: float = 15.0  # s the server waits for each part of a request's body
    upload_wait: float = 30.0  # s a body waits for one of the upload slots before "busy"
    max_requests: int = 320  # requests being served at once (token holders'), beyond it "busy"
    send_timeout: float = 60.0  # s sent data may stay unacknowledged before the connection is dropped


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


def raw_response(status: int, code: str, message: str) -> bytes:
    """A whole JSON error response, for answers given before any request reaches the app."""
    body = error_body(code, message)
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("latin-1") + body


async def send_error(send, status: int, code: str, message: str, headers=()) -> None:
    """A JSON error through ASGI; the connection is closed after it."""
    body = error_body(code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class ConnectionGuard:
    """The connections of one server: who waits for a request since when, who is served."""

    def __init__(self, limits: Limits = Limits()):
        self.limits = limits
        self.waiting: OrderedDict = OrderedDict()  # GuardedConnection -> None, longest waiting first
        self.by_peer: dict = {}

    def protocol_class(self, inner_class) -> type:
        """The class uvicorn builds per connection: `inner_class` (uvicorn's HTTP protocol) guarded."""
        return type("GuardedHTTP", (GuardedConnection,), {"guard": self, "inner_class": inner_class})

    def middleware(self, app):
        return GuardMiddleware(app, self)

    # ---------------------------------------------------------------- connection states

    def opened(self, connection) -> None:
        if connection.peer is not None:
            self.by_peer[connection.peer] = connection
        self.wait(connection, self.limits.header_timeout)

    def wait(self, connection, seconds: float) -> None:
        """Now waiting for a request: at most `seconds`, and perhaps closing the longest waiting."""
        connection.busy, connection.head_bytes, connection.head_done, connection.tail = False, 0, False, b""
        connection.started = False
        self.waiting[connection] = None
        self.waiting.move_to_end(connection)
        connection.arm(seconds)
        while len(self.waiting) > self.limits.max_waiting:
            oldest = next(iter(self.waiting))
            log.info("closing the connection that waited longest for a request (%s): %d wait",
                     oldest.peer, len(self.waiting))
            self.drop(oldest)

    def head_data(self, connection, data: bytes) -> bool:
        """Bytes of a request's head arrived; False when the connection was closed for them."""
        if not connection.started:  # its first byte: the headers' time starts now
            connection.started = True
            connection.arm(self.limits.header_timeout, earlier_only=True)
        seen = connection.tail + data
        end = min((i for i in (seen.find(b"\r\n\r\n"), seen.find(b"\n\n")) if i >= 0), default=-1)
        size = connection.head_bytes + len(data) if end < 0 else connection.head_bytes + end - len(connection.tail)
        if size > self.limits.max_head_bytes:
            connection.reject(431, "headers_too_large",
                              f"the request's line and headers are larger than {self.limits.max_head_bytes >> 10} KiB")
            return False
        if end >= 0:
            connection.head_done = True  # the app takes it from here (served() cancels the timer)
        connection.head_bytes, connection.tail = size, seen[-3:]
        return True

    def served(self, connection) -> None:
        connection.requests += 1
        connection.busy = True
        connection.disarm()
        self.waiting.pop(connection, None)

    def answered(self, connection) -> None:
        connection.requests -= 1
        if not connection.lost and not connection.lingering and not connection.requests:  # (pipelined: begun)
            self.wait(connection, self.limits.idle_timeout)

    def linger(self, connection) -> None:
        """Answered before its body arrived, and to be closed: the rest of the body is read
        and dropped for a while first (closing with unread data would reset the connection,
        and the client, still sending, might never read the answer). It waits meanwhile."""
        connection.lingering, connection.busy = True, False
        self.waiting[connection] = None
        self.waiting.move_to_end(connection)
        connection.arm(self.limits.header_timeout)
        transport = connection.transport
        if transport.can_write_eof():  # our side is done: the answer, then end of stream
            transport.write_eof()
        if hasattr(transport, "is_reading") and not transport.is_reading():
            transport.resume_reading()

    def closed(self, connection) -> None:
        connection.lost = True
        connection.disarm()
        self.waiting.pop(connection, None)
        if self.by_peer.get(connection.peer) is connection:
            del self.by_peer[connection.peer]

    def drop(self, connection) -> None:
        self.waiting.pop(connection, None)
        connection.disarm()
        connection.close()


class GuardedConnection(asyncio.Protocol):
    """uvicorn's protocol for one connection, with the guard's deadlines around it."""

    guard: ConnectionGuard
    inner_class: type

    def __init__(self, config, server_state, app_state, _loop=None):
        self.inner = self.inner_class(config=config, server_state=server_state, app_state=app_state, _loop=_loop)
        self.loop = _loop or asyncio.get_event_loop()
        self.transport, self.peer, self.timer, self.lost, self.requests = None, None, None, False, 0
        self.unread_body, self.lingering = False, False
        self.busy, self.started, self.head_done, self.head_bytes, self.tail = False, False, False, 0, b""
        self.deadline = math.inf
        if hasattr(self.inner, "send_400_response"):  # uvicorn's answer to a request it cannot parse, as JSON
            self.inner.send_400_response = self._send_400

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport):
        from uvicorn.protocols.utils import get_remote_addr

        self.transport = transport
        self.peer = get_remote_addr(transport)
        self._set_send_timeout(transport)
        self.guard.opened(self)
        self.inner.connection_made(InnerTransport(transport, self))

    def data_received(self, data):
        if self.lingering:
            return  # the rest of a body that was answered already
        if not self.busy and not self.head_done and not self.guard.head_data(self, data):
            return
        self.inner.data_received(data)

    def eof_received(self):
        if self.lingering:
            self.transport.close()
            return False
        return self.inner.eof_received()

    def inner_closed(self) -> None:
        """uvicorn closes the connection (after a `connection: close` answer, a timeout, shutdown)."""
        if self.lost or self.lingering:
            return
        if self.unread_body:
            self.guard.linger(self)
        else:
            self.transport.close()

    def connection_lost(self, exc):
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self):
        self.inner.pause_writing()

    def resume_writing(self):
        self.inner.resume_writing()

    # ---------------------------------------------------------------- deadlines

    def arm(self, seconds: float, earlier_only: bool = False) -> None:
        deadline = self.loop.time() + seconds
        if earlier_only and deadline >= self.deadline:
            return
        self.disarm()
        self.deadline = deadline
        self.timer = self.loop.call_at(deadline, self._expired)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deadline = math.inf

    def _expired(self) -> None:
        self.timer = None
        if not self.busy and not self.lost:
            self.guard.drop(self)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
            # whatever is still unsent (the end of an earlier response) gets a moment, no more
            self.loop.call_later(5.0, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.lost:
            self.transport.abort()

    def reject(self, status: int, code: str, message: str) -> None:
        self.transport.write(raw_response(status, code, message))
        self.guard.drop(self)

    def _send_400(self, message: str) -> None:
        self.reject(400, "bad_request", f"the request is not valid HTTP: {message.rstrip('.')}")

    def _set_send_timeout(self, transport) -> None:
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        sock = transport.get_extra_info("socket")
        if option is None or sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, int(self.guard.limits.send_timeout * 1000))
        except (OSError, AttributeError):
            pass


class InnerTransport:
    """The transport as uvicorn's protocol sees it: its close goes through the guard, which
    lingers when a body is still arriving."""

    def __init__(self, transport, connection):
        self._transport, self._connection, self._closing = transport, connection, False

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def close(self):
        self._closing = True
        self._connection.inner_closed()

    def is_closing(self):
        return self._closing or self._transport.is_closing()


class GuardMiddleware:
    """Outermost ASGI layer: tells the guard when a connection's request is being served
    and when it was answered; closes the connection after a response sent before the
    request's body was read (its rest would otherwise pass for the next request's head);
    a JSON 500 for anything that escapes the application."""

    def __init__(self, app, guard: ConnectionGuard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = self.guard.by_peer.get(scope.get("client"))
        if connection is not None:
            self.guard.served(connection)
        headers = dict(scope.get("headers") or ())
        body_done = headers.get(b"content-length", b"0").strip() in (b"0", b"") and b"transfer-encoding" not in headers
        started = False

        async def tracked_receive():
            nonlocal body_done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_done:  # the rest of the body must not pass for the next request
                    if connection is not None:
                        connection.unread_body = True
                    given = [value.lower() for name, value in message.get("headers", ()) if name.lower() == b"connection"]
                    if b"close" not in given:
                        message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, tracked_receive, tracked_send)
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await send_error(send, 500, "internal_error", "the server hit an internal error; its log has the details")
        finally:
            if connection is not None:
                self.guard.answered(connection)


class RequestLimit:
    """ASGI: at most `limit` requests served at once, else a JSON 503 (behind the token gate,
    so only token holders count)."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await send_error(send, 503, "server_busy",
                             f"the server is answering {self.limit} requests already: try again in a moment",
                             [(b"retry-after", b"1")])
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def raise_open_file_limit(needed: int) -> None:
    """The soft limit on open files up to `needed` (within the hard limit): every connection
    the bounds allow must fit, or accepting fails for everyone (POSIX; elsewhere a no-op)."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, wanted)


def uvicorn_config(app, limits: Limits = Limits(), **options):
    """uvicorn.Config for `app` with the guard around it and uvicorn's own connection
    limit off (the guard's bounds replace it). `options`: log_level, access_log, ssl_*."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    guard = ConnectionGuard(limits)
    config = uvicorn.Config(
        guard.middleware(app), http=guard.protocol_class(AutoHTTPProtocol), ws="none", server_header=False,
        timeout_keep_alive=max(1, math.ceil(limits.idle_timeout)), limit_concurrency=None, proxy_headers=False,
        **options)
    config.guard = guard  # for tests and logs
    return config
