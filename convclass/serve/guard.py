"""Connection guard: a header deadline, idle shedding and per-client caps, below the app, on every socket.

uvicorn's h11 protocol has no deadline for request headers (a socket that sends nothing, or a header byte a
second, stays open indefinitely) and its `limit_concurrency` counts such sockets, so 64 of them made every
real request get 503. Hypercorn has a header deadline but no per-client cap, and the rest of uvicorn's HTTP
handling is what the serve tests cover, so this subclasses uvicorn's H11Protocol (passed as `http=`, a
documented uvicorn.Config hook) and adds:

- a deadline for each request's headers, counted from connect or from the end of the previous response;
  bytes that arrive do not extend it, so a slowloris client is cut off like an idle one;
- caps on open sockets per client address and in all. A newcomer over a cap closes the socket that has
  waited longest without a request, so idle sockets never crowd out a client that sends its request at
  once (which, on 127.0.0.1, shares the attacker's address). Only when every socket in the pool is busy
  with a request is the newcomer refused with 503, which also bounds concurrent requests per client.
"""
from __future__ import annotations

import http
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import ServeLimits

__all__ = ["guarded_protocol", "raw_json_response"]


def raw_json_response(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response for a socket that has no request to answer through h11."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n"
            "cache-control: no-store\r\n\r\n")
    return head.encode() + body


class _Pools:
    """Open guarded sockets, in all and by client address; sized by ServeLimits."""

    def __init__(self, limits: ServeLimits):
        self.limits = limits
        self.every: set = set()
        self.by_client: dict[str, set] = {}

    def admit(self, proto: GuardedH11Protocol) -> str | None:
        """Add `proto`, shedding the longest-waiting idle socket of a full pool; the refusal text if none."""
        mine = self.by_client.setdefault(proto.peer, set())
        for pool, cap, whose in ((mine, self.limits.max_connections_per_client, f"from {proto.peer}"),
                                 (self.every, self.limits.max_connections, "in all")):
            if len(pool) < cap:
                continue
            waiting = [p for p in pool if p.waiting_since is not None]
            if not waiting:
                self.forget(proto)
                return f"the server is busy: {cap} requests in progress {whose}; retry in a moment"
            min(waiting, key=lambda p: p.waiting_since).drop(503, f"too many open connections {whose}; "
                                                                  "idle ones are closed first")
        mine.add(proto)
        self.every.add(proto)
        return None

    def forget(self, proto: GuardedH11Protocol) -> None:
        self.every.discard(proto)
        mine = self.by_client.get(proto.peer)
        if mine is not None:
            mine.discard(proto)
            if not mine:
                del self.by_client[proto.peer]


class GuardedH11Protocol(H11Protocol):
    pools: _Pools  # one per server, set by guarded_protocol()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.peer = self.client[0] if self.client else ""
        self.waiting_since: float | None = None
        self.header_timer = None
        self.partial = False  # bytes of the next request have arrived (so it is owed an answer)
        refusal = self.pools.admit(self)
        if refusal:
            self.transport.write(raw_json_response(503, refusal))
            self.transport.close()
        else:
            self._await_request()

    def connection_lost(self, exc) -> None:
        self._stop_waiting()
        self.pools.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.partial = self.partial or self.waiting_since is not None
        super().data_received(data)
        self._follow_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_state()

    def _should_upgrade(self) -> bool:
        """Never: the app has no WebSocket routes, and an upgraded socket would leave this guard (serve_model
        also passes ws="none"; this keeps an Upgrade header from logging two warnings per request)."""
        return False

    def send_400_response(self, msg: str) -> None:
        """Malformed requests (h11 refused the bytes) get JSON like every other client error."""
        self.transport.write(raw_json_response(400, f"malformed HTTP request: {msg}"))
        self.transport.close()

    def _follow_state(self) -> None:
        """Waiting: no request is being answered. Either h11 expects the next request's headers (IDLE), or the
        answer went out while the client is still sending its body (DONE: an early 4xx on a kept-alive socket,
        which uvicorn's keep-alive timer, reset by every byte, would keep open forever)."""
        waiting = self.conn.our_state in (h11.IDLE, h11.DONE) and not self.transport.is_closing()
        if waiting and self.waiting_since is None:
            self._await_request()
        elif not waiting and self.waiting_since is not None:
            self._stop_waiting()

    def _await_request(self) -> None:
        self.waiting_since = self.loop.time()
        self.partial = bool(self.conn.trailing_data[0])
        self.header_timer = self.loop.call_later(self.pools.limits.header_timeout_s, self._headers_late)

    def _stop_waiting(self) -> None:
        self.waiting_since = None
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_late(self) -> None:
        self.drop(408, f"request headers did not arrive within {self.pools.limits.header_timeout_s:g} s")

    def drop(self, status: int, message: str) -> None:
        """Close a socket that has no request in progress; a client midway through its headers is told why."""
        self._stop_waiting()
        self.pools.forget(self)
        if not self.transport.is_closing():
            if self.partial and self.conn.our_state is h11.IDLE:
                self.transport.write(raw_json_response(status, message))
            self.transport.close()


def guarded_protocol(limits: ServeLimits) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn.Config(http=...), with its own pools for one server."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"pools": _Pools(limits)})
