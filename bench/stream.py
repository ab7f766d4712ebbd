"""How near the trigger a stream-backed camera's picture is, next to a snapshot camera's delay.

    ./dev bench-stream          # or: .venv/bin/python bench/stream.py [--events N]

The camera simulator runs in a process of its own: an MJPEG camera (640x480,
~30 KB frames) at 10 and then 25 fps, and a Dahua snapshot camera. This
process runs the engine, storage and journal as the service does, with one
rule `frames_ms = [0]` on both cameras, and fires `--events` triggers at
about 10/s with random gaps (so triggers fall anywhere between two frames).
For each saved frame it takes `trigger_to_image_ms`: for the stream-backed
camera the offset between the trigger and the chosen frame's arrival (goal:
within one frame interval), for the snapshot camera its delay. It also
prints what the stream costs: the buffer's memory with `buffer_s = 10`
(and this process's RSS growth), its bandwidth, and CPU while idle with the
stream open.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import PASSWORD, cpu_s, percentiles, rss_kib, simulator  # bench/ is sys.path[0]

from capture.cameras import build_camera
from capture.cameras.live import LiveCamera
from capture.config.loader import parse_rules
from capture.engine import Engine
from capture.events import Event, FiringReport
from capture.journal import Journal
from capture.storage import Storage
from tests import rtsp_server


def rules_text(root: Path, belt: int, gate: int) -> str:
    return f"""
[storage]
root = "{root}"
filename = "{{camera}}/{{event_id}}_{{offset_ms:+d}}.jpg"

[cameras.belt]
vendor = "mjpeg"
host = "127.0.0.1"
port = {belt}
path = "/mjpg/video.mjpg"
user = "admin"
password_env = "BENCH_PW"

[cameras.belt.live]
buffer_s = 10

[cameras.gate]
vendor = "dahua"
host = "127.0.0.1"
port = {gate}
user = "admin"
password_env = "BENCH_PW"

[triggers.plc]
type = "http"

[[rules]]
name = "moment"
when = "plc"
cameras = ["belt", "gate"]
frames_ms = [0]
"""


def run(fps: int, events: int, workdir: Path) -> dict[str, Any]:
    cameras_spec = [
        {"name": "belt", "vendor": "mjpeg", "password": PASSWORD, "fps": fps},
        {"name": "gate", "vendor": "dahua", "password": PASSWORD},
    ]
    with simulator(cameras_spec) as ports:
        root = workdir / f"fps{fps}"
        text = rules_text(root, ports["belt"], ports["gate"])
        rules = parse_rules(text, "rules.toml", {"BENCH_PW": PASSWORD}).rules
        rss_before = rss_kib(os.getpid())
        cameras = {name: build_camera(name, config) for name, config in rules.cameras.items()}
        journal = Journal(root / "journal.sqlite3")
        storage = Storage(rules.storage)
        engine = Engine(rules, cameras, storage, journal)
        reports: list[FiringReport] = []
        engine.add_report_listener(reports.append)
        belt = cameras["belt"]
        assert isinstance(belt, LiveCamera)
        try:
            while belt.worker.ring.span_s() < 2.0:
                time.sleep(0.05)
            cpu0, wall0 = cpu_s(os.getpid()), time.monotonic()
            time.sleep(5.0)  # idle, the stream open: what holding it costs
            idle_cpu = (cpu_s(os.getpid()) - cpu0) / (time.monotonic() - wall0)
            for _ in range(events):
                engine.submit(Event.now("plc"))
                time.sleep(random.uniform(0.05, 0.15))
            engine.wait_idle(30)
            while belt.worker.ring.span_s() < 9.5:  # a full 10 s buffer for the memory figure
                time.sleep(0.1)
            state = belt.worker.state()
            ring_mib = belt.worker.ring.size_bytes / 1024 / 1024
            rss_growth = (rss_kib(os.getpid()) - rss_before) / 1024
        finally:
            engine.stop(5)
            for camera in cameras.values():
                camera.close()
            journal.close()
            storage.close()
    results = [result for report in reports for result in report.results]
    stream = [abs(r.trigger_to_image_ms) for r in results if r.camera == "belt" and r.ok]
    snap = [r.trigger_to_image_ms for r in results if r.camera == "gate" and r.ok]
    return {
        "fps": fps,
        "frame_interval_ms": 1000 / fps,
        "saved": {"stream": len(stream), "snapshot": len(snap), "fired": events},
        "via": sorted({r.via or "" for r in results if r.camera == "belt"}),
        "stream_offset_ms": percentiles(stream),
        "snapshot_delay_ms": percentiles(snap),
        "buffer_mib_10s": round(ring_mib, 2),
        "rss_growth_mib": round(rss_growth, 1),
        "kbit_s": state.kbit_s,
        "measured_fps": state.fps,
        "idle_cpu_percent": round(idle_cpu * 100, 1),
    }


def rtsp_run(events: int) -> dict[str, Any] | None:
    """Two 1080p15 H.264 RTSP cameras (GOP 30) with 10 s buffers: memory, CPU, decode cost, offset.

    Two, one after the other, to tell what each camera costs (its buffer and
    demuxer) from what the process pays once (FFmpeg's libraries, and the
    decoder's and encoder's working memory, which the allocator keeps).
    """
    if not rtsp_server.available():
        print("  (RTSP skipped: GStreamer's RTSP server is not installed; ./dev bench installs it)")
        return None
    rss_start = rss_kib(os.getpid())
    import av  # noqa: PLC0415, F401 - loaded before the figures: FFmpeg's libraries count once

    figures: dict[str, Any] = {"libraries_mib": round((rss_kib(os.getpid()) - rss_start) / 1024, 1)}
    with rtsp_server.RtspServer(1920, 1080, 15, 30, noise=True) as server:
        cameras: list[LiveCamera] = []
        try:
            for index in (1, 2):
                before = rss_kib(os.getpid())
                camera = build_camera(f"rtsp{index}", camera_config(server.url, index))
                assert isinstance(camera, LiveCamera)
                cameras.append(camera)
                while camera.worker.ring.span_s() < 9.8:
                    time.sleep(0.1)
                held = rss_kib(os.getpid())
                decode_ms = decode_some(camera)
                figures[f"camera{index}"] = {
                    "holding_mib": round((held - before) / 1024, 1),
                    "after_decoding_mib": round((rss_kib(os.getpid()) - held) / 1024, 1),
                    "ring_mib": round(camera.worker.ring.size_bytes / 1024 / 1024, 2),
                    "decode_ms": percentiles(decode_ms),
                }
            camera = cameras[0]
            cpu0, wall0 = cpu_s(os.getpid()), time.monotonic()
            time.sleep(5.0)
            figures["idle_cpu_percent"] = round(
                (cpu_s(os.getpid()) - cpu0) / (time.monotonic() - wall0) * 100 / len(cameras), 1
            )
            offsets = []
            for _ in range(events):
                moment = time.monotonic()
                offsets.append(abs(camera.frame_at(moment).received_monotonic - moment) * 1000)
                time.sleep(random.uniform(0.05, 0.15))
            state = camera.worker.state()
        finally:
            for camera in cameras:
                camera.close()
    figures.update(kbit_s=state.kbit_s, fps=state.fps, offset_ms=percentiles(offsets))
    return figures


def decode_some(camera: LiveCamera, count: int = 30) -> list[float]:
    """Time `frame_at` for buffered frames picked at random: decode from the keyframe + JPEG."""
    # The newest 7 s only: the oldest frames of a full 10 s buffer go while this runs.
    newest = time.monotonic() - 7.0
    held = [frame for frame in camera.worker.ring._frames if frame.arrived > newest]
    spent = []
    for frame in random.sample(held, min(count, len(held))):
        started = time.perf_counter()
        camera.frame_at(frame.arrived)
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def camera_config(url: str, index: int) -> Any:
    text = f"""
