"""A compact ONVIF device on loopback: the SOAP calls the ONVIF driver and `capture discover` make.

It answers, on 127.0.0.1 and a free port only (no WS-Discovery, no multicast),
the device service (GetSystemDateAndTime, GetServices, GetCapabilities,
GetDeviceInformation) and the media service (GetProfiles, GetSnapshotUri,
GetStreamUri), with answers shaped like a Hikvision DS-2CD2xxx's (ONVIF
18.12): SOAP 1.2 envelopes, the ver10 schema namespaces, two profiles (main
and sub stream). Every call but GetSystemDateAndTime must carry a WS-Security
UsernameToken whose PasswordDigest (base64 SHA-1 of nonce, created and
password) is checked; a wrong one gets the ter:NotAuthorized fault a real
device sends. The snapshot URI it hands out is given by the test: the
project's camera simulator serves the JPEG behind it, with digest auth.

The PyPI `ipycam` package serves ONVIF too, but starts WS-Discovery multicast
and binds every interface on start, which tests must not do.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<env:Envelope xmlns:env="{SOAP}" xmlns:tt="http://www.onvif.org/ver10/schema" '
    f'xmlns:tds="{DEVICE_NS}" xmlns:trt="{MEDIA_NS}" '
    'xmlns:ter="http://www.onvif.org/ver10/error">'
    "<env:Body>{body}</env:Body></env:Envelope>"
)

NOT_AUTHORIZED = (
    "<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode>"
    "<env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code>"
    '<env:Reason><env:Text xml:lang="en">The action requested requires authorization and '
    "the sender is not authorized</env:Text></env:Reason></env:Fault>"
)

BARE_AUTH_FAULT = (
    "<env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code>"
    '<env:Reason><env:Text xml:lang="en">Authority failure. You still have 22 attempt(s)'
    "</env:Text></env:Reason></env:Fault>"
)

NO_SUCH_PROFILE = (
    "<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode>"
    "<env:Value>ter:InvalidArgVal</env:Value><env:Subcode><env:Value>ter:NoProfile"
    "</env:Value></env:Subcode></env:Subcode></env:Code>"
    '<env:Reason><env:Text xml:lang="en">The requested profile token ProfileToken does not '
    "exist</env:Text></env:Reason></env:Fault>"
)


@dataclass(frozen=True)
class Profile:
    """A media profile the device offers."""

    token: str
    name: str
    encoding: str
    width: int
    height: int
    snapshot: bool = True


@dataclass
class OnvifDevice:
    """The device, its accounts and what it serves; use as a context manager."""

    user: str
    password: str
    snapshot_uri: str
    manufacturer: str = "HIKVISION"
    model: str = "DS-2CD2143G0-I"
    firmware: str = "V5.5.82 build 190909"
    profiles: tuple[Profile, ...] = (
        Profile("Profile_1", "mainStream", "H264", 2688, 1520),
        Profile("Profile_2", "subStream", "H264", 640, 360),
    )
    media: bool = True
    #: GetStreamUri's answer, `{token}` replaced; default: a Hikvision-style RTSP address.
    stream_uri: str = "rtsp://127.0.0.1:554/Streaming/Channels/10{channel}?transportmode=unicast"
    #: Refuse a wrong password with a bare fault and a text, as most devices do.
    bare_auth_fault: bool = False
    calls: list[str] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The port its ONVIF service listens on."""
        assert self._server is not None
        return int(self._server.server_address[1])

    def __enter__(self) -> OnvifDevice:
        device = self

        class Handler(_Handler):
            onvif = device

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on close (daemon_threads off): the client closes its
        # keep-alive connections when done, and `timeout` ends one it forgot.
        self._server.daemon_threads = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="onvif-device",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # ------------------------------------------------------------------ SOAP

    def answer(self, path: str, body: bytes) -> tuple[int, str]:
        """HTTP status and SOAP envelope for one POST."""
        envelope = ET.fromstring(body)
        operation = envelope.find(f"{{{SOAP}}}Body/*")
        assert operation is not None, "a SOAP request without a body element"
        namespace, _, name = operation.tag[1:].partition("}")
        with self._lock:
            self.calls.append(name)
        if name != "GetSystemDateAndTime" and not self._authorized(envelope):
            with self._lock:
                self.refused += 1
            return 400, ENVELOPE.format(
                body=BARE_AUTH_FAULT if self.bare_auth_fault else NOT_AUTHORIZED
            )
        if path == "/onvif/device_service" and namespace == DEVICE_NS:
            return 200, ENVELOPE.format(body=self._device_call(name))
        if path == "/onvif/media_service" and namespace == MEDIA_NS and self.media:
            return self._media_call(name, operation)
        return 400, ENVELOPE.format(body=NO_SUCH_PROFILE.replace("NoProfile", "ActionNotSupported"))

    def _authorized(self, envelope: ET.Element) -> bool:
        token = envelope.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username")
        digest = token.findtext(f"{{{WSSE}}}Password") or ""
        nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
        created = token.findtext(f"{{{WSU}}}Created") or ""
        expected = base64.b64encode(
            hashlib.sha1(nonce + created.encode() + self.password.encode()).digest()
        ).decode()
        return user == self.user and digest == expected

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _device_call(self, name: str) -> str:
        if name == "GetSystemDateAndTime":
            now = datetime.now(UTC)
            return (
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false"
                "</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-0:00:00</tt:TZ></tt:TimeZone>"
                f"<tt:UTCDateTime><tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}"
                f"</tt:Minute><tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>"
                f"{now.year}</tt:Year><tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day>"
                "</tt:Date></tt:UTCDateTime></tds:SystemDateAndTime>"
                "</tds:GetSystemDateAndTimeResponse>"
            )
        if name == "GetServices":
            services = [(DEVICE_NS, "device_service")]
            if self.media:
                services.append((MEDIA_NS, "media_service"))
            return (
                "<tds:GetServicesResponse>"
                + "".join(
                    f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{self._base()}"
                    f"/onvif/{path}</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60"
                    "</tt:Minor></tds:Version></tds:Service>"
                    for ns, path in services
                )
                + "</tds:GetServicesResponse>"
            )
        if name == "GetCapabilities":
            media = (
                f"<tt:Media><tt:XAddr>{self._base()}/onvif/media_service</tt:XAddr>"
                "<tt:StreamingCapabilities><tt:RTPMulticast>true</tt:RTPMulticast>"
                "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
                "</tt:StreamingCapabilities></tt:Media>"
                if self.media
                else ""
            )
            return (
                "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>"
                f"{self._base()}/onvif/device_service</tt:XAddr></tt:Device>{media}"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if name == "GetDeviceInformation":
            return (
                "<tds:GetDeviceInformationResponse>"
                f"<tds:Manufacturer>{escape(self.manufacturer)}</tds:Manufacturer>"
                f"<tds:Model>{escape(self.model)}</tds:Model>"
                f"<tds:FirmwareVersion>{escape(self.firmware)}</tds:FirmwareVersion>"
                "<tds:SerialNumber>DS-2CD2143G0-I20190101AAWRC12345678</tds:SerialNumber>"
                "<tds:HardwareId>88</tds:HardwareId></tds:GetDeviceInformationResponse>"
            )
        raise AssertionError(f"device service call not served: {name}")

    def _media_call(self, name: str, operation: ET.Element) -> tuple[int, str]:
        if name == "GetProfiles":
            return 200, ENVELOPE.format(
                body="<trt:GetProfilesResponse>"
                + "".join(_profile_xml(profile) for profile in self.profiles)
                + "</trt:GetProfilesResponse>"
            )
        token = operation.findtext(f"{{{MEDIA_NS}}}ProfileToken")
        profile = next((p for p in self.profiles if p.token == token), None)
        if profile is None or (name == "GetSnapshotUri" and not profile.snapshot):
            return 400, ENVELOPE.format(body=NO_SUCH_PROFILE)
        if name == "GetSnapshotUri":
            uri = self.snapshot_uri.replace("{token}", profile.token)
        elif name == "GetStreamUri":
            channel = profile.token.rsplit("_", 1)[-1]
            uri = self.stream_uri.replace("{channel}", channel).replace("{token}", profile.token)
        else:
            raise AssertionError(f"media service call not served: {name}")
        return 200, ENVELOPE.format(
            body=f"<trt:{name}Response><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false"
            "</tt:InvalidAfterReboot><tt:Timeout>PT60S</tt:Timeout></trt:MediaUri>"
            f"</trt:{name}Response>"
        )


def _profile_xml(profile: Profile) -> str:
    return (
        f'<trt:Profiles token="{profile.token}" fixed="true"><tt:Name>{profile.name}</tt:Name>'
        '<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig'
        "</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken>"
        '<tt:Bounds x="0" y="0" width="2688" height="1520"></tt:Bounds>'
        "</tt:VideoSourceConfiguration>"
        f'<tt:VideoEncoderConfiguration token="VideoEncoderToken_{profile.token[-1]}">'
        f"<tt:Name>VideoEncoder_{profile.token[-1]}</tt:Name><tt:UseCount>1</tt:UseCount>"
        f"<tt:Encoding>{profile.encoding}</tt:Encoding><tt:Resolution><tt:Width>"
        f"{profile.width}</tt:Width><tt:Height>{profile.height}</tt:Height></tt:Resolution>"
        "<tt:Quality>3.000000</tt:Quality><tt:RateControl><tt:FrameRateLimit>25"
        "</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>"
        "4096</tt:BitrateLimit></tt:RateControl><tt:H264><tt:GovLength>50</tt:GovLength>"
        "<tt:H264Profile>Main</tt:H264Profile></tt:H264><tt:Multicast><tt:Address><tt:Type>"
        "IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>8860"
        "</tt:Port><tt:TTL>128</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
        "<tt:SessionTimeout>PT5S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
        "</trt:Profiles>"
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    # Head and body are two writes: without TCP_NODELAY each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    onvif: OnvifDevice

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        status, envelope = self.onvif.answer(self.path, self.rfile.read(length))
        payload = envelope.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on `calls`."""
