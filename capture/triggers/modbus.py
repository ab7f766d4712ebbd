"""The `modbus` trigger: bits or registers of a Modbus TCP device (remote I/O, PLC), polled with pymodbus.

Modbus has no notifications: the only way to see an input change is to read
it, so the trigger polls every poll_ms on a thread of its own with
pymodbus's synchronous client (one request at a time, nothing to share).
Bits fire on edges with the gpio trigger's bounce and minimum-pulse rules,
applied to the reads; registers fire on every change, and a rule's condition
picks the values that matter (`value >= 500 and previous < 500`). Values
wider than a register (a PLC's 32-bit counter, an analog input's float) are
decoded by pymodbus's own converter, in the word order the device uses.

A device that stops answering is not an event: the trigger logs the outage
once, shows it in its stats, reconnects with back-off, and re-reads the
state when the device is back without firing for what changed meanwhile
(which edge came first is unknowable). A device that *answers* with a Modbus
exception (no such address, no such unit) is misconfigured: at start that is
a `TriggerError` naming the trigger, unit and addresses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from capture.config import schema
from capture.events import Value
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
    event_at,
)
from capture.triggers.values import finite

log = logging.getLogger(__name__)

Number = int | float | None
"""One watched value as read: 0/1, a register's number, None for a float that is NaN."""

ACTIVE = "active"
INACTIVE = "inactive"
FIRST_BACKOFF_S = 0.5
#: A float32 carries about 7 significant digits; more would print 12.3 as 12.300000190734863.
FLOAT32_DIGITS = 7

#: Modbus exception codes a device answers with, and what the person who wrote the rule file can do.
EXCEPTION_HINTS = {
    1: "illegal function: the device has no such table; check table",
    2: "illegal data address: check address and count against the device's manual",
    3: "illegal data value: check count",
    4: "device failure (some gateways and servers answer this for an unknown unit): check unit_id",
    5: "acknowledged, still working on it",
    6: "device busy",
    10: "gateway path unavailable: check unit_id",
    11: "gateway target failed to respond: check unit_id and the serial device behind the gateway",
}


#: Exceptions that pass by themselves (a busy device, a gateway whose serial device is still
#: booting): the trigger keeps trying, also when one answers the first read at start.
BUSY_CODES = frozenset({5, 6, 10, 11})


class ModbusRefused(TriggerError, ValueError):
    """The device answered a read with a Modbus exception: the rule file asks for something it lacks."""


class ModbusUnreachable(TriggerError, ConnectionError):
    """The device did not answer (refused, unreachable, timed out, closed the connection)."""


@dataclass
class _Bit:
    """The accepted (debounced) state of one bit, as the gpio trigger keeps it for a pin."""

    active: bool
    since: float  # monotonic time of the accepted edge
    confirmed: bool = True  # the current activation lasted min_active_ms
    quiet_until: float = 0.0  # end of the bounce window after the accepted edge


