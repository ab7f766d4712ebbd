"""What the dashboard costs: idle RSS of `capture run` with [web] enabled vs disabled, first-page time.

    ./dev bench-web             # or: .venv/bin/python bench/web.py [--runs N]

The same service as bench/run.py's idle figure (16 cameras, 20 rules, MQTT
triggers on a private mosquitto, the camera simulator), started as its own
process `--runs` times with the dashboard and as many times without,
alternating; RSS is read 3 s after start. With the dashboard it then times
the first page on a fresh connection: `GET /` alone (and once more), and everything the
browser needs before it paints the tiles (the page, its style and scripts,
/api/cameras), one after another as a browser on a slow link would; and the
RSS after serving them and /openapi.json.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from run import PASSWORD, Service, rss_kib, rules_toml, simulator  # bench/ is sys.path[0]

from tests.broker import Broker

FIRST_PAGE = ("/", "/static/app.css", "/static/common.js", "/static/dashboard.js", "/api/cameras")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rules(root: Path, broker: Broker, camera_port: int, web_port: int | None) -> str:
    cameras = {f"cam{i:02d}": camera_port for i in range(16)}
    text = "".join(
        f'[[rules]]\nname = "rule{i:02d}"\nwhen = "plc"\ncondition = "n == {i}"\n'
        f'cameras = ["cam{i % 16:02d}"]\n\n'
        for i in range(20)
    )
    toml = rules_toml(root, broker, cameras, text, prefix=f"web{web_port or 0}")
    if web_port is not None:
        web = f'[web]\nenabled = true\nbind = "127.0.0.1"\nport = {web_port}\n'
        toml = toml.replace("[web]\nenabled = false\n", web)
    return toml


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the dashboard did not listen on port {port} within {timeout:.0f} s")


def one_run(broker: Broker, camera_port: int, workdir: Path, *, web: bool) -> dict[str, float]:
    port = free_port() if web else None
    service = Service(workdir, rules(workdir / "data", broker, camera_port, port))
    try:
        if port is not None:
            wait_listening(port)
        time.sleep(3)
        figures = {"idle_rss_mib": rss_kib(service.process.pid) / 1024}
        if port is not None:
            figures |= first_page(f"http://127.0.0.1:{port}")
            figures["rss_after_pages_mib"] = rss_kib(service.process.pid) / 1024
        return figures
    finally:
        service.stop()


def first_page(base: str) -> dict[str, float]:
    """Milliseconds for the first `GET /` and for everything the first paint needs."""
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        began = time.perf_counter()
        assert client.get("/").status_code == 200
        page_ms = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        assert client.get("/").status_code == 200
        again_ms = (time.perf_counter() - began) * 1000
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        began = time.perf_counter()
        for path in FIRST_PAGE:
            assert client.get(path).status_code == 200, path
        paint_ms = (time.perf_counter() - began) * 1000
        assert client.get("/openapi.json").status_code == 200
    return {"first_get_ms": page_ms, "again_ms": again_ms, "first_paint_requests_ms": paint_ms}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="services started per side")
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    cameras = [{"name": "cam0", "vendor": "hikvision", "password": PASSWORD}]
    with (
        tempfile.TemporaryDirectory(prefix="capture-bench-web-") as tmp,
        simulator(cameras) as ports,
    ):
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        try:
            for n in range(args.runs):
                for web in (False, True):
                    print(
                        f"... run {n + 1}, web {'on' if web else 'off'}",
                        file=sys.stderr,
                        flush=True,
                    )
                    workdir = Path(tmp) / f"run{n}-{int(web)}"
                    workdir.mkdir()
                    runs[web].append(one_run(broker, ports["cam0"], workdir, web=web))
        finally:
            broker.stop()

    def median(web: bool, key: str) -> float:
        return statistics.median(run[key] for run in runs[web])

    def each(web: bool) -> str:
        return ", ".join(f"{run['idle_rss_mib']:.1f}" for run in runs[web])

    off, on = median(False, "idle_rss_mib"), median(True, "idle_rss_mib")
    print(f"idle RSS, 16 cameras + 20 rules, median of {args.runs} each:")
    print(f"  [web] disabled  {off:6.1f} MiB   ({each(False)})")
    print(f"  [web] enabled   {on:6.1f} MiB   ({each(True)})")
    print(f"  the dashboard adds {on - off:.1f} MiB")
    print(
        f"  after the first page and /openapi.json: {median(True, 'rss_after_pages_mib'):.1f} MiB"
    )
    print("first page after start, fresh connection, median:")
    print(f"  GET /                                   {median(True, 'first_get_ms'):6.1f} ms")
    print(f"  GET / again, same connection            {median(True, 'again_ms'):6.1f} ms")
    print(
        f"  /, style, scripts, /api/cameras in turn {median(True, 'first_paint_requests_ms'):6.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
