"""shared.resp_wire: the RESP reply parser (pure logic) and pipelined calls on a real redis-server."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import redis

from shared.redis_client import connect
from shared.resp_wire import Wire, _Incomplete, pack, parse_reply, send_all


def parse_all(raw: bytes):
    value, pos = parse_reply(bytearray(raw), 0, len(raw))
    assert pos == len(raw)
    return value


@pytest.mark.parametrize("raw, value", [
    (b"+OK\r\n", b"OK"),
    (b":-42\r\n", -42),
    (b"$5\r\nhe\r\no\r\n", b"he\r\no"),  # a bulk may hold CRLF
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"_\r\n", None),
    (b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", [b"a", [1]]),
    (b"%1\r\n$1\r\nk\r\n*0\r\n", {b"k": []}),
    (b"~1\r\n+x\r\n", [b"x"]),
    (b",1.5\r\n", 1.5),
    (b"#t\r\n", True),
    (b"=7\r\ntxt:abc\r\n", b"abc"),
    (b"(123456789012345678901234567890\r\n", 123456789012345678901234567890),
    (b"|1\r\n+ttl\r\n:3\r\n:7\r\n", 7),  # attributes are skipped
])
def test_parses_resp2_and_resp3_values(raw, value):
    assert parse_all(raw) == value


def test_error_replies_come_back_classified_not_raised():
    err = parse_all(b"-NOGROUP No such key 's'\r\n")
    assert isinstance(err, redis.ResponseError) and "NOGROUP" in str(err)
    assert isinstance(parse_all(b"-LOADING Redis is loading the dataset in memory\r\n"), redis.BusyLoadingError)
    nested = parse_all(b"*2\r\n+OK\r\n-ERR wrong\r\n")
    assert nested[0] == b"OK" and isinstance(nested[1], redis.ResponseError)


def test_every_truncation_asks_for_more_bytes():
    raw = b"*1\r\n*2\r\n$10\r\n1700-0\r\nab\r\n*2\r\n$1\r\nm\r\n$6\r\npay\r\nl\r\n"
    assert parse_all(raw) == [[b"1700-0\r\nab", [b"m", b"pay\r\nl"]]]
    for cut in range(1, len(raw)):
        with pytest.raises(_Incomplete) as inc:
            parse_reply(bytearray(raw[:cut]) + b"*9\r\n", 0, cut)  # stale bytes past `end` are ignored
        assert cut < inc.value.need <= len(raw)


def test_a_truncated_bulk_names_the_bytes_it_needs():
    with pytest.raises(_Incomplete) as inc:
        parse_reply(bytearray(b"$1000\r\nabc"), 0, 10)
    assert inc.value.need == 7 + 1000 + 2


@pytest.mark.parametrize("protocol", [2, 3])
def test_pipelined_calls_and_a_large_reply(redis_proc, protocol):
    r = redis.Redis(port=redis_proc.port, protocol=protocol)
    r.flushall()
    wire = Wire(r)
    big = os.urandom(3 << 20)  # larger than the initial buffer and than one socket read
    assert wire.call(("SET", "k", big), ("GET", "k"), ("STRLEN", "k"), ("GET", "nope")) == [b"OK", big, len(big), None]
    small_again = wire.call(("PING",))
    assert small_again == [b"PONG"]
    err, ok = wire.call(("XREADGROUP", "GROUP", "g", "c", "STREAMS", "nostream", ">"), ("PING",))
    assert isinstance(err, redis.ResponseError) and "NOGROUP" in str(err) and ok == b"PONG"


def test_a_timed_out_call_drops_its_connection(redis_proc):
    r = connect(f"redis://127.0.0.1:{redis_proc.port}/0", socket_timeout=0.2)
    r.delete("s")
    r.xgroup_create("s", "g", id="0", mkstream=True)
    wire = Wire(r)
    blocking = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "BLOCK", 600, "STREAMS", "s", ">")
    with pytest.raises(redis.TimeoutError):
        wire.call(blocking)
    r.xadd("s", {"m": "late"})  # the timed-out call's reply must never answer a later call
    assert wire.call(("PING",)) == [b"PONG"]
    assert wire.call(blocking, extra_timeout_s=0.6)[0] is not None  # a longer wait when asked


def test_a_killed_connection_raises_connection_error_then_recovers(redis_proc):
    r = connect(f"redis://127.0.0.1:{redis_proc.port}/0")
    r.delete("s2")
    r.xgroup_create("s2", "g", id="0", mkstream=True)
    wire = Wire(r)
    (victim,) = wire.call(("CLIENT", "ID"))
    admin = redis.Redis(port=redis_proc.port)
    killer = threading.Timer(0.1, lambda: admin.execute_command("CLIENT", "KILL", "ID", victim))
    killer.start()
    with pytest.raises(redis.ConnectionError):
        wire.call(("XREADGROUP", "GROUP", "g", "c", "BLOCK", 5000, "STREAMS", "s2", ">"), extra_timeout_s=5)
    killer.join()
    assert wire.call(("PING",)) == [b"PONG"]


def test_a_forked_child_gets_a_connection_of_its_own(redis_proc):
    """The child must not talk over the parent's socket (replies would cross)."""
    r = connect(f"redis://127.0.0.1:{redis_proc.port}/0")
    wire = Wire(r)
    (parent_id,) = wire.call(("CLIENT", "ID"))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the id its calls arrive on, then leave without cleanup
        try:
            (child_id,) = wire.call(("CLIENT", "ID"))
            os.write(write_end, str(child_id).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_id = int(os.read(read_end, 64) or b"0")
    os.waitpid(pid, 0)
    assert child_id not in (0, parent_id)
    assert wire.call(("CLIENT", "ID")) == [parent_id]  # the parent's connection still works


def test_pack_matches_redis_py_and_leaves_big_arguments_uncopied():
    big = os.urandom(200_000)
    commands = (("SET", "k", big), ("HINCRBY", b"h", "f", -3), ("PING",), ("ECHO", bytearray(b"x\r\ny")))
    buffers = pack(commands)
    reference = redis.connection.Connection().pack_commands(commands)
    assert b"".join(buffers) == b"".join(bytes(b) for b in reference)
    assert any(b is big for b in buffers)  # sent from the caller's buffer
    with pytest.raises(redis.DataError):
        pack((("SET", "k", 1.5),))
    with pytest.raises(redis.DataError):
        pack((("SET", "k", True),))


def test_send_all_delivers_every_byte_through_partial_sends():
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # forces many partial sendmsg calls
    left.settimeout(10)
    buffers = [b"head", os.urandom(3 << 20), b"", b"tail"]
    got = bytearray()
    reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: right.recv(65536), b"")])
    reader.start()
    send_all(left, buffers)
    left.close()
    reader.join(10)
    right.close()
    assert bytes(got) == b"".join(buffers)
