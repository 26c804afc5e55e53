"""Pipelined Redis commands with a lean reply reader, for the streams' hot path.

Owns `Wire`: send several commands on a redis-py connection of its own in one write, then read
their replies straight off the socket into one reused buffer. redis-py's pure-Python reader
copies a large bulk reply four to five times (socket -> BytesIO -> read -> concatenation ->
slice); for a 1.2 MB rollout batch that was ~0.3 ms of a ~0.55 ms XREADGROUP. Here the payload
is copied once out of the kernel and once into the returned `bytes`.

Connecting, AUTH/HELLO/SELECT stay redis-py's (`Wire` holds a connection built like the client's
pool builds them); commands are packed here and sent with one sendmsg (redis-py: a sendall per
large argument and the pieces around it). Socket errors become `redis.ConnectionError` /
`redis.TimeoutError` (what `with_retry` retries) and the connection is dropped, so a half-read
reply can never be mistaken for the next one. Error replies come back as exception instances
(classified as redis-py does, e.g. LOADING -> BusyLoadingError) for the caller to raise.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import redis

try:  # redis-py's own error classification (LOADING, NOSCRIPT, ...); plain ResponseError otherwise
    from redis._parsers import BaseParser

    _parse_error = BaseParser.parse_error
except ImportError:  # pragma: no cover - other redis-py layouts
    def _parse_error(msg: str) -> redis.ResponseError:
        return redis.ResponseError(msg)

_KEEP_BYTES = 64 << 20  # a buffer grown past this (huge multi-entry reads) is not kept


_BIG = 1 << 16  # arguments longer than this are sent from their own buffer, not copied


def pack(commands: tuple[tuple, ...]) -> list[bytes]:
    """RESP arrays for `commands` (arguments: bytes, bytearray, str or int), as few buffers as
    possible: small pieces joined, each argument over 64 KiB left as it is (no copy)."""
    out: list[bytes] = []
    parts: list[bytes] = []
    for cmd in commands:
        parts.append(b"*%d\r\n" % len(cmd))
        for arg in cmd:
            if isinstance(arg, str):
                arg = arg.encode()
            elif isinstance(arg, int) and not isinstance(arg, bool):
                arg = b"%d" % arg
            elif not isinstance(arg, (bytes, bytearray)):
                raise redis.DataError(f"cannot send a {type(arg).__name__} argument")
            parts.append(b"$%d\r\n" % len(arg))
            if len(arg) > _BIG:
                out += [b"".join(parts), arg]
                parts = [b"\r\n"]
            else:
                parts += [arg, b"\r\n"]
    out.append(b"".join(parts))
    return out


def send_all(sock: socket.socket, buffers: list[bytes]) -> None:
    """sendmsg until every byte of `buffers` is sent (one system call when the socket takes it all)."""
    views = [memoryview(b) for b in buffers]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if views and sent:
            views[0] = views[0][sent:]


class _Incomplete(Exception):
    """The buffer ends inside a reply; `need` bytes must be buffered before it can be parsed."""

    def __init__(self, need: int) -> None:
        self.need = need


def _line(buf: bytearray, pos: int, end: int) -> tuple[bytes, int]:
    i = buf.find(b"\r\n", pos, end)
    if i < 0:
        raise _Incomplete(end + 1)
    return bytes(buf[pos:i]), i + 2


def parse_reply(buf: bytearray, pos: int, end: int) -> tuple[Any, int]:
    """One RESP2/RESP3 reply starting at `buf[pos]` (bytes up to `end` are valid): (value, next pos).
    Maps come back as dicts, sets and pushes as lists, errors as exception instances."""
    if pos >= end:
        raise _Incomplete(pos + 1)
    kind = buf[pos]
    head, pos = _line(buf, pos + 1, end)
    if kind in b"$=!":  # bulk, verbatim, blob error
        n = int(head)
        if n < 0:
            return None, pos
        if pos + n + 2 > end:
            raise _Incomplete(pos + n + 2)
        with memoryview(buf) as view:  # one copy (bytes(buf[a:b]) would make two)
            data = bytes(view[pos:pos + n])
        if kind == ord("="):
            data = data[4:]  # "txt:" prefix
        elif kind == ord("!"):
            data = _parse_error(data.decode("utf-8", "replace"))
        return data, pos + n + 2
    if kind in b"*~>%|":  # array, set, push, map, attribute
        n = int(head)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n * 2 if kind in b"%|" else n):
            item, pos = parse_reply(buf, pos, end)
            items.append(item)
        if kind == ord("|"):  # attributes describe the reply that follows: skip them
            return parse_reply(buf, pos, end)
        if kind == ord("%"):
            return dict(zip(items[::2], items[1::2])), pos
        return items, pos
    if kind == ord("+"):
        return head, pos
    if kind == ord("-"):
        return _parse_error(head.decode("utf-8", "replace")), pos
    if kind in b":(":
        return int(head), pos
    if kind == ord("_"):
        return None, pos
    if kind == ord(","):
        return float(head), pos
    if kind == ord("#"):
        return head == b"t", pos
    raise redis.ConnectionError(f"unexpected RESP type byte {bytes([kind])!r}")


class Wire:
    """Pipelined calls on a connection of this Wire's own, replies parsed from one reused buffer.

    The connection is built as the client's pool builds its connections (same URL, timeouts,
    AUTH) but stays with this Wire for its life (closed when the Wire is dropped), so state kept
    on it between calls (a WATCH) survives, and no pool checkout is paid per call.
    `WireConnection.socket` tells whether it is still the same server session (a reconnect gives
    a new socket). redis-py's health-check PINGs are off on it: they could reconnect silently and
    drop that state; a dead connection shows up as a ConnectionError on the next call instead."""

    def __init__(self, r: redis.Redis) -> None:
        self.pool = r.connection_pool
        self._buf = bytearray(1 << 16)
        self._lock = threading.Lock()  # one connection and one buffer: one call at a time
        self._conn: redis.connection.AbstractConnection | None = None
        self._pid = os.getpid()

    @contextmanager
    def connection(self) -> Iterator["WireConnection"]:
        """The connection, for one or more `call`s (a WATCH ... EXEC spans two); disconnected,
        so never reused mid-reply, if anything raises while it is held."""
        with self._lock:
            if self._conn is None or self._pid != os.getpid():  # new, or inherited through fork()
                self._conn, self._pid = self.pool.connection_class(**self.pool.connection_kwargs), os.getpid()
            try:
                yield WireConnection(self, self._conn)
            except BaseException:
                self._conn.disconnect()
                raise
            finally:
                if len(self._buf) > _KEEP_BYTES:
                    self._buf = bytearray(1 << 16)

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        with self._lock:
            if self._conn is not None:
                self._conn.disconnect()

    def call(self, *commands: tuple, extra_timeout_s: float = 0.0) -> list[Any]:
        """Send `commands` in one write and return their replies (errors as instances)."""
        with self.connection() as conn:
            return conn.call(*commands, extra_timeout_s=extra_timeout_s)


class WireConnection:
    def __init__(self, wire: Wire, conn: redis.connection.AbstractConnection) -> None:
        self.wire, self.conn = wire, conn

    @property
    def socket(self) -> socket.socket:
        """The connection's socket, connecting first if it is not connected."""
        if self.conn._sock is None:
            self.conn.connect()
        return self.conn._sock

    def call(self, *commands: tuple, extra_timeout_s: float = 0.0) -> list[Any]:
        """`extra_timeout_s` lengthens the socket timeout for commands that block (XREADGROUP BLOCK)."""
        buffers = pack(commands)
        sock = self.socket
        try:
            send_all(sock, buffers)
        except socket.timeout as err:
            raise redis.TimeoutError(f"Timeout writing to socket: {err}") from err
        except OSError as err:
            raise redis.ConnectionError(f"Error while writing to socket: {err}") from err
        timeout = sock.gettimeout()
        if extra_timeout_s and timeout is not None:
            sock.settimeout(timeout + extra_timeout_s)
        try:
            return self._read_replies(sock, len(commands))
        except socket.timeout as err:
            raise redis.TimeoutError(f"Timeout reading from socket: {err}") from err
        except OSError as err:
            raise redis.ConnectionError(f"Error while reading from socket: {err}") from err
        finally:
            if extra_timeout_s and timeout is not None:
                sock.settimeout(timeout)

    def _read_replies(self, sock: socket.socket, count: int) -> list[Any]:
        wire = self.wire
        end = pos = 0
        replies: list[Any] = []
        while len(replies) < count:
            start = pos
            try:
                value, pos = parse_reply(wire._buf, pos, end)
            except _Incomplete as inc:
                end = self._fill(sock, end, inc.need)
                continue
            if wire._buf[start] != ord(">"):  # a RESP3 push (e.g. invalidation) is not a reply
                replies.append(value)
        if pos != end:
            raise redis.ConnectionError(f"{end - pos} unexpected bytes after {count} replies")
        return replies

    def _fill(self, sock: socket.socket, end: int, need: int) -> int:
        """Receive until at least `need` bytes are buffered; returns the new end."""
        wire = self.wire
        if need > len(wire._buf):
            grown = bytearray(max(need, 2 * len(wire._buf)))
            grown[:end] = wire._buf[:end]
            wire._buf = grown
        view = memoryview(wire._buf)
        try:
            while end < need:
                got = sock.recv_into(view[end:])
                if not got:
                    raise redis.ConnectionError("Connection closed by server.")
                end += got
        finally:
            view.release()
        return end

