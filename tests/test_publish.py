"""MQTT out against a real broker: status and last will, commands, outbox replay, message schema."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import capture.publish as publish_module
from capture.config.schema import MqttConfig
from capture.events import CaptureResult, Event, FiringReport
from capture.journal import Journal
from capture.outbox import Outbox, insert_messages
from capture.publish import Publisher, event_message
from capture.rules import RuleDisabled
from tests.broker import Broker
from tests.conftest import wait_for
from tests.mqtt_client import Recorder, publish


def make_publisher(
    broker: Broker, journal: Journal, prefix: str, qos: int = 1, **kwargs: Any
) -> Publisher:
    config = MqttConfig(
        host=broker.host, port=broker.port, topic_prefix=prefix, client_id=f"pub-{prefix}", qos=qos
    )
    return Publisher(config, "plant", "Europe/Berlin", journal, **kwargs)


def report(rule: str = "ng", ok: bool = True) -> FiringReport:
    event = Event.now("plc", {"id": 4711, "station": "S2"})
    result = CaptureResult(
        event_id=event.id, rule=rule, camera="cam1", seq=1, path="Line 3/x.jpg", bytes=123,
        latency_ms=2.5, trigger_to_image_ms=4.0, image_time=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        width=640, height=480,
    ) if ok else CaptureResult(
        event_id=event.id, rule=rule, camera="cam1", seq=1, error_type="AuthFailed",
        error_message="camera cam1: authentication failed (HTTP 401); check user and password_env",
    )  # fmt: skip
    return FiringReport(event=event, rule=rule, site="plant", results=[result])


def test_event_message_schema() -> None:
    message = event_message(report(), ZoneInfo("Europe/Berlin"))
    assert set(message) == {
        "schema",
        "event_id",
        "time",
        "site",
        "rule",
        "trigger",
        "manual",
        "interrupted",
        "values",
        "ok",
        "captures",
    }
    assert message["interrupted"] is False
    assert message["values"] == {"id": 4711, "station": "S2"}
    [capture] = message["captures"]
    assert capture["image_time"] == "2026-11-25T10:00:00.000+01:00"
    assert capture["error"] is None and capture["ok"] is True
    failed = event_message(report(ok=False), ZoneInfo("UTC"))["captures"][0]
    assert (
        failed["error"] == {"type": "AuthFailed", "message": failed["error"]["message"]}
        and failed["path"] is None
    )


def test_publishes_events_and_retained_online_status(tmp_path: Path, broker: Broker) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    publisher = make_publisher(broker, journal, "p1")
    events = Recorder(broker, "p1/events/#")
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        publisher.publish_firing(report())
        [message] = wait_for(events.json)  # type: ignore[misc]
        assert message["rule"] == "ng"
        wait_for(lambda: Outbox(journal).count() == 0)
        status = Recorder(broker, "p1/status")  # retained: arrives on subscribe
        assert wait_for(status.payloads) == [b"online"]
        status.close()
    finally:
        events.close()
        publisher.stop()
        journal.close()
    after = Recorder(broker, "p1/status")
    assert wait_for(after.payloads) == [b"offline"]
    after.close()


def test_over_tls_events_reach_a_broker_verified_by_its_ca_file(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    broker = Broker(tmp_path / "mosquitto", tls=certificate)
    broker.start()
    journal = Journal(tmp_path / "j.sqlite3")
    assert broker.tls_port is not None
    config = MqttConfig(
        host=broker.host, port=broker.tls_port, tls=True, ca_file=cert,
        topic_prefix="tls", client_id="pub-tls",
    )  # fmt: skip
    publisher = Publisher(config, "plant", "Europe/Berlin", journal)
    events = Recorder(broker, "tls/events/#")  # a dashboard on the plain listener
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        publisher.publish_firing(report())
        [message] = wait_for(events.json)  # type: ignore[misc]
        assert message["rule"] == "ng"
        wait_for(lambda: Outbox(journal).count() == 0)  # acknowledged over TLS
    finally:
        events.close()
        publisher.stop()
        journal.close()
        broker.stop()


def test_a_stream_of_events_from_many_threads_arrives_in_order_and_the_outbox_empties(
    tmp_path: Path, broker: Broker
) -> None:
    """Acknowledgements often beat the outbox commit here; none may be lost or misapplied."""
    journal = Journal(tmp_path / "j.sqlite3")
    publisher = make_publisher(broker, journal, "p4")
    events = Recorder(broker, "p4/events/#")
    publisher.start()
    sent: list[str] = []
    lock = threading.Lock()

    def announce(count: int) -> None:
        for _ in range(count):
            firing = report()
            with lock:  # the order in which the engine announced them
                publisher.publish_firing(firing)
                sent.append(firing.event.id)

    try:
        assert publisher.wait_connected(10)
        workers = [threading.Thread(target=announce, args=(100,)) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        wait_for(lambda: len(events.json()) == 300)
        assert [message["event_id"] for message in events.json()] == sent
        wait_for(lambda: Outbox(journal).count() == 0)
        assert publisher.published == 300
    finally:
        events.close()
        publisher.stop()
        journal.close()


def test_commands_reach_the_handler_and_garbage_is_counted(tmp_path: Path, broker: Broker) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    commands: list[dict[str, Any]] = []
    publisher = make_publisher(broker, journal, "p2", on_command=commands.append)
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        for payload in (
            b"\xff\xfe not json",
            b"[1, 2]",
            b"{" * 5000,
            json.dumps({"camera": "cam1"}).encode(),
        ):
            publish(broker, "p2/cmd/snap", payload)
        wait_for(lambda: commands)
        assert commands == [{"camera": "cam1"}]
        assert publisher.rejected_commands == 3
    finally:
        publisher.stop()
        journal.close()


def test_outbox_left_by_a_previous_run_is_published_first_in_order(
    tmp_path: Path, broker: Broker
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    for n in range(5):
        Outbox(journal).put(f"p3/events/r{n}", json.dumps({"n": n}).encode(), 1, False)
    events = Recorder(broker, "p3/events/#")
    publisher = make_publisher(broker, journal, "p3")
    publisher.start()
    try:
        wait_for(lambda: len(events.json()) == 5)
        assert [m["n"] for m in events.json()] == [0, 1, 2, 3, 4]
        wait_for(lambda: Outbox(journal).count() == 0)
    finally:
        events.close()
        publisher.stop()
        journal.close()


def test_rows_another_module_commits_right_before_a_stop_leave_with_it_unlogged(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """capture.upload commits follow-up messages as it goes; a stop does not hold them back."""
    journal = Journal(tmp_path / "j.sqlite3")
    Outbox(journal).put("p9/uploads/left", json.dumps({"n": -1}).encode(), 1, False)
    uploads = Recorder(broker, "p9/uploads/#")
    publisher = make_publisher(broker, journal, "p9")
    caplog.set_level(logging.INFO, logger="capture.publish")
    publisher.start()
    try:
        # The previous run's row goes out at the connection, logged as left in the outbox.
        wait_for(lambda: len(uploads.json()) == 1)
        assert "sending 1 event message(s) left in the outbox" in caplog.text
        caplog.clear()
        for n in range(3):
            row = (f"p9/uploads/r{n}", json.dumps({"n": n}).encode(), 1, False)
            journal.write(lambda connection, row=row: insert_messages(connection, [row]), "t")
            publisher.send_outbox()
        publisher.stop()
        wait_for(lambda: len(uploads.json()) == 4)
        assert [m["n"] for m in uploads.json()] == [-1, 0, 1, 2]
        # Not the restart's "left in the outbox": these rows were never left anywhere.
        assert "left in the outbox" not in caplog.text
    finally:
        uploads.close()
        journal.close()


def test_last_will_says_offline_when_the_process_dies(tmp_path: Path, broker: Broker) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from capture.config.schema import MqttConfig
        from capture.journal import Journal
        from capture.publish import Publisher
        config = MqttConfig(host="{broker.host}", port={broker.port}, topic_prefix="p5", client_id="pub-p5", keepalive_s=5)
        publisher = Publisher(config, "plant", "UTC", Journal(Path(r"{tmp_path}") / "j.sqlite3"))
        publisher.start()
        publisher.wait_connected(10)
        print("up", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        # Its own prefix: a retained `offline` left by another test would arrive first.
        status = Recorder(broker, "p5/status")
        wait_for(lambda: status.payloads() == [b"online"])
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        wait_for(lambda: status.payloads()[-1:] == [b"offline"], timeout=20)
        status.close()
    finally:
        process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


def test_a_refused_command_is_logged_with_the_reason_and_counted(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(command: Any) -> None:
        raise RuleDisabled(command["rule"])  # what the engine says for enabled = false

    journal = Journal(tmp_path / "j.sqlite3")
    publisher = make_publisher(broker, journal, "p6", on_command=handler)
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        with caplog.at_level(logging.WARNING, logger="capture.publish"):
            publish(broker, "p6/cmd/snap", json.dumps({"rule": "off"}))
            wait_for(lambda: publisher.rejected_commands == 1)
        assert "ignored command on p6/cmd/snap: rule 'off' is disabled" in caplog.text
    finally:
        publisher.stop()
        journal.close()


def test_a_one_shot_publisher_says_nothing_of_the_status_and_leaves_no_last_will(
    tmp_path: Path, broker: Broker
) -> None:
    """`capture fire` beside a running service: the service's retained `online` must stay."""
    status = Recorder(broker, "p7/status")
    events = Recorder(broker, "p7/events/#")
    journal = Journal(tmp_path / "service.sqlite3")
    service = make_publisher(broker, journal, "p7", on_command=lambda command: None)
    service.start()
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from capture.config.schema import MqttConfig
        from capture.journal import Journal
        from tests.test_publish import report
        from capture.publish import Publisher
        config = MqttConfig(host="{broker.host}", port={broker.port}, topic_prefix="p7", client_id="pub-p7")
        publisher = Publisher(
            config, "plant", "UTC", Journal(Path(r"{tmp_path}") / "fire.sqlite3"),
            replay_outbox=False, announce_status=False, client_id="pub-p7-fire",
        )
        publisher.start()
        publisher.wait_connected(10)
        publisher.publish_firing(report(rule="fired"))
        print("up", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        wait_for(lambda: status.payloads() == [b"online"])
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        wait_for(lambda: [m["rule"] for m in events.json()] == ["fired"])
        process.send_signal(signal.SIGKILL)  # a last will would be published now
        process.wait(10)
        publish(broker, "p7/status", b"marker")  # not retained; comes after anything the will sent
        wait_for(lambda: status.payloads()[-1:] == [b"marker"])
        assert status.payloads() == [b"online", b"marker"]
        assert service.connected
        later = Recorder(broker, "p7/status")
        assert wait_for(later.payloads) == [b"online"]
        later.close()
    finally:
        process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()
        status.close()
        events.close()
        service.stop()
        journal.close()


def test_an_outbox_the_disk_refuses_waits_in_memory_and_is_written_when_space_returns(
    tmp_path: Path,
    broker_fresh: Broker,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disk full while the broker is away too: nothing may be lost, the thread must live on."""
    journal = Journal(tmp_path / "j.sqlite3")
    attempts: list[int] = []
    put_many = Outbox.put_many

    def counted(
        self: Outbox,
        messages: Sequence[tuple[str, bytes, int, bool]],
        closing: Iterable[tuple[str, str]] = (),
    ) -> list[int]:
        attempts.append(len(messages))
        return put_many(self, messages, closing)

    monkeypatch.setattr(Outbox, "put_many", counted)
    events = Recorder(broker_fresh, "p8/events/#", client_id="rec-p8", persistent=True)
    publisher = make_publisher(broker_fresh, journal, "p8")
    publisher.start()
    saboteur = sqlite3.connect(tmp_path / "j.sqlite3", isolation_level=None)
    try:
        assert publisher.wait_connected(10)
        broker_fresh.stop()
        wait_for(lambda: not publisher.connected)
        saboteur.execute(
            "CREATE TRIGGER full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        sent = [report() for _ in range(3)]
        with caplog.at_level(logging.WARNING, logger="capture.publish"):
            for firing in sent:
                publisher.publish_firing(firing)
            wait_for(lambda: len(attempts) >= 3, timeout=15)  # retried, with back-off
            assert publisher.alive
            assert "disk full" in (publisher.outbox_error or "")
            assert Outbox(journal).count() == 0
            saboteur.execute("DROP TRIGGER full")  # space is back
            # outbox_error is cleared after the "written again" line is logged
            wait_for(
                lambda: Outbox(journal).count() == 3 and publisher.outbox_error is None,
                timeout=15,
            )
        assert caplog.text.count("cannot write the outbox") == 1  # once per outage
        assert "outbox written again" in caplog.text
        assert publisher.alive and publisher.outbox_error is None

        broker_fresh.start()
        wait_for(lambda: len(events.json()) == 3, timeout=30)
        assert [m["event_id"] for m in events.json()] == [f.event.id for f in sent]
        wait_for(lambda: Outbox(journal).count() == 0)
        assert publisher.published == 3
    finally:
        saboteur.close()
        events.close()
        publisher.stop()
        journal.close()


def test_no_event_message_reaches_the_broker_before_its_outbox_row_is_committed(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outbox first: a crash at any moment leaves each message in the outbox or delivered."""
    journal = Journal(tmp_path / "j.sqlite3")
    committing = threading.Event()
    release = threading.Event()
    put_many = Outbox.put_many

    def held(
        self: Outbox,
        messages: Sequence[tuple[str, bytes, int, bool]],
        closing: Iterable[tuple[str, str]] = (),
    ) -> list[int]:
        committing.set()
        release.wait(30)
        return put_many(self, messages, closing)

    monkeypatch.setattr(Outbox, "put_many", held)
    events = Recorder(broker, "p9/events/#")
    publisher = make_publisher(broker, journal, "p9")
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        sent = report(rule="first")
        publisher.publish_firing(sent)
        wait_for(committing.is_set)
        # The journal holds the commit back: the broker must hear nothing of it meanwhile,
        # while a message sent after it by someone else does arrive.
        publish(broker, "p9/events/probe", json.dumps({"rule": "probe"}))
        wait_for(lambda: [m["rule"] for m in events.json()] == ["probe"])
        release.set()
        wait_for(lambda: [m["rule"] for m in events.json()] == ["probe", "first"])
        wait_for(lambda: Outbox(journal).count() == 0)
    finally:
        release.set()
        events.close()
        publisher.stop()
        journal.close()


def test_with_qos_0_events_during_an_outage_wait_in_the_outbox_and_leave_on_reconnect(
    tmp_path: Path, broker_fresh: Broker
) -> None:
    """paho drops a QoS 0 message it cannot send: its row must not be taken for sent."""
    journal = Journal(tmp_path / "j.sqlite3")
    publisher = make_publisher(broker_fresh, journal, "q0", qos=0)
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        broker_fresh.stop()
        wait_for(lambda: not publisher.connected)
        firing = report()
        publisher.publish_firing(firing)
        wait_for(lambda: Outbox(journal).count() == 1)
        time.sleep(0.5)  # several rounds of the publisher's loop
        assert Outbox(journal).count() == 1 and publisher.published == 0
        broker_fresh.start()
        # Sent once connected again (a QoS 0 message is queued for no one, so the count and
        # the emptied outbox say it left, not a subscriber that may reconnect after it).
        wait_for(lambda: Outbox(journal).count() == 0)
        assert publisher.published == 1
    finally:
        publisher.stop()
        journal.close()


def test_at_most_max_handed_messages_wait_in_paho_the_rest_follow_in_order(
    tmp_path: Path, broker_fresh: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho's message ids wrap at 65535 and are reused while still in use; the cap keeps a
    long outage from getting there (and paho from holding every payload)."""
    monkeypatch.setattr(publish_module, "MAX_HANDED", 4)
    journal = Journal(tmp_path / "j.sqlite3")
    publisher = make_publisher(broker_fresh, journal, "cap")
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        events = Recorder(broker_fresh, "cap/events/#", client_id="rec-cap", persistent=True)
        broker_fresh.stop()
        wait_for(lambda: not publisher.connected)
        sent = []
        for _ in range(11):
            firing = report()
            publisher.publish_firing(firing)
            sent.append(firing.event.id)
        wait_for(lambda: Outbox(journal).count() == 11)
        time.sleep(0.5)
        assert publisher.unacknowledged == 4
        broker_fresh.start()
        try:
            wait_for(lambda: len(events.json()) >= 11, timeout=20)
            received = [m["event_id"] for m in events.json()]
        finally:
            events.close()
        # At least once: the four paho held may come again with the outbox replay; in order.
        assert list(dict.fromkeys(received)) == sent
        wait_for(lambda: Outbox(journal).count() == 0)
    finally:
        publisher.stop()
        journal.close()
