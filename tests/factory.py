"""Real factory devices on loopback for the modbus and opcua triggers: pymodbus's and asyncua's own servers.

Each runs its library's asyncio server on a loop of its own, on a thread of
its own, so a test drives it from the main thread as a PLC program would
change its inputs: `set_bits`, `set_registers`, `write`. `stop()` and
`start()` restart it on the same port, as a PLC does after a power cut.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tests.broker import free_port

T = TypeVar("T")

UNIT_ID = 1
"""The Modbus unit id the test device answers; any other gets Modbus exception 4."""


class LoopThread:
    """An asyncio loop running on a thread of its own; `call` runs a coroutine there and waits."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ModbusDevice:
    """A Modbus TCP remote I/O module: 16 discrete inputs and coils, 16 holding and input registers."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._loop = LoopThread("modbus-device")
        self._server: Any = None
        self._context: Any = None
        self.answers = 0  # read answers sent (pymodbus calls trace_pdu on its loop's thread)
        #: When set, every read is answered with this Modbus exception (6: device busy).
        self.exception: int | None = None
        self._device = self._loop.call(self._make_device())
        self.start()

    @staticmethod
    async def _make_device() -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: PLC0415

        def block(datatype: DataType, value: int | bool) -> list[SimData]:
            return [SimData(0, count=16, values=value, datatype=datatype)]

        bits, registers = DataType.BITS, DataType.REGISTERS
        # Four separate tables, as a remote I/O module has them (not one shared block).
        return SimDevice(
            id=UNIT_ID,
            simdata=(
                block(bits, False),
                block(bits, False),
                block(registers, 0),
                block(registers, 0),
            ),
        )

    def start(self) -> None:
        """Listen (again) on the same port; the values set before a stop are kept."""

        async def serve() -> Any:
            from pymodbus.server import ModbusTcpServer  # noqa: PLC0415

            server = ModbusTcpServer(
                self._device, address=(self.host, self.port), trace_pdu=self._count
            )
            if self._context is not None:
                server.context = self._context  # a restarted device keeps its inputs
            await server.serve_forever(background=True)
            return server

        self._server = self._loop.call(serve())
        self._context = self._server.context

    def _count(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            return pdu
        self.answers += 1
        if self.exception is None:
            return pdu
        from pymodbus.pdu import ExceptionResponse  # noqa: PLC0415

        return ExceptionResponse(pdu.function_code, self.exception, pdu.dev_id, pdu.transaction_id)

    def answered(self, more: int) -> Callable[[], bool]:
        """A condition for `wait_for`: the device answered `more` further reads from now on.

        How a test knows the trigger has seen a value it set (two answers:
        the read in flight may have been answered before the change).
        """
        target = self.answers + more
        return lambda: self.answers >= target

    def stop(self) -> None:
        """Close the listener and every connection, as a device losing power does."""
        if self._server is not None:
            self._loop.call(self._server.shutdown())
            self._server = None

    def _set(self, function_code: int, address: int, values: list[Any]) -> None:
        async def write() -> None:
            error = await self._context.async_setValues(UNIT_ID, function_code, address, values)
            assert error is None, error

        self._loop.call(write())

    def set_bits(self, address: int, *values: bool) -> None:
        """Set discrete inputs, as a sensor wired to the module does."""
        self._set(2, address, list(values))

    def set_registers(self, address: int, *values: int) -> None:
        """Set holding registers, as a PLC program does."""
        self._set(3, address, list(values))

    def close(self) -> None:
        self.stop()
        self._loop.close()

    def trigger_section(self, name: str, **options: object) -> str:
        """A `[triggers.NAME]` section of type modbus reading this device, with `options`."""
        lines = [
            f"[triggers.{name}]",
            'type = "modbus"',
            f'host = "{self.host}"',
            f"port = {self.port}",
        ]
        lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
        return "\n".join(lines) + "\n\n"


def make_certificate(folder: Path, name: str, uri: str, server: bool) -> tuple[Path, Path]:
    """A self-signed OPC UA application certificate (DER) and its key (PEM), as a technician makes one."""
    import socket as sockets  # noqa: PLC0415

    from asyncua.crypto import cert_gen  # noqa: PLC0415
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: PLC0415

    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    certificate = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "event-capture tests"},
        [
            x509.UniformResourceIdentifier(uri),
            x509.DNSName(sockets.gethostname()),
            x509.DNSName("localhost"),
        ],
        [usage],
    )
    certificate_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    certificate_path.write_bytes(certificate.public_bytes(Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return certificate_path, key_path


class OpcuaServer:
    """An OPC UA server with a Line1 object: Gate (Boolean) and Count (Int32) variables.

    `node(name)` gives a variable's node id as a rule file writes it.
    With `security` (its certificate and key) it offers only Basic256Sha256
    Sign and SignAndEncrypt, trusting every client certificate (the test's),
    and with `users` it accepts only those user names and passwords.
    """

    def __init__(
        self, security: tuple[Path, Path] | None = None, users: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/capture/"
        self._security = security
        self._users = users
        self._loop = LoopThread("opcua-server")
        self._server: Any = None
        self.namespace = 0
        self._values: dict[str, Any] = {"Gate": False, "Count": 0, "Temp": 20.0}
        self.start()

    def node(self, name: str) -> str:
        """The node id of variable `name`, e.g. 'ns=2;s=Line1.Gate'."""
        return f"ns={self.namespace};s=Line1.{name}"

    def start(self) -> None:
        """Serve (again) on the same port, the variables with the values they had."""
        self._server = self._loop.call(self._serve())

    async def _serve(self) -> Any:
        from asyncua import Server, ua  # noqa: PLC0415

        server = Server(user_manager=_Users(self._users) if self._users is not None else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("event-capture test PLC")
        if self._users is not None:
            server.set_security_IDs(["Username"])
        if self._security is not None:
            certificate, key = self._security
            await server.set_application_uri("urn:event-capture:test-plc")
            await server.load_certificate(str(certificate))
            await server.load_private_key(str(key))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
        self.namespace = await server.register_namespace("urn:event-capture:test-plc")
        line = await server.nodes.objects.add_object(
            ua.NodeId("Line1", self.namespace), ua.QualifiedName("Line1", self.namespace)
        )
        self._variables = {}
        for name, value in self._values.items():
            self._variables[name] = await line.add_variable(
                ua.NodeId(f"Line1.{name}", self.namespace),
                ua.QualifiedName(name, self.namespace),
                ua.Variant(value, _variant_type(value)),
            )
        await server.start()
        return server

    def write(self, name: str, value: Any, status: str = "Good") -> None:
        """Change a variable, as the PLC program does; with a bad `status` (a StatusCodes
        name, e.g. "BadCommunicationError"), as a gateway that lost its PLC does."""
        from asyncua import ua  # noqa: PLC0415

        variable = self._variables[name]
        self._values[name] = value
        code = ua.StatusCode(getattr(ua.StatusCodes, status))
        now = datetime.now(UTC)  # stamped by the PLC, as write_value of a bare value does
        data = ua.DataValue(
            ua.Variant(value, _variant_type(value)),
            StatusCode=code,
            SourceTimestamp=now,
            ServerTimestamp=now,
        )
        self._loop.call(variable.write_value(data))

    def stop(self) -> None:
        """Stop serving, closing every session, as a PLC restarting does."""
        if self._server is not None:
            self._loop.call(self._server.stop())
            self._server = None

    def close(self) -> None:
        self.stop()
        self._loop.close()


def _variant_type(value: bool | int | float) -> Any:
    """The OPC UA type a PLC gives a variable holding `value`: BOOL, DINT or LREAL."""
    from asyncua import ua  # noqa: PLC0415

    if isinstance(value, bool):
        return ua.VariantType.Boolean
    return ua.VariantType.Int32 if isinstance(value, int) else ua.VariantType.Double


class _Users:
    """asyncua's user manager protocol: a user name and password pair is accepted or not."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole  # noqa: PLC0415

        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None
