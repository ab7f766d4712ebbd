"""Soak test (not in CI): hours of factory life in minutes, proving nothing is lost and RSS stays flat.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 50] [--kill-every 30] [--flap-every 7]
                                   [--max-total-mb MB] [--max-rss-growth MIB_PER_MIN]

`capture run` runs as its own process on a private mosquitto that is
SIGKILLed and restarted every --kill-every seconds, with two simulated
cameras of which one flaps (drops every connection for --flap-every seconds,
then works again). This process publishes numbered QoS 1 triggers from a
persistent session and counts the event messages that come back on another
persistent session. It prints RSS over time, its growth over the second half
of the run and the lost events, and exits 1 if any trigger never produced an
event message or RSS grew faster than --max-rss-growth over the second half
(by more than RSS_STEP_MIB in all, one step of the heap).
With --max-total-mb, retention keeps the pictures within that size (checked
every 5 s), so the storage's index stops growing and RSS with it; without it
every picture is kept, and the limit allows the index its INDEX_BYTES per
picture kept on top.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PASSWORD, Service, rss_kib, rules_toml  # noqa: E402
from capture.simulator import SimulatedCamera, Simulator  # noqa: E402
from tests.broker import Broker  # noqa: E402
from tests.faults.conftest import kill_broker, persisted_after  # noqa: E402

PREFIX = "soak"
RULE = '[[rules]]\nname = "shot"\nwhen = "plc"\ncameras = ["steady", "flappy"]\nfilename = "{camera}/{n}.jpg"\n'
DRAIN_S = 120
MAX_RSS_GROWTH = 0.5
"""MiB/min over the second half: flat within measuring noise (0.07 measured in 10 minutes)."""
RSS_STEP_MIB = 2.0
"""The heap grows in steps (one of 1.1 MiB seen in a flat 4-minute run): less in all is no trend."""
INDEX_BYTES = 500
"""The storage index's memory per picture kept (docs/storage-and-journal.md: 461 bytes measured)."""
MIB = 1024 * 1024


class Counter:
    """Persistent-session sender and listener; remembers which triggers came back as events."""

    def __init__(self, broker: Broker) -> None:
        self.received: set[int] = set()
        self.messages = 0
        self.lock = threading.Lock()
        self.listener = self._client("soak-listener")
        self.listener.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/events/#", qos=1)
        self.listener.on_message = self._on_message
        self.sender = self._client("soak-sender")
        self.sender.max_inflight_messages_set(1000)
        for client in (self.listener, self.sender):
            client.connect(broker.host, broker.port)
            client.loop_start()

    @staticmethod
    def _client(client_id: str) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        client.reconnect_delay_set(0.1, 1)
        return client

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        n = int(json.loads(message.payload)["values"]["n"])
        with self.lock:
            self.received.add(n)
            self.messages += 1

    def send(self, n: int) -> None:
        self.sender.publish("bench/trigger", json.dumps({"n": n}), qos=1)

    def missing(self, sent: int) -> list[int]:
        with self.lock:
            return sorted(set(range(sent)) - self.received)

    def close(self) -> None:
        for client in (self.listener, self.sender):
            client.disconnect()
            client.loop_stop()


def bounded(text: str, max_total_mb: float | None) -> str:
    """The bench rule file with retention by size every 5 s when `max_total_mb` is given."""
    if max_total_mb is None:
        return text
    hourly = "retention_interval_s = 3600\n"
    assert hourly in text, "bench/run.py's rule file changed: update soak.bounded"
    return text.replace(hourly, f"retention_interval_s = 5\nmax_total_mb = {max_total_mb}\n")


