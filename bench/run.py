"""End-to-end benchmark of event-capture on real parts; prints a table and writes JSON.

    ./dev bench                 # or: .venv/bin/python bench/run.py [--events N] [--rate R]

Every part is a separate process, as on a Pi: a private mosquitto, the
camera simulator, and `capture run`. This process only publishes MQTT
triggers with their send time and listens for the service's event messages.
In the same run it measures the floor: a bare loop doing the same HTTP fetch
(one reused httpx.Client, digest auth) and the same atomic file write, back
to back (the throughput floor) and paced at the steady run's rate (the
latency floor: idle processes wake slowly on a VM), so the service's
overhead is reported as ratios, which survive a noisy machine better than
absolute figures.

Scenarios: latency at a steady rate; sustained throughput with one and with
four cameras; burst-interval jitter; a 2 s camera beside a fast one; idle RSS
with 16 cameras and 20 rules; RSS after repeated 2,000-event bursts;
`capture check` start-up on rules.example.toml.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.broker import Broker  # noqa: E402 - the same private broker the tests use

PASSWORD = "bench-password"


# --------------------------------------------------------------------------- parts


def _simulator_main(
    cameras: list[dict[str, Any]], faults: dict[str, dict[str, Any]], conn: Any
) -> None:
    from capture.simulator import SimulatedCamera, Simulator  # noqa: PLC0415

    sim = Simulator([SimulatedCamera(**camera) for camera in cameras])
    sim.start()
    for name, settings in faults.items():
        for key, value in settings.items():
            setattr(sim.faults(name), key, value)
    conn.send({camera["name"]: sim.port_of(camera["name"]) for camera in cameras})
    conn.recv()  # wait for "stop"
    sim.stop()


@contextmanager
def simulator(cameras: list[dict[str, Any]], faults: dict[str, dict[str, Any]] | None = None):  # type: ignore[no-untyped-def]
    """The camera simulator in a process of its own; yields name -> port."""
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_simulator_main, args=(cameras, faults or {}, child), daemon=True
    )
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(10)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident set size (or VmHWM, the peak) of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def camera_toml(name: str, port: int, vendor: str = "hikvision") -> str:
    return (
        f'[cameras.{name}]\nvendor = "{vendor}"\nhost = "127.0.0.1"\nport = {port}\n'
        f'user = "admin"\npassword_env = "BENCH_PASSWORD"\nline = "Bench"\n'
        "timeout_s = 10\ndeadline_s = 30\n\n"
    )


def rules_toml(
    root: Path,
    broker: Broker,
    cameras: dict[str, int],
    rules: str,
    *,
    prefix: str,
    fsync: bool = True,
) -> str:
    head = (
        f'[service]\nsite = "bench"\nline = "Bench"\nlog_level = "warning"\n\n'
        f'[storage]\nroot = "{root}"\nretention_interval_s = 3600\nkeep_days = 1\n'
        f"fsync = {str(fsync).lower()}\n\n"
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        f'client_id = "bench-{prefix}"\n\n[web]\nenabled = false\n\n'
        '[triggers.plc]\ntype = "mqtt"\ntopic = "bench/trigger"\npayload = "json"\nfields = ["n"]\n\n'
    )
    return head + "".join(camera_toml(name, port) for name, port in cameras.items()) + rules


class Service:
    """`capture run` as a subprocess."""

    def __init__(self, workdir: Path, text: str) -> None:
        self.rules = workdir / "rules.toml"
        self.rules.write_text(text)
        # The log goes to a file: an unread pipe fills up and blocks the service's logging.
        self.log = workdir / "service.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "capture", "run", "-c", str(self.rules)],
                env={**os.environ, "BENCH_PASSWORD": PASSWORD},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        finally:
            self.process.kill()


class Probe:
    """Publishes numbered triggers and records when their event messages arrive."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.sent: dict[int, float] = {}
        self.received: dict[int, tuple[float, dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.warm = threading.Event()
        self.listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.listener.on_connect = lambda c, *_: c.subscribe(f"{prefix}/events/#", qos=1)
        self.listener.on_subscribe = lambda *_: self.ready.set()
        self.listener.on_message = self._on_message
        self.listener.connect(broker.host, broker.port)
        self.listener.loop_start()
        self.sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.sender.max_inflight_messages_set(1000)
        self.sender.connect(broker.host, broker.port)
        self.sender.loop_start()
        self.ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(message.payload)
        n = int(body["values"]["n"])
        if n < 0:
            self.warm.set()
            return  # a late answer to a warm-up trigger
        with self.lock:
            self.received.setdefault(n, (now, body))

    def send(self, n: int) -> None:
        with self.lock:
            self.sent[n] = time.time()
        self.sender.publish("bench/trigger", json.dumps({"n": n}), qos=1)

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return
            time.sleep(0.05)

    def close(self) -> None:
        for client in (self.listener, self.sender):
            client.disconnect()
            client.loop_stop()


def wait_ready(probe: Probe, service: Service, timeout: float = 30) -> None:
    """Send warm-up triggers until the service answers (connections and digest learned)."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        probe.send(n)
        probe.wait(1, 0.5)
        if probe.warm.is_set():
            probe.sent.clear()
            return
        n -= 1
        if service.process.poll() is not None:
            raise RuntimeError(service.log.read_text()[-3000:])
    raise RuntimeError("service did not answer within 30 s")


class FileClock(FileSystemEventHandler):
    """When each snapshot name appeared under the root (inotify, not the coarse mtime)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.appeared: dict[str, float] = {}
        root.mkdir(parents=True, exist_ok=True)
        self.observer = Observer()
        self.observer.schedule(self, str(root), recursive=True)
        self.observer.start()

    def on_created(self, event: FileSystemEvent) -> None:
        path = str(event.src_path)
        if path.endswith(".jpg") and "/latest/" not in path:
            self.appeared.setdefault(str(Path(path).relative_to(self.root)), time.time())

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": ordered[-1]}


# --------------------------------------------------------------------------- scenarios


def run_stream(broker: Broker, cameras: dict[str, int], workdir: Path, *, events: int, rate: float | None,
               prefix: str, rule_cameras: str, after: Callable[[Service], None] | None = None,
               fsync: bool = True, extra_rules: str = "") -> dict[str, Any]:  # fmt: skip
    """Publish `events` triggers (at `rate`/s, or as fast as possible) and measure."""
    root = workdir / "data"
    rule = f'[[rules]]\nname = "shot"\nwhen = "plc"\ncameras = {rule_cameras}\nfilename = "{{camera}}/{{n}}.jpg"\n'
    rule += extra_rules
    service = Service(workdir, rules_toml(root, broker, cameras, rule, prefix=prefix, fsync=fsync))
    probe = Probe(broker, prefix)
    files = FileClock(root)
    try:
        wait_ready(probe, service)
        cpu_before = cpu_s(service.process.pid)
        start = time.time()
        for n in range(events):
            if rate:
                delay = start + n / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            probe.send(n)
        probe.wait(events, timeout=60 + events / 100)
        cpu_used = cpu_s(service.process.pid) - cpu_before
        elapsed = (
            max(body_time for body_time, _ in probe.received.values()) - start
            if probe.received
            else 0.0
        )
        to_event = [
            (probe.received[n][0] - probe.sent[n]) * 1000 for n in probe.received if n in probe.sent
        ]
        to_file = []
        for n, (_, body) in probe.received.items():
            for capture in body["captures"]:
                appeared = files.appeared.get(capture["path"]) if capture["path"] else None
                if appeared is not None:
                    to_file.append((appeared - probe.sent[n]) * 1000)
        per_camera: dict[str, list[float]] = {}
        for _, body in probe.received.values():
            for capture in body["captures"]:
                if capture["ok"]:
                    per_camera.setdefault(capture["camera"], []).append(
                        capture["trigger_to_image_ms"]
                    )
        frames = sum(len(body["captures"]) for _, body in probe.received.values())
        failed = sum(
            1 for _, body in probe.received.values() for c in body["captures"] if not c["ok"]
        )
        result = {
            "events": events,
            "rate": rate,
            "received": len(probe.received),
            "lost": events - len(probe.received),
            "failed_frames": failed,
            "snapshots_per_s": frames / elapsed if elapsed else 0.0,
            "service_cpu_ms_per_snapshot": cpu_used * 1000 / frames if frames else 0.0,
            "trigger_to_event_ms": percentiles(to_event),
            "trigger_to_file_ms": percentiles(to_file),
            "trigger_to_image_ms": {camera: percentiles(v) for camera, v in per_camera.items()},
            "peak_rss_mib": rss_kib(service.process.pid, "VmHWM") / 1024,
            "rss_mib": rss_kib(service.process.pid) / 1024,
        }
        if after:
            after(service)
        return result
    finally:
        files.stop()
        probe.close()
        service.stop()


def floor(port: int, workdir: Path, count: int, rate: float | None = None) -> dict[str, Any]:
    """The same fetch and atomic write with one reused client, nothing else.

    Back to back it gives the floor of throughput; paced at the steady run's
    rate it gives the floor of latency, since on a VM a process idle for 50 ms
    wakes up slowly (the same fetch: 0.5 ms back to back, 1.5 ms p50 at 20/s).
    """
    url = f"http://127.0.0.1:{port}/ISAPI/Streaming/channels/101/picture"
    latencies = []
    with httpx.Client(auth=httpx.DigestAuth("admin", PASSWORD)) as client:
        client.get(url).raise_for_status()
        start = time.perf_counter()
        for n in range(count):
            if rate:
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            began = time.perf_counter()
            body = client.get(url).content
            target = workdir / f"{n}.jpg"
            temp = workdir / f".{n}.tmp"
            with temp.open("wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            temp.rename(target)
            latencies.append((time.perf_counter() - began) * 1000)
        elapsed = time.perf_counter() - start
    return {"fetch_write_ms": percentiles(latencies), "per_s": count / elapsed}


def burst_jitter(broker: Broker, cameras: dict[str, int], workdir: Path) -> dict[str, Any]:
    """Ten frames 100 ms apart, five times: deviation of each frame from its due time."""
    root = workdir / "data"
    rule = ('[[rules]]\nname = "burst"\nwhen = "plc"\ncameras = ["cam0"]\nburst = 10\n'
            'interval_ms = 100\nfilename = "{n}_{seq}.jpg"\n')  # fmt: skip
    service = Service(workdir, rules_toml(root, broker, cameras, rule, prefix="jitter"))
    probe = Probe(broker, "jitter")
    deviations = []
    try:
        wait_ready(probe, service)
        for n in range(5):
            probe.send(n)
            probe.wait(n + 1, 10)
        for _, body in probe.received.values():
            for capture in body["captures"]:
                due = (capture["seq"] - 1) * 100
                deviations.append(capture["trigger_to_image_ms"] - due)
    finally:
        probe.close()
        service.stop()
    offsets = [d - min(deviations) for d in deviations]
    return {"frames": len(deviations), "delay_after_due_ms": percentiles(deviations),
            "jitter_ms": percentiles(offsets)}  # fmt: skip


def idle_rss(broker: Broker, cameras: dict[str, int], workdir: Path) -> float:
    """RSS of a service with 16 cameras and 20 rules, idle after start-up."""
    names = {f"cam{i:02d}": cameras["cam0"] for i in range(16)}
    rules = "".join(
        f'[[rules]]\nname = "rule{i:02d}"\nwhen = "plc"\ncondition = "n == {i}"\n'
        f'cameras = ["cam{i % 16:02d}"]\n\n'
        for i in range(20)
    )
    service = Service(workdir, rules_toml(workdir / "data", broker, names, rules, prefix="idle"))
    try:
        time.sleep(3)
        return rss_kib(service.process.pid) / 1024
    finally:
        service.stop()


def check_startup(runs: int = 7) -> float:
    """Median wall time of `capture check -c rules.example.toml -q`, in ms."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "capture", "check", "-q", "-c", str(ROOT / "rules.example.toml")],
                       check=True, capture_output=True)  # fmt: skip
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400, help="triggers in the steady-rate run")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="triggers per second in the steady-rate run"
    )
    parser.add_argument(
        "--burst", type=int, default=2000, help="triggers in each as-fast-as-possible run"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON result"
    )
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    cams = [{"name": f"cam{i}", "vendor": "hikvision", "password": PASSWORD} for i in range(4)]
    cams.append({"name": "slow", "vendor": "hikvision", "password": PASSWORD})
    with (
        tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp,
        simulator(cams, {"slow": {"latency_s": 2.0}}) as ports,
    ):
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        try:

            def step(name: str) -> Path:
                print(f"... {name}", file=sys.stderr, flush=True)
                path = work / name
                path.mkdir()
                return path

            one = {"cam0": ports["cam0"]}
            results["floor"] = floor(ports["cam0"], step("floor"), 1000)
            results["floor_paced"] = floor(
                ports["cam0"], step("floor-paced"), args.events, args.rate
            )
            results["steady"] = run_stream(broker, one, step("steady"), events=args.events, rate=args.rate,
                                           prefix="steady", rule_cameras='["cam0"]')  # fmt: skip
            results["steady_no_fsync"] = run_stream(broker, one, step("steady-nofsync"), events=args.events,
                                                    rate=args.rate, prefix="nofsync", rule_cameras='["cam0"]',
                                                    fsync=False)  # fmt: skip
            growth = []

            def repeat_bursts(service: Service) -> None:
                probe = Probe(broker, "burst1")
                try:
                    for round_ in range(1, 3):
                        base = round_ * 1_000_000
                        for n in range(args.burst):
                            probe.send(base + n)
                        probe.wait(args.burst * round_, 120)
                        time.sleep(1)
                        growth.append(rss_kib(service.process.pid) / 1024)
                finally:
                    probe.close()

            results["burst_1_camera"] = run_stream(broker, one, step("burst1"), events=args.burst, rate=None,
                                                   prefix="burst1", rule_cameras='["cam0"]', after=repeat_bursts)  # fmt: skip
            results["burst_1_camera"]["rss_after_repeated_bursts_mib"] = growth
            four = {f"cam{i}": ports[f"cam{i}"] for i in range(4)}
            results["burst_4_cameras"] = run_stream(broker, four, step("burst4"), events=args.burst // 4, rate=None,
                                                    prefix="burst4", rule_cameras='["cam0", "cam1", "cam2", "cam3"]')  # fmt: skip
            # The same trigger fires a rule on the fast camera and one on a camera answering in 2 s;
            # the probe keeps the first message per trigger: the fast rule's.
            slow_rule = '[[rules]]\nname = "slowshot"\nwhen = "plc"\ncameras = ["slow"]\nfilename = "slow/{n}.jpg"\n'
            results["slow_camera_beside_fast"] = run_stream(
                broker, {"cam0": ports["cam0"], "slow": ports["slow"]}, step("slow"), events=args.events,
                rate=args.rate, prefix="slow", rule_cameras='["cam0"]', extra_rules=slow_rule)  # fmt: skip
            results["burst_jitter"] = burst_jitter(broker, one, step("jitter"))
            results["idle_rss_16_cameras_20_rules_mib"] = idle_rss(broker, one, step("idle"))
        finally:
            broker.stop()
    results["capture_check_ms"] = check_startup()
    report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nJSON: {path}")
    return 0


def report(r: dict[str, Any]) -> None:
    def row(label: str, stats: dict[str, float]) -> str:
        return f"  {label:<34} p50 {stats['p50']:7.2f}  p90 {stats['p90']:7.2f}  p99 {stats['p99']:7.2f}  max {stats['max']:8.2f} ms"

    floor_p50 = r["floor"]["fetch_write_ms"]["p50"]
    steady = r["steady"]
    print(
        f"\nevent-capture benchmark — {r['machine']['cpus']} CPUs, Python {r['machine']['python']}"
    )
    print(f"floor (reused client, fetch + fsync + rename): {r['floor']['per_s']:.0f}/s")
    print(row("floor fetch+write", r["floor"]["fetch_write_ms"]))
    paced = r["floor_paced"]["fetch_write_ms"]
    print(row(f"same at {r['steady']['rate']:.0f}/s", paced))
    print(
        f"\nsteady {steady['rate']:.0f} events/s x {steady['events']}, 1 camera: lost {steady['lost']}, failed frames {steady['failed_frames']}"
    )
    print(row("trigger -> MQTT event", steady["trigger_to_event_ms"]))
    print(row("trigger -> file on disk", steady["trigger_to_file_ms"]))
    print(
        f"  service/floor ratio (p50 trigger->event / p50 fetch+write): {steady['trigger_to_event_ms']['p50'] / floor_p50:.1f}x"
        f" back to back, {steady['trigger_to_event_ms']['p50'] / paced['p50']:.1f}x at the same rate"
    )
    print(row("same with [storage] fsync = false", r["steady_no_fsync"]["trigger_to_event_ms"]))
    for key, label in (("burst_1_camera", "1 camera"), ("burst_4_cameras", "4 cameras")):
        b = r[key]
        print(f"\nas fast as possible, {label}: {b['events']} events, {b['snapshots_per_s']:.0f} snapshots/s, "
              f"lost {b['lost']}, failed {b['failed_frames']}, peak RSS {b['peak_rss_mib']:.1f} MiB")  # fmt: skip
        print(f"  throughput vs floor: {b['snapshots_per_s'] / r['floor']['per_s']:.2f}x; "
              f"service CPU {b['service_cpu_ms_per_snapshot']:.2f} ms per snapshot")  # fmt: skip
    growth = r["burst_1_camera"].get("rss_after_repeated_bursts_mib", [])
    print(
        f"  RSS after each further {r['burst_1_camera']['events']}-event burst: "
        + ", ".join(f"{v:.1f}" for v in growth)
        + " MiB"
    )
    slow = r["slow_camera_beside_fast"]
    print(f"\na camera answering in 2 s fired by the same trigger as a fast one "
          f"({slow['events']} events at {slow['rate']:.0f}/s): lost {slow['lost']}")  # fmt: skip
    print(row("fast camera, trigger->image", slow["trigger_to_image_ms"]["cam0"]))
    print(row("fast camera, no slow camera beside", steady["trigger_to_image_ms"]["cam0"]))
    print(f"\nburst 10 x 100 ms, {r['burst_jitter']['frames']} frames:")
    print(row("image after due time", r["burst_jitter"]["delay_after_due_ms"]))
    print(row("jitter (spread of the above)", r["burst_jitter"]["jitter_ms"]))
    print(f"\nidle RSS, 16 cameras + 20 rules: {r['idle_rss_16_cameras_20_rules_mib']:.1f} MiB")
    print(f"capture check on rules.example.toml: {r['capture_check_ms']:.0f} ms (median of 7)")


if __name__ == "__main__":
    raise SystemExit(main())
