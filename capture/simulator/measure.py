"""Measures the simulator's own throughput, so we know it is not the bottleneck of a benchmark.

Run `python -m capture.simulator.measure`. The simulator runs in this
process; the load comes from separate processes speaking raw keep-alive
HTTP/1.1 (computing Digest headers themselves for the digest case), so the
client's cost does not share the simulator's GIL. Prints requests per second
for each scenario.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import re
import socket
import time

from capture.simulator.camera import SimulatedCamera, Vendor
from capture.simulator.server import Simulator

_PATHS = {"generic": "/snap.jpg", "hikvision": "/ISAPI/Streaming/channels/101/picture"}


def _read_response(sock: socket.socket, buffer: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("simulator closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(max(65536, length - len(rest)))
        if not chunk:
            raise ConnectionError("simulator closed the connection")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def _digest_header(challenge: str, nc: int, path: str) -> str:
    realm = re.search(r'realm="([^"]*)"', challenge)
    nonce = re.search(r'nonce="([^"]*)"', challenge)
    assert realm and nonce
    cnonce = os.urandom(8).hex()
    ha1 = hashlib.md5(f"admin:{realm[1]}:measure".encode()).hexdigest()  # noqa: S324 - digest MD5
    ha2 = hashlib.md5(f"GET:{path}".encode()).hexdigest()  # noqa: S324
    response = hashlib.md5(  # noqa: S324
        f"{ha1}:{nonce[1]}:{nc:08x}:{cnonce}:auth:{ha2}".encode()
    ).hexdigest()
    return (
        f'Digest username="admin", realm="{realm[1]}", nonce="{nonce[1]}", uri="{path}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    )


def _client(
    port: int, path: str, digest: bool, seconds: float, results: multiprocessing.Queue[float]
) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    challenge = ""
    nc = 0
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        auth = ""
        if digest and challenge:
            nc += 1
            auth = f"Authorization: {_digest_header(challenge, nc, path)}\r\n"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: sim\r\n{auth}\r\n".encode())
        status, headers, body, buffer = _read_response(sock, buffer)
        if status == 401:
            challenge, nc = headers["www-authenticate"], 0
            continue
        if status != 200 or body[:2] != b"\xff\xd8":
            raise RuntimeError(f"unexpected answer {status}")
        done += 1
    sock.close()
    results.put(done)


def measure(vendor: Vendor, connections: int, seconds: float) -> float:
    """Requests per second the simulator answers for one camera of `vendor`."""
    camera = SimulatedCamera(
        "measure",
        vendor,
        password="measure",  # noqa: S106 - the simulated camera's own password
        auth="digest" if vendor == "hikvision" else None,
    )
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with Simulator([camera]) as simulator:
        port = simulator.port_of("measure")
        processes = [
            context.Process(
                target=_client, args=(port, _PATHS[vendor], vendor == "hikvision", seconds, results)
            )
            for _ in range(connections)
        ]
        for process in processes:
            process.start()
        total = sum(results.get(timeout=seconds + 30) for _ in processes)
        for process in processes:
            process.join()
    return float(total) / seconds


def main() -> None:
    """Print the throughput of each scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    scenarios: tuple[tuple[Vendor, str], ...] = (
        ("generic", "no auth"),
        ("hikvision", "digest MD5"),
    )
    for vendor, label in scenarios:
        for connections in (1, 4):
            rate = measure(vendor, connections, args.seconds)
            print(f"{vendor:10} {label:11} {connections} connection(s): {rate:7.0f} snapshots/s")  # noqa: T201


if __name__ == "__main__":
    main()
