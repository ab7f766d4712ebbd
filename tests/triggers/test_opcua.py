"""The opcua trigger against asyncua's own OPC UA server on loopback (tests/factory.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from capture.condition import parse_condition
from capture.config import schema
from capture.config.loader import parse_rules
from capture.triggers import Trigger, TriggerContext, TriggerError, build_trigger
from capture.triggers.opcua import OpcuaTrigger
from tests.conftest import wait_for
from tests.factory import OpcuaServer, free_port, make_certificate
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


def opcua(server: OpcuaServer, nodes: list[str], **options: Any) -> Trigger:
    config = schema.OpcuaTrigger(
        type="opcua", endpoint=server.endpoint, nodes=nodes, reconnect_max_s=0.5, **options
    )
    return build_trigger("plc", config, TriggerContext())


def test_a_value_change_fires_once_with_node_value_and_source_time(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    gate = opcua_server.node("Gate")
    trigger = start(opcua(opcua_server, [gate, opcua_server.node("Count")]))
    assert trigger.stats().connected is True
    opcua_server.write("Gate", True)
    wait_for(lambda: len(events) == 1)
    opcua_server.write("Count", 7)  # a later change proves nothing more came for Gate
    wait_for(lambda: len(events) == 2)
    assert events.values("node") == [gate, opcua_server.node("Count")]
    assert events.values("value") == [True, 7]
    assert events.values("status") == ["Good", "Good"]
    source_time = events.events[0].values["source_time"]
    assert isinstance(source_time, str) and datetime.fromisoformat(source_time).tzinfo is not None
    assert trigger.stats().emitted == 2


def test_the_current_value_at_subscription_does_not_fire(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    opcua_server.write("Count", 3)
    start(opcua(opcua_server, [opcua_server.node("Count"), opcua_server.node("Gate")]))
    opcua_server.write("Gate", True)
    wait_for(lambda: len(events) == 1)
    assert events.values("node") == [opcua_server.node("Gate")]


def test_a_value_without_good_status_fires_nothing_and_the_same_value_after_it_neither(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    """A gateway losing its PLC for a moment sends Bad, then the value it had: no new part."""
    gate = opcua_server.node("Gate")
    trigger = start(opcua(opcua_server, [gate]))
    assert isinstance(trigger, OpcuaTrigger)
    opcua_server.write("Gate", True)
    wait_for(lambda: len(events) == 1)
    opcua_server.write("Gate", True, status="BadCommunicationError")
    wait_for(lambda: "BadCommunicationError" in (trigger.stats().last_error or ""))
    assert trigger.stats().ignored == 1
    opcua_server.write("Gate", True)  # good again, unchanged: nothing happened on the line
    wait_for(lambda: not trigger._not_good)
    opcua_server.write("Gate", False)  # a real change
    wait_for(lambda: len(events) == 2)
    assert events.values("value") == [True, False]
    assert events.values("status") == ["Good", "Good"]


def test_a_first_value_waiting_for_data_is_not_the_baseline(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    """A SCADA gateway's first answer is BadWaitingForInitialData: its real value is the baseline."""
    gate = opcua_server.node("Gate")
    opcua_server.write("Gate", False, status="BadWaitingForInitialData")
    trigger = start(opcua(opcua_server, [gate]))
    assert isinstance(trigger, OpcuaTrigger)
    wait_for(lambda: gate in trigger._not_good)
    opcua_server.write("Gate", True)  # the current value arrives: the baseline, not a change
    wait_for(lambda: gate in trigger._baseline)
    opcua_server.write("Gate", False)
    wait_for(lambda: len(events) == 1)
    assert events.values("value") == [False]


