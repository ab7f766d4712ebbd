"""What object detection costs: detector time per 1080p picture, trigger -> file with it on and off, memory.

    ./dev bench                 # after bench/run.py and bench/web.py
    .venv/bin/python bench/detect.py [--pictures N] [--events N] [--rounds N]

The real COCO-SSD model, as `capture models install coco-ssd` put it in
$CAPTURE_COCO_SSD_DIR (./dev installs it; default
~/.cache/event-capture/models/coco-ssd). Three measures, in one run:

1. the detector in this process on a drawn 1920x1080 JPEG file (a stop
   sign): decode + detect as the worker does it (capture.detect.picture),
   with `input_size = [300, 300]` (the documented setting; one thread, the
   default, and two) and with the picture given whole;
2. `capture run` against the simulator serving 1920x1080 pictures, 20
   triggers/s, trigger -> file on disk (inotify) and -> event message, with
   `detect` on the rule and without, alternating `--rounds` times; with it on,
   how many pictures were analysed and how many the queue could not take;
3. the service's RSS 3 s after start, and its peak after the stream, with
   detection configured and without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from run import (  # bench/ is sys.path[0]
    PASSWORD,
    FileClock,
    Probe,
    Service,
    percentiles,
    rss_kib,
    rules_toml,
    simulator,
    wait_ready,
)

from capture.detect.onnx import OnnxDetector, read_labels
from capture.detect.picture import detect_file
from tests.broker import Broker
from tests.detect.pictures import stop_sign

MODEL_DIR = Path(
    os.environ.get("CAPTURE_COCO_SSD_DIR")
    or Path.home() / ".cache" / "event-capture" / "models" / "coco-ssd"
)
RATE = 20.0


def detector_times(pictures: int, workdir: Path) -> dict[str, dict[str, float]]:
    """Milliseconds per 1080p JPEG file, decode + detect as the worker does it, per setting."""
    path = workdir / "yard.jpg"
    stop_sign().save(path, "JPEG", quality=85)
    labels = read_labels(MODEL_DIR / "labels.txt")
    results = {}
    for name, size, threads in (
        ("input_size 300x300, 1 thread", (300, 300), 1),
        ("input_size 300x300, 2 threads", (300, 300), 2),
        ("whole picture, 1 thread", None, 1),
    ):
        detector = OnnxDetector(MODEL_DIR / "model.onnx", labels, input_size=size, threads=threads)
        times = []
        for n in range(pictures + 3):
            began = time.perf_counter()
            found, _ = detect_file(detector, path, 0.5)
            if n >= 3:  # the first runs warm onnxruntime's arenas
                times.append((time.perf_counter() - began) * 1000)
        assert found and found[0].label == "stop sign", found
        results[name] = percentiles(times)
    return results


class Detections:
    """The follow-up messages' picture statuses, by event id."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.status: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/detections/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self.lock:
            self.status[body["event_id"]] = [picture["status"] for picture in body["pictures"]]

    def count(self, event_ids: set[str]) -> dict[str, int]:
        """Pictures by status among these events' follow-up messages."""
        counts: dict[str, int] = {}
        with self.lock:
            for event_id in event_ids & set(self.status):
                for status in self.status[event_id]:
                    counts[status] = counts.get(status, 0) + 1
        return counts

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stream(
    broker: Broker, port: int, workdir: Path, *, events: int, detect: bool
) -> dict[str, Any]:
    """20 triggers/s at a 1080p camera; trigger -> file and -> event, RSS; detection counts."""
    root = workdir / "data"
    prefix = f"det{workdir.name}"
    rule = '[[rules]]\nname = "shot"\nwhen = "plc"\ncameras = ["cam0"]\nfilename = "{camera}/{n}.jpg"\n'
    if detect:
        rule += (
            "detect = { min_score = 0.5 }\n\n[detection]\n"
            f'model = "{MODEL_DIR / "model.onnx"}"\nlabels = "{MODEL_DIR / "labels.txt"}"\n'
            "input_size = [300, 300]\n"
        )
    service = Service(workdir, rules_toml(root, broker, {"cam0": port}, rule, prefix=prefix))
    time.sleep(3)
    idle_rss = rss_kib(service.process.pid) / 1024
    probe = Probe(broker, prefix)
    detections = Detections(broker, prefix)
    files = FileClock(root)
    try:
        wait_ready(probe, service)
        start = time.time()
        for n in range(events):
            delay = start + n / RATE - time.time()
            if delay > 0:
                time.sleep(delay)
            probe.send(n)
        probe.wait(events, timeout=60 + events / 10)
        events_seen = {body["event_id"] for _, body in probe.received.values()}
        if detect:
            deadline = time.monotonic() + 60
            while (
                sum(detections.count(events_seen).values()) < len(events_seen)
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
        to_file, to_event = [], []
        for n, (arrived, body) in probe.received.items():
            to_event.append((arrived - probe.sent[n]) * 1000)
            for capture in body["captures"]:
                appeared = files.appeared.get(capture["path"]) if capture["path"] else None
                if appeared is not None:
                    to_file.append((appeared - probe.sent[n]) * 1000)
        return {
            "received": len(probe.received),
            "trigger_to_file_ms": percentiles(to_file),
            "trigger_to_event_ms": percentiles(to_event),
            "idle_rss_mib": idle_rss,
            "peak_rss_mib": rss_kib(service.process.pid, "VmHWM") / 1024,
            "detections": detections.count(events_seen),
        }
    finally:
        files.stop()
        detections.close()
        probe.close()
        service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pictures", type=int, default=60, help="detector runs per setting")
    parser.add_argument("--events", type=int, default=400, help="triggers per stream (20/s)")
    parser.add_argument("--rounds", type=int, default=2, help="streams per side, alternating")
    args = parser.parse_args()
    if not (MODEL_DIR / "model.onnx").is_file():
        print(
            f"no COCO-SSD model in {MODEL_DIR}: capture models install coco-ssd --dest {MODEL_DIR}"
        )
        return 1
    print(f"... detector on a 1080p JPEG, {args.pictures} runs per setting", file=sys.stderr)
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    cameras = [
        {"name": "cam0", "vendor": "hikvision", "password": PASSWORD, "width": 1920, "height": 1080}
    ]
    with (
        tempfile.TemporaryDirectory(prefix="capture-bench-detect-") as tmp,
        simulator(cameras) as ports,
    ):
        times = detector_times(args.pictures, Path(tmp))
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        try:
            for n in range(args.rounds):
                for detect in (False, True):
                    print(
                        f"... round {n + 1}, detection {'on' if detect else 'off'}",
                        file=sys.stderr,
                        flush=True,
                    )
                    workdir = Path(tmp) / f"r{n}{int(detect)}"
                    workdir.mkdir()
                    runs[detect].append(
                        stream(broker, ports["cam0"], workdir, events=args.events, detect=detect)
                    )
        finally:
            broker.stop()
    report(times, runs, args)
    return 0


def report(
    times: dict[str, dict[str, float]], runs: dict[bool, list[dict[str, Any]]], args: Any
) -> None:
    print("detector time per 1920x1080 JPEG (decode + detect), COCO-SSD, ms:")
    for name, stats in times.items():
        print(f"  {name:<32} p50 {stats['p50']:6.1f}   p90 {stats['p90']:6.1f}")
    print(
        f"trigger -> file / -> event at {RATE:.0f} events/s, 1080p camera, {args.events} events, each run:"
    )
    for detect in (False, True):
        for run in runs[detect]:
            file, event = run["trigger_to_file_ms"], run["trigger_to_event_ms"]
            print(
                f"  detection {'on ' if detect else 'off'}  file p50 {file['p50']:6.2f} p90 {file['p90']:6.2f}"
                f" p99 {file['p99']:6.2f} ms   event p50 {event['p50']:6.2f} ms"
                f"   received {run['received']}/{args.events}"
                + (f"   pictures {run['detections']}" if detect else "")
            )

    def median(detect: bool, key: str, stat: str | None = None) -> float:
        return statistics.median(run[key][stat] if stat else run[key] for run in runs[detect])

    for stat in ("p50", "p90"):
        off, on = (
            median(False, "trigger_to_file_ms", stat),
            median(True, "trigger_to_file_ms", stat),
        )
        print(
            f"  trigger -> file {stat}, median of runs: off {off:.2f} ms, on {on:.2f} ms ({on / off:.2f}x)"
        )
    print("service RSS, MiB (median of runs):")
    for key in ("idle_rss_mib", "peak_rss_mib"):
        off, on = median(False, key), median(True, key)
        print(f"  {key:<14} off {off:6.1f}   on {on:6.1f}   (+{on - off:.1f})")


if __name__ == "__main__":
    sys.exit(main())
