"""W4's traffic over bare gRPC with mutual TLS: what the transport itself costs.

The raw copies of ``w4_deploy.py`` (plain TCP, Python ``ssl``) move W4's bytes with
no framework at all. This one moves the same bytes the way accord's deployment
does, over ``grpcio`` with mutual TLS, and nothing else: per round, each of
``clients`` client processes fetches the model as a server stream of 1 MiB
messages (built once and shared by every stream, as accord's coordinator does),
copies it into a buffer it reuses, and sends it back as a client stream of 1 MiB
messages that the server copies into a buffer per client (accord's spool). No
headers, digests, checks, folds, store or checkpoint. The gap between this copy
and the TLS socket copy is gRPC's (HTTP/2 framing, its I/O threads, a Python
object per message); the gap between accord's round and this copy is accord's.

Run by ``w4_deploy.py`` (``--grpc-server`` / ``--grpc-client`` are its helpers'
entry points): the server prints its port, then one JSON line of round times.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

CHUNK = 1 << 20
SERVICE = "benchcopy.Copy"
#: accord's own limits are larger; 1 MiB messages need little more than 1 MiB.
OPTIONS = [
    ("grpc.max_receive_message_length", 4 * CHUNK),
    ("grpc.max_send_message_length", 4 * CHUNK),
]


def _same(data: bytes) -> bytes:
    return data


def _pem(folder: Path, name: str, what: str) -> bytes:
    return (folder / name / f"{what}.pem").read_bytes()


class _Rounds:
    """The server's round gate and each round's count of updates received."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.current = 0
        self.received: dict[int, int] = {}


def serve(nbytes: int, clients: int, rounds: int, tls: Path) -> None:
    """Serve ``rounds`` copies to ``clients`` callers; print each round's time."""
    model = bytes(bytearray(nbytes))
    frames = [model[o : o + CHUNK] for o in range(0, nbytes, CHUNK)]
    back = {}
    state = _Rounds()

    def fetch(request: bytes, context: Any) -> Iterator[bytes]:
        number = int(request)
        with state.cond:
            state.cond.wait_for(lambda: state.current >= number)
        yield from frames

    def submit(requests: Iterator[bytes], context: Any) -> bytes:
        meta = dict(context.invocation_metadata())
        name, number = str(meta["name"]), int(meta["round"])
        buf = back.setdefault(name, bytearray(nbytes))
        offset = 0
        for chunk in requests:
            buf[offset : offset + len(chunk)] = chunk
            offset += len(chunk)
        if number and offset != nbytes:  # round 0: a client says it is connected
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{offset} bytes")
        with state.cond:
            state.received[number] = state.received.get(number, 0) + 1
            state.cond.notify_all()
        return b""

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Fetch": grpc.unary_stream_rpc_method_handler(fetch, _same, _same),
            "Submit": grpc.stream_unary_rpc_method_handler(submit, _same, _same),
        },
    )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=2 * clients + 4), options=OPTIONS
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(_pem(tls, "coordinator", "key"), _pem(tls, "coordinator", "cert"))],
        root_certificates=_pem(tls, "coordinator", "ca"),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    print(port, flush=True)
    with state.cond:  # every client connected (its handshake done) before round 1
        state.cond.wait_for(lambda: state.received.get(0, 0) == clients)
    times: list[float] = []
    for number in range(1, rounds + 1):
        t = time.perf_counter()
        with state.cond:
            state.current = number
            state.cond.notify_all()
            state.cond.wait_for(lambda n=number: state.received.get(n, 0) == clients)
        times.append(time.perf_counter() - t)
    server.stop(grace=5).wait()
    print(json.dumps({"round_s": times}), flush=True)


def client(port: int, name: str, nbytes: int, rounds: int, tls: Path) -> None:
    """Fetch the model and send it back, ``rounds`` times."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_pem(tls, name, "ca"),
        private_key=_pem(tls, name, "key"),
        certificate_chain=_pem(tls, name, "cert"),
    )
    with grpc.secure_channel(f"localhost:{port}", credentials, options=OPTIONS) as ch:
        fetch = ch.unary_stream(f"/{SERVICE}/Fetch", _same, _same)
        submit = ch.stream_unary(f"/{SERVICE}/Submit", _same, _same)
        buf = bytearray(nbytes)
        mem = memoryview(buf)
        submit(iter(()), metadata=(("name", name), ("round", "0")))  # connected
        for number in range(1, rounds + 1):
            offset = 0
            for chunk in fetch(str(number).encode()):
                buf[offset : offset + len(chunk)] = chunk
                offset += len(chunk)
            if offset != nbytes:
                raise RuntimeError(f"{name}: {offset} bytes of {nbytes}")
            parts = (bytes(mem[o : o + CHUNK]) for o in range(0, nbytes, CHUNK))
            submit(parts, metadata=(("name", name), ("round", str(number))))