class ModbusTrigger:
    """Fires on edges of bits or changes of registers of one Modbus TCP device.

    Values: `host`, `unit_id`, `table`, `address` (of the bit, or of the
    first register of the value, that changed), `value` (0/1 for bits, a
    number of `data_type` for registers; None for a float that is NaN) and
    `previous`; for bits also `state` ("active" or "inactive") and
    `duration_ms` (as the gpio trigger gives it).
    """

    def __init__(self, name: str, config: schema.ModbusTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = f"modbus {config.host}:{config.port} unit {config.unit_id}"
        self._bits = config.table in schema.MODBUS_BITS
        self._words = config.registers_per_value
        self._data_type = ModbusTcpClient.DATATYPE[config.data_type.upper()]
        self._poll = config.poll_ms / 1000
        self._bounce = config.bounce_ms / 1000
        self._min_active = config.min_active_ms / 1000
        self._stats = StatsKeeper(connected=False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: ModbusTcpClient | None = None
        self._emit: Emit | None = None
        self._last: list[Number] | None = None  # the previous read; None until the first one
        self._states: list[_Bit] = []
        self._outage_since: float | None = None
        self._backoff = FIRST_BACKOFF_S

    def start(self, emit: Emit) -> None:
        """Read the device once, then poll it on a thread of its own.

        An unreachable device is not fatal (it may be switched on later: the
        trigger keeps trying); a device that refuses the read is, because
        retrying cannot fix the rule file.
        """
        if self._thread is not None:
            return
        self._emit = emit
        self._stopping.clear()
        self._client = ModbusTcpClient(
            self.config.host,
            port=self.config.port,
            timeout=self.config.timeout_s,
            retries=0,
            name=f"event-capture {self.name}",
        )
        try:
            self._baseline(self._read(), time.monotonic())
        except ModbusRefused:
            self._close()
            raise
        except ModbusUnreachable as exc:
            self._outage(exc)
        else:
            log.info("modbus trigger started trigger=%s %s", self.name, self._where())
        self._thread = threading.Thread(target=self._run, name=f"modbus-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, join the thread and close the connection."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close()

    def stats(self) -> TriggerStats:
        """Events fired, pulses ignored, and whether the device answers."""
        return self._stats.snapshot()

    # the device: the one place pymodbus is touched ------------------------------------

    def _read(self) -> list[Number]:
        config, client = self.config, self._client
        assert client is not None
        readers = {
            "discrete_inputs": client.read_discrete_inputs,
            "coils": client.read_coils,
            "holding_registers": client.read_holding_registers,
            "input_registers": client.read_input_registers,
        }
        try:
            # pymodbus leaves connect() and close() unannotated (typed: bool, None).
            connected = client.connected or client.connect()  # type: ignore[no-untyped-call]
            if not connected:
                raise ModbusUnreachable(
                    self.name, f"cannot connect to {config.host}:{config.port}", self.source
                )
            response = readers[config.table](
                config.address, count=config.count * self._words, device_id=config.unit_id
            )
        except ModbusException as exc:
            client.close()  # type: ignore[no-untyped-call]  # the next read reconnects
            raise ModbusUnreachable(self.name, f"no answer: {exc}", self.source) from exc
        if response.isError():
            code = getattr(response, "exception_code", 0)
            if code in BUSY_CODES:  # passes by itself: an outage, also at start
                raise ModbusUnreachable(
                    self.name,
                    f"reading {self._where()} answered Modbus exception {code} "
                    f"({EXCEPTION_HINTS[code]})",
                    self.source,
                )
            raise ModbusRefused(
                self.name,
                f"reading {self._where()} answered Modbus exception {code} "
                f"({EXCEPTION_HINTS.get(code, 'see the device manual')})",
                self.source,
            )
        if self._bits:
            return [int(bit) for bit in response.bits[: config.count]]
        return self._decode(response.registers)

    def _decode(self, registers: Sequence[int]) -> list[Number]:
        """The watched values in `registers`, as `data_type` and `word_order` say."""
        if self._words == 1 and self.config.data_type == "uint16":
            return list(registers[: self.config.count])  # the common case, as sent
        values: list[Number] = []
        for start in range(0, self.config.count * self._words, self._words):
            decoded = ModbusTcpClient.convert_from_registers(
                registers[start : start + self._words],
                self._data_type,
                word_order=self.config.word_order,
            )
            assert isinstance(decoded, int | float)  # one value's registers give one number
            value: Number = decoded
            if isinstance(decoded, float):
                value = finite(decoded)
                if value is not None and self.config.data_type == "float32":
                    value = float(f"{value:.{FLOAT32_DIGITS}g}")
            values.append(value)
        return values

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]  # unannotated, returns None

    def _where(self) -> str:
        last = self.config.address + self.config.count * self._words - 1
        span = (
            str(self.config.address)
            if last == self.config.address
            else f"{self.config.address}-{last}"
        )
        return f"unit {self.config.unit_id} {self.config.table} {span}"

    # the polling thread ----------------------------------------------------------------

    def _run(self) -> None:
        next_poll = time.monotonic()
        while not self._stopping.is_set():
            if self._outage_since is not None:
                if self._stopping.wait(self._backoff):
                    return
                self._backoff = min(self._backoff * 2, self.config.reconnect_max_s)
            elif self._stopping.wait(max(0.0, next_poll - time.monotonic())):
                return
            try:
                values = self._read()
            except (ModbusUnreachable, ModbusRefused) as exc:
                self._outage(exc)
                continue
            except Exception as exc:  # pymodbus failing otherwise: keep trying, never die silently
                log.exception("modbus read failed trigger=%s %s", self.name, self._where())
                self._close()
                self._outage(ModbusUnreachable(self.name, f"unexpected error: {exc}", self.source))
                continue
            now = time.monotonic()
            if self._outage_since is not None:
                self._recovered(values, now)
            else:
                self._compare(values, now)
            next_poll = max(next_poll + self._poll, now)

    def _outage(self, exc: TriggerError) -> None:
        self._stats.outage(str(exc))
        self._last = None
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._backoff = FIRST_BACKOFF_S
            log.warning(
                "modbus device not answering trigger=%s %s error=%r; retrying with back-off up to %s s",
                self.name,
                self._where(),
                str(exc),
                self.config.reconnect_max_s,
            )

    def _recovered(self, values: list[Number], now: float) -> None:
        outage = now - (self._outage_since or now)
        self._outage_since = None
        log.info(
            "modbus device back trigger=%s %s outage_s=%.1f; state re-read, changes meanwhile not fired",
            self.name,
            self._where(),
            outage,
        )
        self._baseline(values, now)

    def _baseline(self, values: list[Number], now: float) -> None:
        # An input already active when reading starts (or resumes) is not a new pulse.
        self._last = values
        self._states = [_Bit(active=bool(value), since=now) for value in values]
        self._stats.connected(True)

    def _compare(self, values: list[Number], now: float) -> None:
        previous, self._last = self._last, values
        assert previous is not None
        for index, (old, new) in enumerate(zip(previous, values, strict=True)):
            if self._bits:
                self._bit(index, bool(new), now)
            elif new != old:
                self._fire(index, new, old, now)

    # bits: the gpio trigger's rules, on reads -------------------------------------------

    def _bit(self, index: int, active: bool, now: float) -> None:
        bit = self._states[index]
        if active != bit.active:
            if now >= bit.quiet_until:
                self._accept(index, bit, active, now)
        elif active and not bit.confirmed and now - bit.since >= self._min_active:
            bit.confirmed = True
            self._fire(
                index,
                1,
                0,
                bit.since,
                state=ACTIVE,
                duration_ms=(now - bit.since) * 1000,
                edge="activated",
            )

    def _accept(self, index: int, bit: _Bit, active: bool, now: float) -> None:
        previous_since = bit.since
        bit.active, bit.since, bit.quiet_until = active, now, now + self._bounce
        if active:
            bit.confirmed = not self._min_active
            if bit.confirmed:
                self._fire(index, 1, 0, now, state=ACTIVE, edge="activated")
        elif bit.confirmed:
            self._fire(
                index,
                0,
                1,
                now,
                state=INACTIVE,
                duration_ms=(now - previous_since) * 1000,
                edge="deactivated",
            )
        else:
            self._stats.ignored()
            log.debug(
                "modbus pulse too short trigger=%s address=%d duration_ms=%.1f min_active_ms=%d",
                self.name,
                self.config.address + index,
                (now - previous_since) * 1000,
                self.config.min_active_ms,
            )

    def _fire(
        self,
        index: int,
        value: Number,
        previous: Number,
        at: float,
        *,
        state: str | None = None,
        duration_ms: float | None = None,
        edge: str | None = None,
    ) -> None:
        if edge is not None and self.config.edge not in (edge, "both"):
            return
        values: dict[str, Value] = {
            "host": self.config.host,
            "unit_id": self.config.unit_id,
            "table": self.config.table,
            "address": self.config.address + index * self._words,
            "value": value,
            "previous": previous,
        }
        if state is not None:
            values["state"] = state
            values["duration_ms"] = None if duration_ms is None else round(duration_ms, 1)
        assert self._emit is not None
        self._stats.deliver(self._emit, event_at(self.name, values, at))