[cameras.rtsp{index}]
vendor = "generic"
host = "127.0.0.1"
path = "/unused.jpg"

[cameras.rtsp{index}.live]
url = "{url}"
buffer_s = 10

[triggers.plc]
type = "http"

[[rules]]
name = "moment"
when = "plc"
cameras = ["rtsp{index}"]
"""
    return parse_rules(text, "rules.toml", {}).rules.cameras[f"rtsp{index}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        runs = [run(fps, args.events, Path(tmp)) for fps in (10, 25)]
    print("stream-backed MJPEG camera (640x480) vs snapshot camera, frames_ms = [0], same run")
    for r in runs:
        s, p = r["stream_offset_ms"], r["snapshot_delay_ms"]
        print(
            f"  {r['fps']:>2} fps (frame every {r['frame_interval_ms']:.0f} ms): "
            f"|trigger - frame arrival| p50 {s['p50']:.1f} / p99 {s['p99']:.1f} ms; "
            f"snapshot delay p50 {p['p50']:.1f} / p99 {p['p99']:.1f} ms; "
            f"saved {r['saved']['stream']}+{r['saved']['snapshot']} of {r['saved']['fired']}x2, "
            f"via {','.join(r['via'])}"
        )
        print(
            f"      buffer 10 s = {r['buffer_mib_10s']} MiB (RSS +{r['rss_growth_mib']} MiB), "
            f"{r['kbit_s']:.0f} kbit/s at {r['measured_fps']} fps, "
            f"idle CPU with the stream open {r['idle_cpu_percent']} % of one core"
        )
    rtsp = rtsp_run(args.events // 3)
    if rtsp is not None:
        one, two, o = rtsp["camera1"], rtsp["camera2"], rtsp["offset_ms"]
        print("RTSP H.264 1080p at 15 fps (GOP 30), buffer_s = 10, packets kept undecoded")
        print(
            f"  {rtsp['kbit_s']:.0f} kbit/s at {rtsp['fps']} fps; buffer {one['ring_mib']} MiB; "
            f"RSS per camera holding its stream: +{one['holding_mib']} MiB (first), "
            f"+{two['holding_mib']} MiB (second)"
        )
        print(
            f"  once per process: FFmpeg's libraries {rtsp['libraries_mib']} MiB; decoding "
            f"and encoding 1080p pictures +{one['after_decoding_mib']} MiB (first camera), "
            f"+{two['after_decoding_mib']} MiB more (second)"
        )
        for name, figures in (("first", one), ("second", two)):
            d = figures["decode_ms"]
            print(
                f"  a buffered frame to JPEG ({name} camera; decode from its keyframe + encode): "
                f"p50 {d['p50']:.0f} / p99 {d['p99']:.0f} ms"
            )
        print(
            f"  |trigger - frame arrival| p50 {o['p50']:.1f} / p99 {o['p99']:.1f} ms; "
            f"idle CPU {rtsp['idle_cpu_percent']} % of one core per camera"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