def test_a_value_triggers_a_condition(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    start(opcua(opcua_server, [opcua_server.node("Count")]))
    condition = parse_condition("value >= 100")
    for expected, count in enumerate((5, 150), start=1):
        opcua_server.write("Count", count)
        wait_for(lambda: len(events) == expected)  # noqa: B023 - called before the next round
    assert [condition.evaluate(event.values) for event in events.events] == [False, True]


def test_a_nan_value_is_null_so_the_event_message_stays_json(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    start(opcua(opcua_server, [opcua_server.node("Temp")]))
    opcua_server.write("Temp", 36.5)
    wait_for(lambda: len(events) == 1)
    opcua_server.write("Temp", float("nan"))  # an analog input with a broken wire
    wait_for(lambda: len(events) == 2)
    assert events.values("value") == [36.5, None]
    assert not parse_condition("value > 0").evaluate(events.events[1].values)


def test_a_server_restart_is_survived_by_reconnecting_and_resubscribing(
    opcua_server: OpcuaServer, start: Start, events: Collector
) -> None:
    trigger = start(opcua(opcua_server, [opcua_server.node("Count")]))
    opcua_server.write("Count", 1)
    wait_for(lambda: len(events) == 1)
    opcua_server.stop()
    wait_for(lambda: trigger.stats().connected is False)
    assert (trigger.stats().last_error or "").startswith(
        f"trigger plc (opcua {opcua_server.endpoint}):"
    )
    opcua_server.start()
    wait_for(lambda: trigger.stats().connected is True, timeout=20)
    assert len(events) == 1  # the reconnection's baseline fired nothing
    opcua_server.write("Count", 2)
    wait_for(lambda: len(events) == 2)
    assert events.values("value") == [1, 2]


def test_an_unknown_node_id_is_an_error_naming_the_trigger_and_the_node(
    opcua_server: OpcuaServer,
) -> None:
    missing = f"ns={opcua_server.namespace};s=Line1.Nope"
    trigger = opcua(opcua_server, [opcua_server.node("Gate"), missing])
    with pytest.raises(TriggerError) as caught:
        trigger.start(Collector())
    message = str(caught.value)
    assert message.startswith(f"trigger plc (opcua {opcua_server.endpoint}): ")
    assert f"cannot subscribe to node '{missing}'" in message
    assert "BadNodeIdUnknown" in message and message.endswith("check nodes")


def test_too_many_sessions_at_start_is_an_outage_that_passes(
    opcua_server: OpcuaServer, start: Start, events: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a crash the PLC still holds the old sessions for a while: BadTooManySessions."""
    from asyncua import Client, ua  # noqa: PLC0415
    from asyncua.ua.uaerrors import UaStatusCodeError  # noqa: PLC0415

    refusals = [ua.StatusCodes.BadTooManySessions] * 2
    connect = Client.connect

    async def busy_then_real(client: Client) -> None:
        if refusals:
            raise UaStatusCodeError(refusals.pop())
        await connect(client)

    monkeypatch.setattr(Client, "connect", busy_then_real)
    trigger = start(opcua(opcua_server, [opcua_server.node("Gate")]))
    assert "refused the session for now" in (trigger.stats().last_error or "")
    wait_for(lambda: trigger.stats().connected is True)
    assert not refusals
    opcua_server.write("Gate", True)
    wait_for(lambda: len(events) == 1)


def test_a_server_down_at_start_is_an_outage_not_an_error(start: Start) -> None:
    config = schema.OpcuaTrigger(
        type="opcua",
        endpoint=f"opc.tcp://127.0.0.1:{free_port()}",
        nodes=["ns=2;s=Gate"],
        reconnect_max_s=0.5,
    )
    trigger = start(build_trigger("plc", config, TriggerContext()))
    stats = trigger.stats()
    assert stats.connected is False
    assert "cannot connect" in (stats.last_error or "")


# ----------------------------------------------------------------- security and users

OPCUA_PASSWORD = "Plc-Line4-2026!"


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[OpcuaServer]:
    """A server offering only Basic256Sha256 Sign / SignAndEncrypt, user capture with a password."""
    security = make_certificate(tmp_path, "plc", "urn:event-capture:test-plc", server=True)
    server = OpcuaServer(security=security, users={"capture": OPCUA_PASSWORD})
    yield server
    server.close()


def secured_trigger(
    tmp_path: Path, server: OpcuaServer, security: str, password_file: Path
) -> Trigger:
    """The trigger as a rule file configures it: certificate files, the password in a secret file."""
    certificate, key = make_certificate(
        tmp_path, "client", "urn:event-capture:client", server=False
    )
    text = f"""
[triggers.plc]
type = "opcua"
endpoint = "{server.endpoint}"
nodes = ["{server.node("Gate")}"]
security = "{security}"
certificate_file = "{certificate}"
private_key_file = "{key}"
user = "capture"
password_file = "{password_file}"
reconnect_max_s = 0.5
"""
    config = parse_rules(text, "rules.toml", {}, require_rules=False).rules.triggers["plc"]
    return build_trigger("plc", config, TriggerContext())


@pytest.mark.parametrize("security", ["sign", "sign_and_encrypt"])
def test_a_secured_server_is_subscribed_with_certificate_and_password_from_a_file(
    tmp_path: Path, secured_server: OpcuaServer, start: Start, events: Collector, security: str
) -> None:
    password_file = tmp_path / "opcua-password"
    password_file.write_text(OPCUA_PASSWORD + "\n", encoding="utf-8")
    trigger = start(secured_trigger(tmp_path, secured_server, security, password_file))
    assert trigger.stats().connected is True
    secured_server.write("Gate", True)
    wait_for(lambda: len(events) == 1)
    assert events.values("value") == [True]


def test_a_rejected_password_is_an_error_naming_the_trigger_without_the_password(
    tmp_path: Path, secured_server: OpcuaServer
) -> None:
    password_file = tmp_path / "opcua-password"
    password_file.write_text("not-" + OPCUA_PASSWORD, encoding="utf-8")
    trigger = secured_trigger(tmp_path, secured_server, "sign_and_encrypt", password_file)
    with pytest.raises(TriggerError) as caught:
        trigger.start(Collector())
    message = str(caught.value)
    assert message.startswith(f"trigger plc (opcua {secured_server.endpoint}): ")
    assert "the server refused the session" in message
    assert message.endswith("check user and password_env")
    assert OPCUA_PASSWORD not in message


def test_security_none_against_a_server_without_it_is_an_error_naming_the_trigger(
    secured_server: OpcuaServer,
) -> None:
    trigger = opcua(secured_server, [secured_server.node("Gate")])
    with pytest.raises(TriggerError) as caught:
        trigger.start(Collector())
    assert str(caught.value).startswith(
        f"trigger plc (opcua {secured_server.endpoint}): no session with security = 'none': "
    )
    assert str(caught.value).endswith("check security, policy and the certificate files")


def test_a_missing_key_file_is_an_error_naming_the_file(
    tmp_path: Path, secured_server: OpcuaServer
) -> None:
    certificate, _ = make_certificate(tmp_path, "client", "urn:event-capture:client", server=False)
    config = schema.OpcuaTrigger(
        type="opcua",
        endpoint=secured_server.endpoint,
        nodes=[secured_server.node("Gate")],
        security="sign",
        certificate_file=certificate,
        private_key_file=tmp_path / "missing.pem",
    )
    trigger = build_trigger("plc", config, TriggerContext())
    with pytest.raises(TriggerError) as caught:
        trigger.start(Collector())
    assert str(caught.value) == (
        f"trigger plc (opcua {secured_server.endpoint}): cannot read {tmp_path / 'missing.pem'}: "
        "No such file or directory; check certificate_file, private_key_file and "
        "server_certificate_file"
    )
