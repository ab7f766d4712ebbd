"""CPU and latency of one camera's snapshots, the driver alone, against the simulator.

    .venv/bin/python bench/snapshot.py [--count N] [--vendor hikvision]

The simulator runs in a process of its own (as a camera is another machine);
this process builds one real driver (digest auth, keep-alive, the transport
that ships) and takes N snapshots back to back, then N paced at 20/s. It
prints this process's CPU per snapshot (user + system, `os.times`) and the
latency percentiles. Run it on two commits in one sitting to compare
transports; the machine is shared, so compare figures of the same sitting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PASSWORD, simulator  # noqa: E402 - the benchmark's own simulator process


def measure(camera: object, count: int, rate: float | None) -> dict[str, float]:
    """Take `count` snapshots (paced at `rate` per second, or back to back)."""
    latencies: list[float] = []
    before = os.times()
    start = time.perf_counter()
    for n in range(count):
        if rate:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        began = time.perf_counter()
        camera.snapshot()  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - began) * 1000)
    elapsed = time.perf_counter() - start
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    latencies.sort()
    return {
        "cpu_ms": cpu / count * 1000,
        "p50_ms": statistics.median(latencies),
        "p90_ms": latencies[int(0.9 * (count - 1))],
        "per_s": count / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="snapshots back to back")
    parser.add_argument("--vendor", default="hikvision", help="simulated vendor (digest auth)")
    args = parser.parse_args()

    from pydantic import TypeAdapter  # noqa: PLC0415

    from capture.cameras import build_camera  # noqa: PLC0415
    from capture.config.schema import CameraConfig  # noqa: PLC0415

    with simulator([{"name": "cam", "vendor": args.vendor, "password": PASSWORD}]) as ports:
        config = TypeAdapter(CameraConfig).validate_python(
            {
                "vendor": args.vendor,
                "host": "127.0.0.1",
                "port": ports["cam"],
                "user": "admin",
                "password": PASSWORD,
            }
        )
        camera = build_camera("cam", config)
        try:
            camera.snapshot()  # the login handshake, outside the figures
            fast = measure(camera, args.count, None)
            paced = measure(camera, max(args.count // 10, 20), 20.0)
        finally:
            camera.close()
    print(
        f"{'one camera, ' + args.vendor:<32} {'CPU ms/snap':>12} {'p50 ms':>8} {'p90 ms':>8} {'snaps/s':>8}"
    )
    for label, figures in (("back to back", fast), ("paced at 20/s", paced)):
        print(
            f"{label:<32} {figures['cpu_ms']:>12.3f} {figures['p50_ms']:>8.2f} "
            f"{figures['p90_ms']:>8.2f} {figures['per_s']:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
