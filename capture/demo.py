"""`capture demo`: the whole product on a laptop, no configuration, no hardware.

It starts the camera simulator (two production lines, one camera of every
vendor), writes a real rule file for it, runs the real service on that file
and plays the factory: a thermometer appending readings to a file, an
infrared gate pulsing a (mock) GPIO input, a PLC publishing results on MQTT
when a broker answers on localhost:1883, and a periodic refresh of every
camera. Files appear under the data folder within seconds; edit the rule
file there while it runs and watch the reload.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from capture.simulator import SimulatedCamera, Simulator
from capture.simulator.camera import Vendor
from capture.stopping import StopRequest

log = logging.getLogger("capture.demo")

DEMO_CAMERAS: tuple[tuple[str, Vendor, str, dict[str, object]], ...] = (
    # name, vendor, line, extra rule-file options
    ("line1_nvr_ch1", "hikvision", "Line 1", {"channel": 1}),
    ("line1_nvr_ch2", "hikvision", "Line 1", {"channel": 2}),
    ("line1_dahua", "dahua", "Line 1", {}),
    ("line2_edimax", "edimax", "Line 2", {}),
    ("line2_xrc", "xrc", "Line 2", {}),
    ("line2_mjpeg", "mjpeg", "Line 2", {"path": "/mjpg/video.mjpg"}),
    ("line2_generic", "generic", "Line 2", {"path": "/snap.jpg"}),
)
#: The simulated cameras' password, fresh each run, in a file only its owner reads, so the
#: demo's rule file works as it is with every command (`capture cameras -c demo-data/rules.toml`).
PASSWORD_FILE = "camera-password"  # noqa: S105 - the name of a file, not a password
GPIO_PIN = 17
WEB_PORT = 8080


def register(subparsers: Any) -> None:
    """Add `capture demo` to the CLI."""
    parser = subparsers.add_parser(
        "demo",
        help="run simulator + service on a built-in demo configuration",
        description="Start simulated cameras, write a rule file for them and run the service, "
        "firing example triggers. Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("demo-data"),
        help="folder for pictures, journal and the demo rule file (default: ./demo-data)",
    )
    parser.add_argument(
        "--mqtt",
        default="127.0.0.1:1883",
        metavar="HOST:PORT",
        help="broker to use when one answers (default: 127.0.0.1:1883)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--period",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds between example triggers (default: 3)",
    )
    parser.set_defaults(func=run)


def broker_reachable(host: str, port: int) -> bool:
    """True when something accepts TCP connections there (a broker, presumably)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_web_port(preferred: int = WEB_PORT) -> int:
    """`preferred` when nothing listens on it, else 0 (the service then picks a free port)."""
    try:
        with socket.create_server(("127.0.0.1", preferred)):
            return preferred
    except OSError:
        return 0


def demo_rules(
    sim: Simulator, data: Path, mqtt: tuple[str, int] | None, web_port: int = WEB_PORT
) -> str:
    """The demo's rule file, pointing at the simulator's ports."""
    cameras = []
    for name, vendor, line, extra in DEMO_CAMERAS:
        sim_name = "line1_nvr" if vendor == "hikvision" else name
        options: dict[str, object] = {
            "vendor": vendor,
            "host": "127.0.0.1",
            "port": sim.port_of(sim_name),
            "line": line,
        }
        options.update(extra)
        if vendor != "generic":
            options.update(user="admin", password_file=str(data.resolve() / PASSWORD_FILE))
        body = "\n".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
        cameras.append(f"[cameras.{name}]\n{body}\n")
    mqtt_section = (
        f'[mqtt]\nhost = "{mqtt[0]}"\nport = {mqtt[1]}\ntopic_prefix = "demo/event-capture"\n'
        f'client_id = "event-capture-demo-{secrets.token_hex(3)}"\n'
        if mqtt
        else "[mqtt]\nenabled = false   # no broker answered on the demo's address\n"
    )
    plc = (
        '[triggers.plc]\ntype = "mqtt"\ntopic = "demo/line1/plc/+/result"\npayload = "json"\n'
        'fields = ["id", "state", "station"]\n\n'
        '[[rules]]\nname = "ng_part"\nwhen = "plc"\ncondition = \'state == "NG"\'\n'
        'cameras = ["line1_nvr_ch1", "line1_nvr_ch2"]\nburst = 3\ninterval_ms = 200\n'
        'filename = "{line}/{date}/ng_{station}_{camera}_{time:%H%M%S}_{id}_{seq}.jpg"\n'
        if mqtt
        else ""
    )
    return f"""# Written by `capture demo`: edit and save it while the demo runs to see a reload.
[service]
site = "demo-plant"
line = "Line 1"
log_level = "info"
shutdown_grace_s = 5

[storage]
root = {json.dumps(str(data.resolve() / "snapshots"))}
keep_days = 1

{mqtt_section}
[web]
enabled = true
bind = "127.0.0.1"
port = {web_port}

{"".join(cameras)}
[triggers.ir_gate]
type = "gpio"
pin = {GPIO_PIN}
min_active_ms = 5

[triggers.thermometer]
type = "file"
path = {json.dumps(str(data.resolve() / "thermometer.log"))}
parser = "regex"
pattern = 'T=(?P<temp>[0-9.]+)'

[triggers.refresh]
type = "interval"
every_s = 10

{plc}
[[rules]]
name = "part_at_gate"
when = "ir_gate"
cameras = ["line2_edimax", "line2_xrc"]

[[rules]]
name = "fever"
when = "thermometer"
condition = "temp >= 37.5"
cameras = ["line1_dahua"]
filename = "{{line}}/{{date}}/fever_{{temp:.1f}}C_{{camera}}_{{time:%H%M%S}}.jpg"

[[rules]]
name = "dvr_view"
when = "refresh"
cameras = ["line:Line 1", "line:Line 2"]
filename = "latest-views/{{camera}}_{{time:%H%M%S}}.jpg"
"""


