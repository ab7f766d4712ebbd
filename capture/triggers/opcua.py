"""The `opcua` trigger: data changes of variables on an OPC UA server (a PLC), subscribed to with asyncua.

asyncua is asyncio-only; its loop runs on this trigger's own thread (threads
stay at the edges), and events leave it through the same `emit` every kind
uses. The server samples and pushes changes (no polling from here), so the
latency is the subscription's publishing interval.

The connection is supervised here rather than by asyncua's auto-reconnect:
on a loss the trigger logs the outage once, shows it in its stats,
reconnects with back-off and subscribes again, and it knows when each of
those happened. Every subscription starts with the current value of each
node; that notification is the baseline, not a change, and never fires.
What the server refuses (an unknown node id, a rejected user or
certificate) is a `TriggerError` naming the trigger when the trigger starts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import suppress
from datetime import datetime, tzinfo
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from capture.config import schema
from capture.events import Event, Value
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
)
from capture.triggers.values import finite

log = logging.getLogger(__name__)

# asyncua logs every request it sends in full at DEBUG, the ActivateSession
# request with the user's password in clear included: never below INFO, even
# with [service].log_level = "debug".
for _name in ("asyncua.client.ua_client", "asyncua.client.ua_client.UASocketProtocol"):
    logging.getLogger(_name).setLevel(logging.INFO)

FIRST_BACKOFF_S = 0.5
WATCHDOG_S = 1.0
"""How often asyncua probes a quiet connection; a closed socket is seen at once anyway."""

MODES = {
    "sign": ua.MessageSecurityMode.Sign,
    "sign_and_encrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


#: Session refusals that pass by themselves (sessions of a killed client not timed out yet,
#: a server still starting): an outage retried with back-off, never a rule-file error.
BUSY_STATUSES = frozenset(
    {
        "BadTooManySessions", "BadServerHalted", "BadServerNotConnected",
        "BadResourceUnavailable", "BadTooManyOperations", "BadOutOfService",
    }
)  # fmt: skip


class OpcuaRefused(TriggerError, ValueError):
    """The server refused what the rule file asks for: a node id, the user, the certificate."""


class OpcuaTrigger:
    """Fires for each data change of the subscribed nodes.

    Values: `node` (the node id as written in the rule file), `value` (the
    new value: a number, a boolean or text), `source_time` (when the PLC
    stamped it, ISO 8601 in the site's time zone; None if it gave none) and
    `status` (the OPC UA status name, "Good" normally).
    """

    def __init__(self, name: str, config: schema.OpcuaTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = f"opcua {config.endpoint}"
        self._zone: tzinfo = context.timezone
        self._stats = StatsKeeper(connected=False)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._first_attempt = threading.Event()
        self._refused: OpcuaRefused | None = None
        self._emit: Emit | None = None
        self._baseline: set[str] = set()  # nodes whose first good value of this subscription came
        self._last_good: dict[str, Value] = {}  # each node's last value with a Good status
        self._not_good: set[str] = set()  # nodes whose last notification had a bad status
        self._outage_since: float | None = None

    def start(self, emit: Emit) -> None:
        """Connect and subscribe on a thread of its own; wait for the first attempt's verdict.

        A server that cannot be reached is not fatal (the trigger keeps
        trying); one that refuses a node, the user or the certificate is.
        """
        if self._thread is not None:
            return
        self._emit = emit
        self._refused = None
        self._first_attempt.clear()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"opcua-{self.name}", daemon=True)
        self._thread.start()
        self._first_attempt.wait()
        if self._refused is not None:
            self.stop()
            raise self._refused

    def stop(self) -> None:
        """Disconnect, stop the loop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with suppress(RuntimeError):  # the loop already ended (a refused start)
            loop.call_soon_threadsafe(self._request_stop)
        thread.join()
        loop.close()
        self._thread = self._loop = None

    def stats(self) -> TriggerStats:
        """Changes fired and whether the server is connected."""
        return self._stats.snapshot()

    # the trigger's thread and loop ------------------------------------------------------

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _run(self) -> None:
        assert self._loop is not None
        try:
            self._loop.run_until_complete(self._supervise())
        finally:
            self._first_attempt.set()

    async def _supervise(self) -> None:
        self._stop = asyncio.Event()
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set():
            try:
                await self._session()
                backoff = FIRST_BACKOFF_S
            except OpcuaRefused as exc:
                if not self._first_attempt.is_set():
                    self._refused = exc
                    return
                self._outage(exc)
            except TriggerError as exc:
                self._outage(exc)
            except Exception as exc:  # asyncua failing otherwise: keep trying, never die silently
                log.exception(
                    "opcua session failed trigger=%s endpoint=%s", self.name, self.config.endpoint
                )
                self._outage(
                    TriggerError(self.name, f"unexpected error: {_reason(exc)}", self.source)
                )
            self._first_attempt.set()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)
            backoff = min(backoff * 2, self.config.reconnect_max_s)

    async def _session(self) -> None:
        """One connection: connect, subscribe, wait for a loss or stop; disconnect."""
        assert self._stop is not None
        lost = asyncio.Event()

        async def on_loss(exc: Exception) -> None:
            lost.set()

        client = Client(
            self.config.endpoint, timeout=self.config.timeout_s, watchdog_intervall=WATCHDOG_S
        )
        client.application_uri = self.config.application_uri
        client.name = client.description = f"event-capture {self.name}"
        client.connection_lost_callback = on_loss
        try:
            await self._connect(client)
            await self._subscribe(client)
            self._connected()
            self._first_attempt.set()
            stopping = asyncio.ensure_future(self._stop.wait())
            losing = asyncio.ensure_future(lost.wait())
            await asyncio.wait({stopping, losing}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            losing.cancel()
            if lost.is_set() and not self._stop.is_set():
                raise TriggerError(self.name, "connection to the server lost", self.source)
        finally:
            with suppress(Exception):  # the connection may be gone already: nothing to close
                await asyncio.wait_for(client.disconnect(), self.config.timeout_s)

    # the server: the one place asyncua's errors are translated --------------------------

    async def _connect(self, client: Client) -> None:
        config = self.config
        try:
            if config.user is not None:
                client.set_user(config.user)
                if config.password is not None:
                    client.set_password(config.password.get_secret_value())
            if config.security != "none":
                assert config.certificate_file is not None and config.private_key_file is not None
                policy = getattr(security_policies, f"SecurityPolicy{config.policy}")
                await client.set_security(
                    policy,
                    str(config.certificate_file),
                    str(config.private_key_file),
                    server_certificate=str(config.server_certificate_file)
                    if config.server_certificate_file
                    else None,
                    mode=MODES[config.security],
                )
            await client.connect()
        except OSError as exc:  # TimeoutError included
            if exc.filename is not None:  # a certificate or key file, not the network
                raise OpcuaRefused(
                    self.name,
                    f"cannot read {exc.filename}: {exc.strerror}; check certificate_file, "
                    "private_key_file and server_certificate_file",
                    self.source,
                ) from exc
            raise TriggerError(self.name, f"cannot connect: {_reason(exc)}", self.source) from exc
        except UaStatusCodeError as exc:
            if ua.StatusCode(exc.code).name in BUSY_STATUSES:  # passes by itself: keep trying
                raise TriggerError(
                    self.name,
                    f"the server refused the session for now: {_reason(exc)}",
                    self.source,
                ) from exc
            raise OpcuaRefused(
                self.name,
                f"the server refused the session: {_reason(exc)}{_hint(exc)}",
                self.source,
            ) from exc
        except (
            UaError,
            ValueError,
        ) as exc:  # a certificate or key that does not load, no such policy
            raise OpcuaRefused(
                self.name,
                f"no session with security = {config.security!r}"
                + (f", policy {config.policy}" if config.security != "none" else "")
                + f": {_reason(exc)}; check security, policy and the certificate files",
                self.source,
            ) from exc

    async def _subscribe(self, client: Client) -> None:
        self._baseline = set()
        self._last_good = {}
        self._not_good = set()
        try:
            subscription = await client.create_subscription(self.config.publishing_ms, self)
            for node in self.config.nodes:
                try:
                    await subscription.subscribe_data_change(
                        client.get_node(node), sampling_interval=ua.Double(self.config.sampling_ms)
                    )
                except UaStatusCodeError as exc:
                    raise OpcuaRefused(
                        self.name,
                        f"cannot subscribe to node {node!r}: {_reason(exc)}; check nodes",
                        self.source,
                    ) from exc
        except (OSError, TimeoutError, UaError) as exc:
            if isinstance(exc, OpcuaRefused):
                raise
            raise TriggerError(self.name, f"cannot subscribe: {_reason(exc)}", self.source) from exc

    # asyncua's subscription handler (called on this trigger's loop) ---------------------

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        """A change of one node; the first good value of each node per subscription is its
        baseline, and a value without a Good status is no change (see `_not_good_now`)."""
        name = self._written(node.nodeid.to_string())
        data_value = data.monitored_item.Value
        status = data_value.StatusCode if data_value is not None else None
        if status is not None and not status.is_good():
            self._not_good_now(name, status.name)
            return
        value = _plain(val, self._zone)
        previous = self._last_good.get(name)
        self._last_good[name] = value
        if name not in self._baseline:
            self._baseline.add(name)
            return
        if name in self._not_good:
            self._not_good.discard(name)
            log.info("opcua node good again trigger=%s node=%s", self.name, name)
            if value == previous:
                return  # the same value as before the bad spell: nothing happened on the line
        source = data_value.SourceTimestamp if data_value is not None else None
        values: dict[str, Value] = {
            "node": name,
            "value": value,
            "source_time": _iso(source, self._zone),
            "status": status.name if status is not None else None,
        }
        assert self._emit is not None
        self._stats.deliver(self._emit, Event(trigger=self.name, values=values))

    def _not_good_now(self, name: str, status: str) -> None:
        """A bad or uncertain value (a gateway that lost its PLC, BadWaitingForInitialData):
        not a change on the line, so nothing fires; the next good value fires only if it
        differs from the last good one (or, with none yet, is the baseline)."""
        self._stats.ignored()
        if name in self._not_good:
            return
        self._not_good.add(name)
        message = f"node {name} has status {status}: not fired until its value is good again"
        log.warning("opcua trigger=%s %s", self.name, message)
        self._stats.error(message)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        """The server says the subscription ended (it shuts down); the loss handler reconnects."""
        log.info("opcua subscription status trigger=%s status=%s", self.name, status.Status.name)

    def _written(self, node_id: str) -> str:
        # The node id as the rule file wrote it ("ns=2;s=Gate" and "ns=2;s=Gate" alike).
        for written in self.config.nodes:
            if ua.NodeId.from_string(written).to_string() == node_id:
                return written
        return node_id

    # health --------------------------------------------------------------------------

    def _connected(self) -> None:
        self._stats.connected(True)
        if self._outage_since is not None:
            log.info(
                "opcua server back trigger=%s endpoint=%s outage_s=%.1f; resubscribed",
                self.name,
                self.config.endpoint,
                time.monotonic() - self._outage_since,
            )
        else:
            log.info(
                "opcua trigger subscribed trigger=%s endpoint=%s nodes=%d",
                self.name,
                self.config.endpoint,
                len(self.config.nodes),
            )
        self._outage_since = None

    def _outage(self, exc: TriggerError) -> None:
        self._stats.outage(str(exc))
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "opcua server unavailable trigger=%s endpoint=%s error=%r; retrying with back-off up to %s s",
                self.name,
                self.config.endpoint,
                str(exc),
                self.config.reconnect_max_s,
            )


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _hint(exc: UaStatusCodeError) -> str:
    name = ua.StatusCode(exc.code).name
    if "User" in name or "IdentityToken" in name:
        return "; check user and password_env"
    if "Certificate" in name or "Security" in name:
        return (
            "; check certificate_file, private_key_file and that the server trusts the certificate"
        )
    return ""


def _iso(moment: datetime | None, zone: tzinfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def _plain(value: Any, zone: tzinfo) -> Value:
    """An OPC UA value as an event value: numbers, booleans and text as they are, others as text.

    NaN and infinity become None (see `finite`).
    """
    if isinstance(value, float):
        return finite(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        return _iso(value, zone)
    return str(value)
