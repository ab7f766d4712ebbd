"""Fixtures shared by the whole suite: a private broker, a condition waiter, tools and the secret sweep.

The secret sweep runs under every test of the suite. A handler on the root
logger (set to DEBUG for the whole run) searches every log record, its
message, exception and stack texts, before any scrubber has touched it; after
each test, what the test wrote to stdout and stderr (its processes' output
included) is searched too. The needles are every secret the suite configures:
each test module's constants named like `PASSWORD`, `WEB_TOKEN`, `SECRETS`
(strings, or collections of them), the password and token values of its
`*ENVIRON` mappings, and the `password`/`token`/`session` values written in
clear in the rule files it keeps as constants (one line, at least 8 characters,
not a path). A hit fails the test that caused it. A test that logs a
secret on purpose (to test the scrubber) says so with
`@pytest.mark.secret_logged_on_purpose(reason)`; nothing else is exempt.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from capture.simulator import SimulatedCamera, Simulator
from tests.broker import Broker
from tests.factory import ModbusDevice, OpcuaServer
from tests.s3 import SeaweedS3, running_store

# Hypothesis draws the same examples on every run (a red CI run is reproducible, never
# the luck of the draw); CAPTURE_FUZZ=1 draws new ones, for a hunt (docs/testing.md).
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile("fuzz" if os.environ.get("CAPTURE_FUZZ") else "repeatable")

SIM_PASSWORD = "Sim-Pass-4711"

REQUIRE_TOOLS = os.environ.get("CAPTURE_REQUIRE_TOOLS") == "1"
"""Set by ./dev test (and so in CI): a test whose tool is missing fails instead of skipping."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_tool(found, what): skipped when `what` is not installed, failed under "
        "CAPTURE_REQUIRE_TOOLS=1 (./dev test); use tests.conftest.needs_tool",
    )
    config.addinivalue_line(
        "markers",
        "secret_logged_on_purpose(reason): the test logs or prints a configured secret on "
        "purpose (to test a scrubber); the suite's secret sweep leaves it alone",
    )


def needs_tool(found: object, what: str) -> pytest.MarkDecorator:
    """Mark a test needing an installed program (`found`: its path, or whether it exists)."""
    return pytest.mark.needs_tool(found=bool(found), what=what)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_tool"):
        if mark.kwargs["found"]:
            continue
        missing = f"{mark.kwargs['what']} is not installed"
        if REQUIRE_TOOLS:
            pytest.fail(
                f"{missing}, and CAPTURE_REQUIRE_TOOLS=1 (./dev test, CI) requires it: "
                "./dev test installs it",
                pytrace=False,
            )
        pytest.skip(missing)


# ---------------------------------------------------------------- the secret sweep

_SECRET_NAME = re.compile(r"(?:^|_)(?:PASSWORD|TOKEN|SECRET)S?$")
_SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET")
_RULE_FILE_SECRET = re.compile(r'^\s*(?:password|token|session)\s*=\s*"([^"\n]+)"', re.M)
MIN_SECRET_LENGTH = 8
"""Shorter test values ('pw', 'x') are placeholders and would be found in any text."""


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (tuple, list, set, frozenset)):
        for item in value:
            yield from _strings(item)


def configured_secrets(modules: Iterable[object]) -> set[str]:
    """The secrets the given test modules configure, by the naming rules of the module docstring."""
    found: set[str] = set()
    for module in modules:
        for name, value in vars(module).items():
            if _SECRET_NAME.search(name):
                found.update(_strings(value))
            elif isinstance(value, str) and name.isupper():
                found.update(_RULE_FILE_SECRET.findall(value))  # a rule file the module uses
            elif name.endswith("ENVIRON") and isinstance(value, Mapping):
                found.update(
                    text
                    for key, text in value.items()
                    if isinstance(key, str) and _SECRET_KEY.search(key) and isinstance(text, str)
                )
    # A secret is one line (an environment file cannot hold more): a multi-line
    # constant whose name ends in _TOKEN is a piece of a rule file, not a secret;
    # one starting with "/" is the path of a secrets file.
    return {
        s for s in found if len(s) >= MIN_SECRET_LENGTH and "\n" not in s and not s.startswith("/")
    }


class SecretSweep:
    """Searches what it is shown for every secret and keeps only the hits (thread-safe)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._hits: list[str] = []
        self._lock = threading.Lock()
        self.needles: tuple[tuple[str, bytes], ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Search for these secrets too from now on."""
        known = {text for text, _ in self.needles} | set(secrets)
        self.needles = tuple((text, text.encode()) for text in sorted(known))

    def look(self, where: str, seen: str | bytes) -> None:
        """Record a hit for each secret in `seen`; nothing else is kept."""
        for text, raw in self.needles:
            if (raw if isinstance(seen, bytes) else text) in seen:
                with self._lock:
                    self._hits.append(f"{text!r} in {where}")

    def look_under(self, root: Path) -> None:
        """Search every path under `root` and every file's bytes but the pictures'."""
        for path in root.rglob("*") if root.is_dir() else ():
            self.look("a file name", str(path))
            if path.is_file() and path.suffix != ".jpg":
                self.look(f"file {path.relative_to(root)}", path.read_bytes())

    def take(self) -> list[str]:
        """The hits since the last call."""
        with self._lock:
            hits, self._hits = self._hits, []
        return hits