def _simulated_cameras(password: str) -> list[SimulatedCamera]:
    cams: dict[str, SimulatedCamera] = {}
    for name, vendor, line, _ in DEMO_CAMERAS:
        if vendor == "hikvision":
            cams["line1_nvr"] = SimulatedCamera(
                "line1_nvr", "hikvision", password=password, channels=2, line=line
            )
        elif vendor == "generic":
            cams[name] = SimulatedCamera(name, vendor, auth="none", line=line)
        else:
            cams[name] = SimulatedCamera(name, vendor, password=password, line=line)
    return list(cams.values())


class _Factory:
    """Plays the factory floor: thermometer lines, IR gate pulses, PLC messages."""

    def __init__(
        self, data: Path, pin_factory: Any, mqtt: tuple[str, int] | None, period: float
    ) -> None:
        self.thermometer = data / "thermometer.log"
        self.pin = pin_factory.pin(GPIO_PIN)
        self.mqtt = mqtt
        self.period = period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-factory", daemon=True)

    def _run(self) -> None:
        client = self._mqtt_client()
        readings = itertools.cycle([36.4, 36.9, 37.9, 36.6])
        for step in itertools.count():
            if self.stop.wait(self.period):
                break
            temp = next(readings)
            with self.thermometer.open("a", encoding="utf-8") as file:
                file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')};T={temp};C\n")
            if step % 2 == 0:
                self.pin.drive_low()  # pull-up input: low = the IR beam is broken
                time.sleep(0.02)
                self.pin.drive_high()
            if client is not None:
                state = "NG" if step % 3 == 2 else "OK"
                payload = json.dumps({"id": 8800 + step, "state": state, "station": "S2"})
                client.publish("demo/line1/plc/S2/result", payload, qos=1)
        if client is not None:
            from capture.mqtt_close import close_client  # noqa: PLC0415 - imports paho, as below

            close_client(client)

    def _mqtt_client(self) -> Any:
        if self.mqtt is None:
            return None
        import paho.mqtt.client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"demo-plc-{os.getpid()}")
        client.connect(*self.mqtt)
        client.loop_start()
        return client


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C (or --duration); exit 0 after a clean stop."""
    from gpiozero.pins.mock import MockFactory  # noqa: PLC0415

    from capture.config.loader import load_rules  # noqa: PLC0415
    from capture.logs import configure_logging  # noqa: PLC0415
    from capture.service import Service  # noqa: PLC0415

    configure_logging("info")
    data: Path = args.data
    data.mkdir(parents=True, exist_ok=True)
    (data / "thermometer.log").touch()
    host, _, port = args.mqtt.rpartition(":")
    mqtt = (host, int(port)) if broker_reachable(host, int(port)) else None
    password = secrets.token_urlsafe(12)
    write_secret(data / PASSWORD_FILE, password)
    stop = StopRequest()
    stop.install()
    with Simulator(_simulated_cameras(password)) as sim:
        rules_path = data / "rules.toml"
        rules_path.write_text(demo_rules(sim, data, mqtt, free_web_port()), encoding="utf-8")
        pin_factory = MockFactory()
        service = Service(rules_path, loaded=load_rules(rules_path), pin_factory=pin_factory)
        service.start()
        service.engine.add_report_listener(_print_report)
        factory = _Factory(data, pin_factory, mqtt, args.period)
        factory.thread.start()
        print(f"demo: {len(sim.cameras)} simulated cameras, rule file {rules_path}")
        print(
            f"demo: pictures in {data / 'snapshots'}; MQTT events: "
            + (
                f"mosquitto_sub -h {mqtt[0]} -p {mqtt[1]} -t 'demo/event-capture/#' -v"
                if mqtt
                else "no broker on " + args.mqtt
            )
        )
        if service.web is not None:
            print(f"demo: dashboard at {service.web.url}")
        print(try_it(rules_path))
        print("demo: Ctrl-C stops", flush=True)
        stop.wait(args.duration)
        factory.stop.set()
        factory.thread.join(timeout=5)
        service.stop()
        pin_factory.close()
    print("demo: stopped")
    return 0


def write_secret(path: Path, secret: str) -> None:
    """Write `secret` to a file only its owner can read (0600, also when it existed)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(secret + "\n")


def try_it(rules_path: Path) -> str:
    """The start-up lines that show the other commands working on the demo's own rule file."""
    config = f"-c {rules_path}"
    return "\n".join(
        [
            "demo: while it runs, every command works on its rule file "
            f"(camera password in {rules_path.parent / PASSWORD_FILE}, mode 0600), e.g.:",
            f"  capture cameras {config}",
            f"  capture snap line1_dahua {config}",
            f"  capture fire refresh {config} --dry-run",
            f"  capture events {config} --since 10m",
        ]
    )


def _print_report(report: Any) -> None:
    for result in report.results:
        if result.ok:
            print(
                f"  {report.rule:<12} {result.camera:<14} #{result.seq} -> {result.path} "
                f"({result.bytes // 1024} KB, {result.trigger_to_image_ms:.0f} ms after the trigger)",
                flush=True,
            )
        else:
            print(
                f"  {report.rule:<12} {result.camera:<14} #{result.seq} !! {result.error_type}: {result.error_message}",
                flush=True,
            )
