"""Closing a paho MQTT client completely: its network thread, its connection and its wake-up sockets.

`loop_start` opens a loopback socket pair paho uses to wake its network
thread, and paho closes it only when the client object is deleted
(eclipse-paho/paho.mqtt.python#627, open). Our clients sit in reference
cycles (their callbacks are bound methods of the objects holding them), so
that happens whenever the garbage collector gets to it: two file
descriptors per stopped client until then, a `ResourceWarning` when it does.
A reload that replaces an MQTT trigger's connection stops a client each time.
"""

from __future__ import annotations

import paho.mqtt.client as paho


def close_client(client: paho.Client) -> None:
    """Disconnect, join paho's network thread, and close its wake-up socket pair now."""
    client.disconnect()
    client.loop_stop()
    # paho's own clean-up of the pair (what its __del__ calls); absent in a future
    # paho that no longer needs it, which then has nothing left open here.
    reset = getattr(client, "_reset_sockets", None)
    if reset is not None:
        reset(sockpair_only=True)