def second_half(samples: list[tuple[float, ...]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The sample nearest the middle of the run, and the last one."""
    t_end = samples[-1][0]
    return min(samples, key=lambda sample: abs(sample[0] - t_end / 2)), samples[-1]


def growth_per_minute(samples: list[tuple[float, float]]) -> float:
    """RSS growth (MiB/min) from the sample nearest the middle of the run to the last one."""
    (t_mid, rss_mid), (t_end, rss_end) = second_half(samples)
    return (rss_end - rss_mid) / ((t_end - t_mid) / 60) if t_end > t_mid else 0.0


def growth_mib(samples: list[tuple[float, float]]) -> float:
    """RSS growth (MiB) from the sample nearest the middle of the run to the last one."""
    (_, rss_mid), (_, rss_end) = second_half(samples)
    return rss_end - rss_mid


def rss_limit(max_growth: float, kept: list[tuple[float, int]], bounded: bool) -> float:
    """The allowed growth (MiB/min): `max_growth`, plus the index of the pictures kept if unbounded.

    `kept` holds (seconds into the run, pictures on disk) samples.
    """
    if bounded or len(kept) < 2:
        return max_growth
    (t_mid, n_mid), (t_end, n_end) = second_half(kept)
    per_minute = (n_end - n_mid) / ((t_end - t_mid) / 60) if t_end > t_mid else 0.0
    return max_growth + per_minute * INDEX_BYTES / MIB


def failures(lost: list[int], growth: float, limit: float, grown_mib: float) -> list[str]:
    """Why the soak failed; empty when nothing was lost and RSS stayed within its limit.

    `growth` is the second half's MiB/min, `grown_mib` its MiB in all: RSS fails
    when it grew faster than `limit` by more than one step of the heap.
    """
    found = []
    if lost:
        found.append(f"{len(lost)} trigger(s) never produced an event message")
    if growth > limit and grown_mib > RSS_STEP_MIB:
        found.append(
            f"RSS grew {growth:.2f} MiB/min ({grown_mib:.1f} MiB) over the second half, "
            f"more than {limit:.2f} MiB/min"
        )
    return found


def pictures_kept(root: Path) -> int:
    """Pictures under the storage root (the rule writes {camera}/{n}.jpg)."""
    count = 0
    for folder in ("steady", "flappy"):
        try:
            with os.scandir(root / folder) as entries:
                count += sum(1 for entry in entries if entry.name.endswith(".jpg"))
        except FileNotFoundError:
            pass
    return count


def soak(
    minutes: float,
    rate: float,
    kill_every: float,
    flap_every: float,
    max_total_mb: float | None = None,
    max_rss_growth: float = MAX_RSS_GROWTH,
) -> int:
    cameras = [
        SimulatedCamera("steady", "hikvision", password=PASSWORD),
        SimulatedCamera("flappy", "hikvision", password=PASSWORD),
    ]
    with TemporaryDirectory(prefix="soak-") as tmp, Simulator(cameras) as sim:
        workdir = Path(tmp)
        broker = Broker(workdir / "mosquitto")
        broker.start()
        ports = {camera.name: sim.port_of(camera.name) for camera in cameras}
        text = rules_toml(workdir / "data", broker, ports, RULE, prefix=PREFIX, fsync=True)
        text = bounded(text, max_total_mb)
        service = Service(workdir, text)
        counter = Counter(broker)
        started = time.time()
        # mosquitto saves sessions every second: one killed before its first save forgets them.
        while not persisted_after(broker, started + 1):
            time.sleep(0.1)
        sent, kills, flaps = 0, 0, 0
        next_kill, next_flap, next_sample = started + kill_every, started + flap_every, started
        end = started + minutes * 60
        retention = f", pictures kept within {max_total_mb} MB" if max_total_mb else ""
        print(
            f"soak: {minutes} min at {rate}/s, broker SIGKILL every {kill_every} s, "
            f"camera flap every {flap_every} s{retention}"
        )
        samples: list[tuple[float, float]] = []
        kept: list[tuple[float, int]] = []
        print(f"{'t_s':>6} {'sent':>7} {'events':>7} {'rss_mib':>8} {'kills':>5} {'flaps':>5}")
        try:
            while (now := time.time()) < end:
                if service.process.poll() is not None:
                    print("capture run exited:", service.log.read_text()[-3000:])
                    return 1
                if now >= next_kill and persisted_after(broker, next_kill - kill_every):
                    kill_broker(broker)
                    broker.start()
                    kills, next_kill = kills + 1, now + kill_every
                if now >= next_flap:
                    faults = sim.faults("flappy")
                    faults.drop_connection = not faults.drop_connection
                    flaps, next_flap = flaps + 1, now + flap_every
                if now >= next_sample:
                    rss = rss_kib(service.process.pid) / 1024
                    samples.append((now - started, rss))
                    kept.append((now - started, pictures_kept(workdir / "data")))
                    print(
                        f"{now - started:6.0f} {sent:7d} {counter.messages:7d} {rss:8.1f} {kills:5d} {flaps:5d}",
                        flush=True,
                    )
                    next_sample = now + 10
                counter.send(sent)
                sent += 1
                delay = started + sent / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            sim.faults("flappy").drop_connection = False
            deadline = time.time() + DRAIN_S
            while counter.missing(sent) and time.time() < deadline:
                time.sleep(0.5)
            rss = rss_kib(service.process.pid) / 1024
            peak = rss_kib(service.process.pid, "VmHWM") / 1024
            lost = counter.missing(sent)
            growth = growth_per_minute(samples)
            limit = rss_limit(max_rss_growth, kept, bounded=max_total_mb is not None)
            print(
                f"{time.time() - started:6.0f} {sent:7d} {counter.messages:7d} {rss:8.1f} {kills:5d} {flaps:5d}"
            )
            print(
                f"sent={sent} events={len(counter.received)} messages={counter.messages} "
                f"lost={len(lost)} rss_mib={rss:.1f} peak_rss_mib={peak:.1f} broker_kills={kills} "
                f"rss_growth_second_half_mib_per_min={growth:.2f} "
                f"rss_growth_limit_mib_per_min={limit:.2f}"
            )
            if lost:
                print(f"LOST triggers (first 50): {lost[:50]}")
            failed = failures(lost, growth, limit, growth_mib(samples))
            for reason in failed:
                print(f"FAIL: {reason}")
            return 1 if failed else 0
        finally:
            counter.close()
            service.stop()
            broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, default=10, help="how long to publish (default 10)"
    )
    parser.add_argument("--rate", type=float, default=50, help="triggers per second (default 50)")
    parser.add_argument(
        "--kill-every", type=float, default=30, help="seconds between broker SIGKILLs"
    )
    parser.add_argument("--flap-every", type=float, default=7, help="seconds between camera flips")
    parser.add_argument(
        "--max-total-mb",
        type=float,
        default=None,
        help="keep the pictures within this size (retention every 5 s); default: keep all",
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=MAX_RSS_GROWTH,
        metavar="MIB_PER_MIN",
        help=f"fail if RSS grows faster over the second half, by more than {RSS_STEP_MIB} MiB "
        f"(default {MAX_RSS_GROWTH}; without --max-total-mb plus {INDEX_BYTES} bytes per "
        "picture kept meanwhile)",
    )
    args = parser.parse_args()
    return soak(
        args.minutes,
        args.rate,
        args.kill_every,
        args.flap_every,
        args.max_total_mb,
        args.max_rss_growth,
    )


if __name__ == "__main__":
    sys.exit(main())