class _SweepHandler(logging.Handler):
    """Shows the sweep every log record: message, exception and stack texts."""

    def __init__(self, sweep: SecretSweep) -> None:
        super().__init__(logging.DEBUG)
        self.sweep = sweep

    def handle(self, record: logging.LogRecord) -> bool:
        # Not Handler.handle: no filters and no lock; the sweep has its own.
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            message = str(record.msg)
        exception = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.sweep.look(
            f"log record {record.name} {record.levelname}",
            f"{message}\n{record.exc_text or ''}\n{exception}\n{record.stack_info or ''}",
        )
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does it
        self.handle(record)


SWEEP = SecretSweep()
"""The suite's sweep; its needles are filled in once every test module is imported."""

_HANDLER = _SweepHandler(SWEEP)
REPORTS = pytest.StashKey[list[pytest.TestReport]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    # First in line: it sees every record before a handler's scrubbing filter rewrites it.
    root.handlers.insert(0, _HANDLER)
    root.setLevel(logging.DEBUG)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Every collected test module, and what they import of the suite (conftests, helpers).
    modules = {id(module): module for item in session.items if (module := _module_of(item))}
    for name, module in list(sys.modules.items()):
        if name == "tests" or name.startswith(("tests.", "bench.")):
            modules[id(module)] = module
    SWEEP.add(configured_secrets(modules.values()))


def _module_of(item: pytest.Item) -> object | None:
    parent = item.getparent(pytest.Module)
    return parent.obj if parent is not None else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    logging.getLogger().removeHandler(_HANDLER)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Keep each phase's report on the test, for the sweep of what the test printed."""
    outcome = yield
    item.stash.setdefault(REPORTS, []).append(outcome.get_result())


def look_at_output(sweep: SecretSweep, reports: Iterable[pytest.TestReport]) -> None:
    """Show the sweep what a test wrote to stdout and stderr (its subprocesses' included)."""
    for report in reports:
        for title, text in report.sections:
            if not title.startswith("Captured log"):  # records were searched as they came
                sweep.look(f"the test's {title.lower()}", text)


@pytest.fixture(scope="session", autouse=True)
def secret_sweep() -> Iterator[SecretSweep]:
    """The suite's sweep; a hit after the last test (in a session fixture's teardown) fails the run."""
    SWEEP.take()  # collection is not a test
    yield SWEEP
    assert SWEEP.take() == [], "a secret was seen after the last test"


#: How long a test's threads may take to end after its teardown (a stopped
#: service's last hand-over, an idle storage's folder-fsync thread: 5 s).
THREAD_GRACE_S = 10.0


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running once its fixtures are torn down.

    A thread that outlives its test belongs to a service, trigger, camera or
    simulator that was not stopped: the same leak would keep a Pi's service
    from stopping or reloading cleanly.
    """
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE_S
    while (left := [t for t in threading.enumerate() if t not in before and t.is_alive()]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert not left, f"threads left running {THREAD_GRACE_S:.0f} s after the test: {left}"


@pytest.fixture(autouse=True)
def no_secret_seen(request: pytest.FixtureRequest, secret_sweep: SecretSweep) -> Iterator[None]:
    """Fail the test if any secret showed up while it ran (its fixtures' teardown included)."""
    secret_sweep.take()  # what came before belongs to an earlier test
    yield
    look_at_output(secret_sweep, request.node.stash.get(REPORTS, []))
    hits = secret_sweep.take()
    if hits and request.node.get_closest_marker("secret_logged_on_purpose") is None:
        pytest.fail("secret seen: " + "; ".join(sorted(set(hits))), pytrace=False)


# ---------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A mosquitto started once for the session on a free port.

    Tests that stop or restart it must leave it running; `broker_fresh` is the
    one to use when a test wants a broker of its own.
    """
    instance = Broker(tmp_path_factory.mktemp("mosquitto"))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def s3_store(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server started once for the session (about 5 s) on free ports.

    Tests share it: each writes under a key prefix of its own (its site name).
    A test that stops the store starts its own (`tests.s3.running_store`).
    It serves HTTPS too, with `certificate` (a private CA's, as far as a
    client knows), on `https_endpoint`.
    """
    yield from running_store(tmp_path_factory.mktemp("seaweedfs"), certificate)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    key.chmod(0o644)  # mosquitto, run as this user, reads it
    return cert, key


@pytest.fixture
def broker_fresh(tmp_path: Path) -> Iterator[Broker]:
    """A mosquitto of this test's own, free to be stopped and restarted."""
    instance = Broker(tmp_path / "mosquitto")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """Two simulated cameras on one line: an NVR channel and a Dahua."""
    cameras = [
        SimulatedCamera("nvr", "hikvision", password=SIM_PASSWORD, channels=2),
        SimulatedCamera("dahua", "dahua", password=SIM_PASSWORD),
    ]
    with Simulator(cameras) as sim:
        yield sim


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01
) -> object:
    """Poll `predicate` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


@pytest.fixture
def modbus_device() -> Iterator[ModbusDevice]:
    """A Modbus TCP remote I/O module (pymodbus's server) on a free loopback port."""
    device = ModbusDevice()
    yield device
    device.close()


@pytest.fixture
def opcua_server() -> Iterator[OpcuaServer]:
    """An OPC UA server (asyncua's) with Line1.Gate and Line1.Count, on a free loopback port."""
    server = OpcuaServer()
    yield server
    server.close()
