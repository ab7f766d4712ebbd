"""capture.mqtt_close against a real broker: a stopped client leaves no file descriptor open."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from capture.mqtt_close import close_client
from tests.broker import Broker
from tests.conftest import wait_for


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_collection() -> Iterator[None]:
    """The garbage collector off: what paho closes only in __del__ stays open, as in a cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Holder:
    """An object whose client calls back into it: the reference cycle every user of paho makes."""

    def __init__(self, broker: Broker) -> None:
        self.connected = False
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"close-{os.getpid()}")
        self.client.on_connect = self.on_connect
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def on_connect(self, *_args: object) -> None:
        self.connected = True


def test_a_closed_client_has_closed_its_connection_and_wake_up_sockets(
    broker: Broker, no_collection: None
) -> None:
    before = open_descriptors()
    holder = Holder(broker)
    wait_for(lambda: holder.connected)
    assert open_descriptors() >= before + 3  # the connection and paho's socket pair
    close_client(holder.client)
    assert open_descriptors() == before  # though holder and its client are still alive
