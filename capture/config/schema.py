"""The rule file's schema: the single source of option names, defaults and docs.

Everything a technician can write in `rules.toml` is modelled here with a
description; `rules.example.toml` and docs/rules.md follow these models, and a
test checks the example uses every option. Cross-references between sections
(a rule naming a camera) are checked in `capture.config.check`, which can
report all problems at once instead of stopping at the first.

Why one module of ~800 lines, most of it descriptions: the models are the
reference a technician reads (docs/rules-reference.md is generated from
them), the camera and trigger unions are written out here so a type checker
sees them, and one file keeps every option's name, default and meaning side
by side.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from capture.upload.keys import DEFAULT_KEY, key_template_problem

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Names of cameras, triggers and rules end up in file names and MQTT topics,
so they are restricted to characters that are safe in both."""

Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    """Base of every config model: frozen, and a typo is an error, never ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class SecretRef(Model):
    """A model holding a secret that may be written inline, or referenced.

    Subclasses name their secret fields in `secret_fields`; for a field `x` the
    rule file may give `x` (in clear), `x_env` (an environment variable) or
    `x_file` (a file such as /run/secrets/x), at most one. The loader resolves
    references into the `SecretStr` field, so code using the config only ever
    reads `x`, and nothing prints it.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> SecretRef:
        for name in self.secret_fields:
            given = [
                key
                for key in (name, f"{name}_env", f"{name}_file")
                if getattr(self, key) is not None
            ]
            if len(given) > 1:
                raise ValueError(f"give only one of {', '.join(given)}")
        return self


# --------------------------------------------------------------------------- service


class ServiceConfig(Model):
    """Who this service is and how it logs."""

    site: Name = Field(
        "plant", description="Site (factory) name; used in MQTT events and the dashboard."
    )
    line: str = Field(
        "Line 1",
        min_length=1,
        max_length=64,
        description="Default production line of this Pi; cameras without their own `line` belong to it.",
    )
    timezone: str = Field(
        "UTC",
        description="IANA time zone for dates and times in file names and the dashboard, e.g. 'Europe/Berlin'.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log level written to stderr (journald keeps it)."
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        le=300,
        description="On SIGTERM, how long in-flight captures may take to finish before the service exits.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')"
            ) from exc
        return value


# --------------------------------------------------------------------------- storage


DEFAULT_FILENAME = "{line}/{date}/{rule}_{camera}_{time:%H%M%S}_{seq}.jpg"


class StorageConfig(Model):
    """Where snapshots go and how long they stay."""

    root: Path = Field(
        Path("/var/lib/event-capture"),
        description="Folder holding snapshots, latest/, and the journal database.",
    )
    filename: str = Field(
        DEFAULT_FILENAME,
        min_length=1,
        description="Default filename template under `root` (see docs/rules-language.md#filename-templates); rules may override it.",
    )
    # Upper bounds: a figure past them is a typo, and beyond them the date and byte
    # arithmetic of retention overflows (keep_days = 1000000 would stop retention for good).
    keep_days: float | None = Field(
        30,
        gt=0,
        le=36500,
        description="Delete snapshots older than this many days (at most 36500); omit to keep by age forever.",
    )
    max_total_mb: float | None = Field(
        None,
        gt=0,
        le=1e9,
        description="Delete oldest snapshots while all of them together exceed this size.",
    )
    min_free_mb: float = Field(
        200,
        ge=0,
        le=1e9,
        description="Delete oldest snapshots while the disk has less free space than this.",
    )
    retention_interval_s: float = Field(
        60,
        gt=0,
        le=86400,
        description="How often retention runs (it also runs at once when a write finds the disk full).",
    )
    latest: bool = Field(
        True,
        description="Keep `latest/<camera>.jpg` updated atomically for dashboards and other tools.",
    )
    fsync: bool = Field(
        True,
        description="fsync each snapshot before it is renamed into place, so power loss never leaves a torn JPEG.",
    )


# --------------------------------------------------------------------------- mqtt


class MqttConfig(SecretRef):
    """The broker the service publishes events to, and the `mqtt` triggers listen on."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    enabled: bool = Field(True, description="Connect to the broker at all.")
    host: str = Field("localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        None, description="CA certificate file to verify the broker with; system CAs if omitted."
    )
    verify: bool = Field(True, description="Verify the broker's TLS certificate and host name.")
    username: str | None = Field(None, description="User name for the broker.")
    password: SecretStr | None = Field(
        None, description="Broker password in clear (prefer password_env or password_file)."
    )
    password_env: str | None = Field(
        None, description="Environment variable holding the broker password."
    )
    password_file: Path | None = Field(
        None,
        description="File holding the broker password, e.g. /run/credentials/event-capture.service/mqtt.",
    )
    client_id: str | None = Field(
        None,
        max_length=128,
        description="MQTT client id; must be stable so the broker keeps the session. Default: event-capture-<site>-<hostname>.",
    )
    topic_prefix: str = Field(
        "event-capture",
        pattern=r"^[^#+\x00]+$",
        description="Prefix of every topic the service publishes: {prefix}/events/{rule}, {prefix}/status, {prefix}/cmd/snap.",
    )
    qos: Literal[0, 1, 2] = Field(
        1, description="QoS of published events and of trigger subscriptions."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")

    def client_id_for(self, site: str) -> str:
        """`client_id`, or a stable default per Pi so the broker keeps the session across restarts."""
        return (self.client_id or f"event-capture-{site}-{socket.gethostname()}")[:128]

    @field_validator("topic_prefix")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


# --------------------------------------------------------------------------- upload


_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class UploadConfig(SecretRef):
    """Pictures copied to an S3-compatible object store (MinIO, Ceph RGW, SeaweedFS, AWS S3).

    Each saved picture is queued in the journal in the commit of its capture
    row and uploaded by a worker thread: a capture never waits for the network.
    While upload is on, local retention keeps every picture not uploaded yet.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("access_key", "secret_key")

    enabled: bool = Field(False, description="Upload every saved picture to the object store.")
    endpoint: str | None = Field(
        None,
        description="The store's URL: scheme, host and port, e.g. 'https://s3.plant.example:9000' "
        "(AWS: 'https://s3.eu-central-1.amazonaws.com').",
    )
    bucket: str | None = Field(
        None, pattern=_BUCKET_PATTERN, description="Bucket the pictures go to; it must exist."
    )
    region: str = Field(
        "us-east-1",
        min_length=1,
        description="Region signed into requests (MinIO, SeaweedFS and Ceph accept the default).",
    )
    key: str = Field(
        DEFAULT_KEY,
        min_length=1,
        description="Object key template: {site}, {line}, {camera}, {rule}, {path} (the "
        "picture's path under [storage].root), {event_id}, {seq}.",
    )
    access_key: SecretStr | None = Field(
        None, description="Access key id in clear (prefer access_key_env or access_key_file)."
    )
    access_key_env: str | None = Field(
        None, description="Environment variable holding the access key id."
    )
    access_key_file: Path | None = Field(None, description="File holding the access key id.")
    secret_key: SecretStr | None = Field(
        None, description="Secret access key in clear (prefer secret_key_env or secret_key_file)."
    )
    secret_key_env: str | None = Field(
        None, description="Environment variable holding the secret access key."
    )
    secret_key_file: Path | None = Field(
        None,
        description="File holding the secret access key, e.g. /run/credentials/event-capture.service/s3.",
    )
    ca_file: Path | None = Field(
        None,
        description="CA certificate file to verify an https endpoint with; system CAs if omitted.",
    )
    verify: bool = Field(True, description="Verify the store's TLS certificate and host name.")
    public_url: str | None = Field(
        None,
        description="Base URL of the links in upload messages; default '<endpoint>/<bucket>'.",
    )
    concurrency: int = Field(2, ge=1, le=16, description="Uploads in flight at once.")
    retry_max_s: float = Field(
        60,
        ge=1,
        le=3600,
        description="Longest wait between attempts while the store is unreachable (back-off from 1 s).",
    )

    @field_validator("endpoint", "public_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, separator, rest = value.strip().partition("://")
        if not separator or scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError("give a URL such as 'https://s3.plant.example:9000'")
        if "@" in rest:
            raise ValueError("no user in the URL: the keys go in access_key_env/secret_key_env")
        return value.strip().rstrip("/")

    @field_validator("key")
    @classmethod
    def _key_template(cls, value: str) -> str:
        problem = key_template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> UploadConfig:
        if self.enabled and (self.endpoint is None or self.bucket is None):
            raise ValueError("enabled = true needs endpoint and bucket")
        if self.endpoint and "/" in self.endpoint.partition("://")[2]:
            raise ValueError("endpoint is scheme, host and port only; the bucket goes in bucket")
        if self.ca_file is not None and not (self.endpoint or "").startswith("https://"):
            raise ValueError("ca_file is only used with an https endpoint")
        keys = [self.has(name) for name in self.secret_fields]
        if any(keys) and not all(keys):
            raise ValueError(
                "give both access_key and secret_key (or neither, for a public bucket)"
            )
        return self

    def has(self, name: str) -> bool:
        """Whether the file gives secret `name`, in clear or by reference."""
        return any(getattr(self, key) is not None for key in (name, f"{name}_env", f"{name}_file"))

    @property
    def base_url(self) -> str:
        """Where links to uploaded objects start."""
        return self.public_url or f"{self.endpoint}/{self.bucket}"


# --------------------------------------------------------------------------- web


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConfig(SecretRef):
    """The dashboard, its JSON API and the `http` triggers' endpoint."""

    secret_fields: ClassVar[tuple[str, ...]] = ("token",)

    enabled: bool = Field(True, description="Serve the dashboard and API.")
    bind: str = Field(
        "127.0.0.1", description="Address to listen on; anything but loopback requires a token."
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 picks a free one, for tests).")
    token: SecretStr | None = Field(
        None, description="Access token in clear (prefer token_env or token_file)."
    )
    token_env: str | None = Field(
        None, description="Environment variable holding the access token."
    )
    token_file: Path | None = Field(None, description="File holding the access token.")

    @property
    def token_given(self) -> bool:
        """Whether the file gives a token, in clear or by reference (resolved or not)."""
        return any(getattr(self, key) is not None for key in ("token", "token_env", "token_file"))

    @model_validator(mode="after")
    def _token_off_loopback(self) -> WebConfig:
        if self.enabled and not _is_loopback(self.bind) and not self.token_given:
            raise ValueError(
                f"bind {self.bind!r} is reachable from the network: set token_env or token_file"
            )
        return self


# --------------------------------------------------------------------------- detection


class DetectionConfig(Model):
    """The object detector run on saved pictures (docs/detection.md); off without a model."""

    runtime: Literal["onnx"] = Field(
        "onnx", description="Detector runtime: onnx (onnxruntime on the CPU; the detect extra)."
    )
    model: Path | None = Field(
        None,
        description="ONNX model file, e.g. /var/lib/event-capture/models/coco-ssd/model.onnx "
        "(`capture models install coco-ssd`); omit to detect nothing.",
    )
    labels: Path | None = Field(
        None,
        description="Label file: one class name per line, in the order of the model's score "
        "columns; a blank line is a column never reported.",
    )
    input_size: (
        Annotated[list[Annotated[int, Field(ge=16, le=4096)]], Field(min_length=2, max_length=2)]
        | None
    ) = Field(
        None,
        description="[width, height] pictures are scaled to before the model sees them, when the "
        "model does not fix it itself; omit to give the picture as it is (COCO-SSD: [300, 300], faster).",
    )
    box_order: Literal["yxyx", "xyxy"] = Field(
        "yxyx",
        description="Coordinate order of the model's boxes (0-1 of the picture): yxyx as TensorFlow "
        "detection models (COCO-SSD), xyxy as most others.",
    )
    iou_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Boxes of one class overlapping a better one by more than this (intersection "
        "over union) are the same object.",
    )
    queue: int = Field(
        32,
        ge=1,
        le=10_000,
        description="Firings waiting for the detector; beyond, their pictures are journaled "
        "'not_analysed' and counted (never dropped), and captures never wait.",
    )
    threads: int = Field(
        1,
        ge=1,
        le=16,
        description="CPU threads the detector may use; 1 leaves the other cores to the captures.",
    )

    @model_validator(mode="after")
    def _model_and_labels_together(self) -> DetectionConfig:
        if (self.model is None) != (self.labels is None):
            raise ValueError("give both model and labels, or neither")
        return self


class DetectOptions(Model):
    """What to detect on a rule's or a camera's pictures: `detect = { classes = [...], ... }`."""

    classes: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Classes to report, as the label file names them (e.g. ['person', 'truck']); "
        "empty: every class.",
    )
    min_score: float = Field(
        0.5, gt=0, le=1, description="Least score (0-1) of an object that is reported."
    )
    max_objects: int = Field(
        20, ge=1, le=500, description="Most objects reported per picture, best scores first."
    )
    annotate: bool = Field(
        False,
        description="Also save a copy with the boxes drawn, beside the picture: <name>_boxes.jpg.",
    )
    crops: bool = Field(
        False,
        description="Also save each object cut out, beside the picture: <name>_<class>_<n>.jpg.",
    )


# --------------------------------------------------------------------------- homeassistant


#: Home Assistant's own rule for node and object ids in discovery topics.
DISCOVERY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class HomeAssistantConfig(Model):
    """Home Assistant MQTT discovery: cameras as `image` entities, rules as `event` entities."""

    enabled: bool = Field(
        False, description="Publish discovery configs on the [mqtt] broker (needs [mqtt] enabled)."
    )
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[^#+\x00/]+(/[^#+\x00/]+)*$",
        description="Home Assistant's discovery prefix (its MQTT integration's setting).",
    )
    node_id: str | None = Field(
        None,
        pattern=DISCOVERY_ID_PATTERN,
        description="This Pi's id in discovery topics and unique ids; default: the MQTT client id with other characters as '_'.",
    )
    device_name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Device name shown in Home Assistant; default: 'event-capture SITE LINE'.",
    )
    images: bool = Field(
        True,
        description="Each camera's latest picture as an image entity: the JPEG is published, retained, on {prefix}/cameras/{camera}/image.",
    )
    image_interval_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="At most one picture per camera per interval on the broker; the newest always follows.",
    )
    events: bool = Field(True, description="Each rule's firings as an event entity.")


# --------------------------------------------------------------------------- cameras


#: How a camera authenticates: `auto` learns the scheme from its first 401.
AuthMode = Literal["auto", "none", "basic", "digest", "query"]


#: Stream URL schemes a `[cameras.X.live]` section may name besides a path on the camera.
LIVE_SCHEMES = ("rtsp://", "rtsps://")


class LiveStream(Model):
    """A warm stream kept open and its last seconds buffered: frames from before the trigger.

    Opt-in per camera: a stream costs the camera's and the network's bandwidth
    all the time, which is why snapshots are the default.
    """

    url: str | None = Field(
        None,
        description="The stream: a path on the camera (MJPEG over its HTTP, with its auth), or "
        "rtsp://host[:port]/path (H.264/H.265 through PyAV, the `stream` extra; user and "
        "password from the camera section, never in the URL); "
        "default the driver's own stream (mjpeg: its path; xrc: request_av.cgi + "
        "videostream.cgi). Prefer the sub-stream: it costs a fraction of the bandwidth.",
    )
    buffer_s: float = Field(
        10.0, gt=0, le=300, description="Seconds of frames kept, the furthest back a rule can ask."
    )
    buffer_mb: float = Field(
        32.0,
        gt=0,
        le=1024,
        description="Most memory the buffer holds, in MiB; older frames go first beyond it.",
    )
    reconnect_max_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Longest wait between reconnection attempts (doubling from 1 s).",
    )
    fallback: bool = Field(
        True,
        description="While the stream is down, take pictures through the camera's snapshot "
        "request instead (journaled as via = fallback); false fails them.",
    )

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("/"):
            return value
        if not value.lower().startswith(LIVE_SCHEMES):
            raise ValueError(
                "give a path on the camera (/video.mjpg) or an rtsp:// URL; the host, "
                "scheme and port of an HTTP stream are the camera's own"
            )
        if "@" in value.split("/", 3)[2]:
            raise ValueError(
                "no user or password in the URL: they come from the camera's user and password_env"
            )
        return value


class CameraBase(SecretRef):
    """Options every camera driver understands."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    default_auth: ClassVar[AuthMode] = "auto"
    #: What the driver streams when `live.url` is not given (None: the driver has no stream).
    own_stream: ClassVar[str | None] = None

    host: str = Field(min_length=1, description="Camera or NVR host name or IP address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="TCP port; default 80 for http, 443 for https."
    )
    scheme: Literal["http", "https"] = Field("http", description="http or https.")
    verify: bool = Field(
        True, description="Verify the HTTPS certificate; set false only for self-signed devices."
    )
    ca_file: Path | None = Field(
        None, description="CA or self-signed certificate file to verify HTTPS with."
    )
    channel: int = Field(
        1, ge=0, le=256, description="Channel on a DVR/NVR (1-based); 1 for a single camera."
    )
    stream: Literal["main", "sub"] = Field(
        "main", description="main (full resolution) or sub stream."
    )
    auth: AuthMode = Field(
        "auto",
        description="auto learns the scheme from the camera's first 401; or force none, basic, digest, query.",
    )
    user: str | None = Field(None, description="User name on the camera.")
    password: SecretStr | None = Field(
        None, description="Password in clear (prefer password_env or password_file)."
    )
    password_env: str | None = Field(
        None, description="Environment variable holding the camera password."
    )
    password_file: Path | None = Field(None, description="File holding the camera password.")
    connect_timeout_s: float = Field(3.0, gt=0, le=60, description="TCP/TLS connect timeout.")
    timeout_s: float = Field(
        10.0, gt=0, le=120, description="Read timeout: NVRs can take seconds to answer."
    )
    deadline_s: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Overall limit for one snapshot, auth and retry included; enforced on "
        "every socket read, whatever the device sends.",
    )
    max_header_kb: int = Field(
        64,
        ge=4,
        le=1024,
        description="Largest answer head (status line and headers, 1xx answers included) "
        "accepted, in KiB; a longer one fails as DeviceError.",
    )
    max_image_mb: int = Field(
        24,
        ge=1,
        le=256,
        description="Largest snapshot accepted, in MiB (an 8 MP JPEG is 2-5 MB); a larger "
        "answer fails as InvalidImage.",
    )
    line: str | None = Field(
        None,
        max_length=64,
        description="Production line this camera belongs to; default [service].line.",
    )
    max_concurrent: int = Field(
        1,
        ge=1,
        le=16,
        description="Requests in flight at once per device (sections with the same scheme, host, "
        "port and user, such as NVR channels, share them; the smallest value wins); "
        "cheap cameras and NVRs break above 1.",
    )
    reject_stale: bool = Field(
        False,
        description="Reject an image byte-identical to the previous one (frozen camera) instead of flagging it stale.",
    )
    description: str = Field("", description="Free text for people; shown in the dashboard.")
    live: LiveStream | None = Field(
        None,
        description="Keep a warm stream and buffer its last seconds (see docs/cameras.md#stream-backed-cameras); "
        "omit for snapshots on demand.",
    )

    @field_validator("live")
    @classmethod
    def _live_has_a_stream(cls, value: LiveStream | None) -> LiveStream | None:
        if value is not None and value.url is None and cls.own_stream is None:
            raise ValueError(
                "this vendor has no stream of its own: give live.url, a path on the camera "
                "(/video.mjpg) or an rtsp:// URL"
            )
        return value

    detect: DetectOptions | None = Field(
        None,
        description="Detect objects on this camera's pictures, e.g. { classes = ['person'], "
        "min_score = 0.5 }; a rule's own `detect` wins (docs/detection.md).",
    )

    @field_validator("host")
    @classmethod
    def _host_alone(cls, value: str) -> str:
        # The value is never quoted back: `admin:pw@10.0.0.5` would show a password.
        host = value.strip()
        if "://" in host:
            raise ValueError("give the host alone: the scheme goes in `scheme`, a port in `port`")
        if "@" in host:
            raise ValueError(
                "give the host alone: the user goes in `user`, the password in password_env"
            )
        if any(char in host for char in "/?#[] \t") or not host:
            raise ValueError("give only a host name or IP address: no path, brackets or spaces")
        if ":" in host:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError("give the port as `port = N`, not in host") from None
        return host

    @model_validator(mode="after")
    def _tls_options_need_https(self) -> CameraBase:
        if self.scheme == "http" and self.ca_file is not None:
            raise ValueError("ca_file is only used with scheme = 'https'")
        return self

    @property
    def effective_port(self) -> int:
        """The port to connect to, derived from the scheme when not given."""
        return self.port or (443 if self.scheme == "https" else 80)

    @property
    def effective_auth(self) -> AuthMode:
        """The auth mode after applying the vendor's default."""
        return self.default_auth if self.auth == "auto" else self.auth


class HikvisionCamera(CameraBase):
    """Hikvision camera or NVR channel over ISAPI."""

    vendor: Literal["hikvision"] = Field(description="Camera driver; see docs/cameras.md.")
    width: int | None = Field(
        None,
        ge=16,
        le=8192,
        description="Ask the device for this image width (videoResolutionWidth).",
    )
    height: int | None = Field(
        None,
        ge=16,
        le=8192,
        description="Ask the device for this image height (videoResolutionHeight).",
    )
    streaming_proxy: Literal["auto", "always", "never"] = Field(
        "auto",
        description="NVR IP channels: auto falls back to ContentMgmt/StreamingProxy on 400 badXmlContent and remembers it.",
    )


class DahuaCamera(CameraBase):
    """Dahua, Amcrest, Lorex, IMOU and other OEMs of the snapshot.cgi family."""

    vendor: Literal["dahua"] = Field(description="Camera driver; see docs/cameras.md.")
    zero_based_channel: bool = Field(
        False, description="Old firmware numbers channels from 0; set true for it."
    )


class EdimaxCamera(CameraBase):
    """EDIMAX IC-series cameras."""

    vendor: Literal["edimax"] = Field(description="Camera driver; see docs/cameras.md.")
    path: str = Field("/snapshot.jpg", pattern=r"^/", description="Snapshot path on the camera.")


class XrcCamera(CameraBase):
    """Shenzhen-style CGI cameras (old Foscam, ReeCam, XRC): snapshot.cgi and videostream.cgi."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password", "session")
    default_auth: ClassVar[AuthMode] = "query"
    own_stream: ClassVar[str | None] = "request_av.cgi + videostream.cgi"
    vendor: Literal["xrc"] = Field(description="Camera driver; see docs/cameras.md.")
    mode: Literal["snapshot", "stream"] = Field(
        "snapshot",
        description="snapshot: /snapshot.cgi; stream: request_av.cgi then one frame of videostream.cgi.",
    )
    resolution: int | None = Field(
        None, ge=0, le=64, description="Device resolution code (e.g. 8 = 320x240, 32 = 640x480)."
    )
    session: SecretStr | None = Field(
        None,
        description="Use this session id instead of user/pwd query parameters; in clear "
        "(prefer session_env or session_file).",
    )
    session_env: str | None = Field(
        None, description="Environment variable holding the session id."
    )
    session_file: Path | None = Field(None, description="File holding the session id.")


class MjpegCamera(CameraBase):
    """Any camera serving multipart/x-mixed-replace: the first complete frame is kept."""

    own_stream: ClassVar[str | None] = "its path"
    vendor: Literal["mjpeg"] = Field(description="Camera driver; see docs/cameras.md.")
    path: str = Field(
        pattern=r"^/",
        description="Stream path and query template, e.g. /mjpg/video.mjpg?camera={channel}; "
        "fields: {channel} (1-based), {channel0} (0-based), {stream} (main or sub), {host}, {port}, "
        "{random} (a fresh token per request, a cache buster).",
    )


class GenericCamera(CameraBase):
    """Any HTTP snapshot URL, for vendors without a driver of their own."""

    vendor: Literal["generic"] = Field(description="Camera driver; see docs/cameras.md.")
    path: str = Field(
        pattern=r"^/",
        description="Path and query template, e.g. /axis-cgi/jpg/image.cgi?camera={channel}; "
        "fields: {channel} (1-based), {channel0} (0-based), {stream} (main or sub), {host}, {port}, "
        "{random} (a fresh token per request, a cache buster).",
    )
    user_param: str = Field(
        "user",
        min_length=1,
        description="Query parameter carrying the user name when auth = 'query'.",
    )
    password_param: str = Field(
        "password",
        min_length=1,
        description="Query parameter carrying the password when auth = 'query'.",
    )


class OnvifCamera(CameraBase):
    """Any ONVIF (Profile S) device: its snapshot URI is asked over ONVIF, then fetched over HTTP."""

    own_stream: ClassVar[str | None] = "GetStreamUri (the sub-stream unless stream = 'main')"

    vendor: Literal["onvif"] = Field(description="Camera driver; see docs/cameras.md.")
    profile: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Media profile to photograph: its token or name (`capture discover` lists "
        "them), or first (the device's first); default: by stream, main the most pixels, "
        "sub the fewest. port is the ONVIF port (80, 8000, 8080, 2020...).",
    )

    @model_validator(mode="after")
    def _https_is_unverified(self) -> OnvifCamera:
        # The ONVIF library speaks HTTPS without checking the certificate: say so, not pretend.
        if self.scheme == "https" and self.verify:
            raise ValueError(
                "ONVIF over https cannot check the device's certificate (the ONVIF library "
                "does not); set verify = false to accept that, or use scheme = 'http'"
            )
        return self


CameraConfig = Annotated[
    HikvisionCamera
    | DahuaCamera
    | EdimaxCamera
    | XrcCamera
    | MjpegCamera
    | GenericCamera
    | OnvifCamera,
    Field(discriminator="vendor"),
]


# --------------------------------------------------------------------------- triggers


class TriggerBase(Model):
    """Options every trigger kind understands."""

    description: str = Field("", description="Free text for people.")
    fields: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]] = Field(
        default_factory=list,
        description="Names of the values this trigger's payloads carry (JSON fields, dotted for nested ones), "
        "so conditions and templates using them can be checked before the line runs.",
    )

    def value_names(self) -> frozenset[str]:
        """The values an event of this trigger carries, for check-time validation."""
        return frozenset(self.fields)


class GpioTrigger(TriggerBase):
    """A digital input on the Pi: an infrared gate, a light barrier, a dry contact."""

    type: Literal["gpio"] = Field(description="Trigger kind; see docs/triggers.md.")
    pin: int | str = Field(
        description="Pin as gpiozero names it: 17, 'GPIO17', 'BCM17' or 'BOARD11'."
    )
    pull_up: bool | None = Field(
        True,
        description="true: internal pull-up, input active when pulled low (NPN sensors, dry contacts to GND); "
        "false: pull-down (PNP sensors); omit (with active_state) for an externally pulled input.",
    )
    active_state: bool | None = Field(
        None, description="Only with pull_up omitted: true if the input is active when high."
    )
    bounce_ms: int = Field(
        20,
        ge=0,
        le=5000,
        description="Ignore changes within this time after the last one (contact bounce).",
    )
    edge: Literal["activated", "deactivated", "both"] = Field(
        "activated", description="Fire when the input becomes active, inactive, or both."
    )
    min_active_ms: int = Field(
        0,
        ge=0,
        le=60000,
        description="Ignore pulses shorter than this (noise): an activation fires once the input has been "
        "active this long (stamped at the pulse's start), a deactivation only after such a pulse.",
    )

    @field_validator("pin")
    @classmethod
    def _pin_spelling(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if not 0 <= value <= 53:
                raise ValueError(f"GPIO {value} does not exist (0-53)")
            return value
        if not re.fullmatch(r"(?i)(GPIO|BCM|BOARD|WPI|J8:)?\d{1,2}", value.strip()):
            raise ValueError(f"pin {value!r}: use 17, 'GPIO17', 'BCM17' or 'BOARD11'")
        return value.strip().upper()

    @model_validator(mode="after")
    def _active_state_needs_floating_pull(self) -> GpioTrigger:
        if self.pull_up is None and self.active_state is None:
            raise ValueError("with pull_up omitted, set active_state (true: active high)")
        if self.pull_up is not None and self.active_state is not None:
            raise ValueError("active_state is only used when pull_up is omitted")
        return self

    def value_names(self) -> frozenset[str]:
        return super().value_names() | {"pin", "state", "duration_ms"}


class MqttTrigger(TriggerBase):
    """A message from a PLC or MES system on the broker of [mqtt]."""

    type: Literal["mqtt"] = Field(description="Trigger kind; see docs/triggers.md.")
    topic: str = Field(
        min_length=1, description="Topic filter; `+` matches one level, `#` the rest."
    )
    payload: Literal["auto", "json", "text", "number"] = Field(
        "auto", description="How to read the payload: auto tries JSON, then a number, then text."
    )
    value_name: str = Field(
        "value", pattern=r"^[A-Za-z_]\w*$", description="Value name of a text or number payload."
    )
    max_payload_bytes: int = Field(
        65536, ge=1, le=16 * 1024 * 1024, description="Larger payloads are dropped and counted."
    )

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        levels = value.split("/")
        for index, level in enumerate(levels):
            if "#" in level and (level != "#" or index != len(levels) - 1):
                raise ValueError(f"topic {value!r}: '#' must be a whole, last level")
            if "+" in level and level != "+":
                raise ValueError(f"topic {value!r}: '+' must be a whole level")
        return value

    def value_names(self) -> frozenset[str]:
        levels = self.topic.split("/")
        topic_levels = {f"topic_{i}" for i in range(1, len(levels) + 1)}
        return super().value_names() | topic_levels | {"topic", self.value_name}


class LineParser(TriggerBase):
    """Options shared by triggers that read lines of text (files, serial ports)."""

    parser: Literal["number", "regex", "csv", "json", "text"] = Field(
        "number",
        description="number: the last number in the line; regex: named groups of `pattern`; "
        "csv: `columns`; json: one JSON object per line; text: the whole line.",
    )
    value_name: str = Field(
        "value",
        pattern=r"^[A-Za-z_]\w*$",
        description="Value name for the number and text parsers (and a JSON line that is not an object), e.g. temp.",
    )
    pattern: str | None = Field(
        None, description="Regular expression with named groups, for parser = 'regex'."
    )
    columns: list[str] = Field(
        default_factory=list,
        description="Column names, for parser = 'csv'; empty names skip a column.",
    )
    delimiter: str = Field(
        ",", min_length=1, max_length=1, description="Column separator, for parser = 'csv'."
    )
    encoding: str = Field("utf-8", description="Text encoding of the lines.")

    @model_validator(mode="after")
    def _parser_options(self) -> LineParser:
        if self.parser == "regex":
            if not self.pattern:
                raise ValueError("parser = 'regex' needs a pattern")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
            if not compiled.groupindex:
                raise ValueError("pattern needs named groups, e.g. (?P<temp>[0-9.]+)")
        elif self.pattern is not None:
            raise ValueError("pattern is only used with parser = 'regex'")
        if self.parser == "csv" and not any(self.columns):
            raise ValueError("parser = 'csv' needs columns")
        return self

    def value_names(self) -> frozenset[str]:
        names: set[str] = {"line"}
        if self.parser in ("number", "text", "json"):  # json: a line that is not an object
            names.add(self.value_name)
        elif self.parser == "regex" and self.pattern:
            names |= set(re.compile(self.pattern).groupindex)
        elif self.parser == "csv":
            names |= {column for column in self.columns if column}
        return super().value_names() | names


class FileTrigger(LineParser):
    """A file written by a sensor, such as a wall-mounted infrared thermometer."""

    type: Literal["file"] = Field(description="Trigger kind; see docs/triggers.md.")
    path: str = Field(
        min_length=1, description="File to watch, or a glob such as /data/thermo/*.log."
    )
    mode: Literal["append", "replace"] = Field(
        "append",
        description="append: each new complete line is an event; replace: the whole file when it is rewritten.",
    )
    polling: bool = Field(
        False, description="Poll instead of using inotify (network file systems)."
    )
    poll_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Polling period when polling = true."
    )

    def value_names(self) -> frozenset[str]:
        return super().value_names() | {"file"}


class SerialTrigger(LineParser):
    """Lines from a USB or RS-232 device: a thermometer, a barcode scanner, a PLC port."""

    type: Literal["serial"] = Field(description="Trigger kind; see docs/triggers.md.")
    port: str = Field(
        min_length=1, description="Device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/..."
    )
    baud: int = Field(9600, ge=50, le=4_000_000, description="Baud rate.")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits.")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="Parity: N, E, O, M or S.")
    stopbits: Literal[1, 1.5, 2] = Field(1, description="Stop bits.")  # type: ignore[valid-type]  # typing allows no float in Literal; pydantic checks it
    reconnect_s: float = Field(
        2.0, gt=0, le=600, description="Wait between attempts to reopen an unplugged device."
    )

    def value_names(self) -> frozenset[str]:
        return super().value_names() | {"port"}


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class IntervalTrigger(TriggerBase):
    """A periodic tick, e.g. refreshing every camera's latest picture."""

    type: Literal["interval"] = Field(description="Trigger kind; see docs/triggers.md.")
    every_s: float = Field(gt=0, le=86400 * 7, description="Period in seconds.")
    hours: str | None = Field(
        None, description="Only within these local hours, e.g. '06:00-22:00' (may wrap midnight)."
    )
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        None, description="Only on these weekdays, e.g. ['mon', 'tue', 'wed', 'thu', 'fri']."
    )

    @field_validator("hours")
    @classmethod
    def _hours_range(cls, value: str | None) -> str | None:
        if value is not None and not _HOURS.match(value.strip()):
            raise ValueError(f"hours {value!r}: write HH:MM-HH:MM, e.g. '06:00-22:00'")
        return value.strip() if value else value

    def value_names(self) -> frozenset[str]:
        return super().value_names() | {"count"}


class HttpTrigger(TriggerBase):
    """POST /api/trigger/NAME on the web port, for PLCs and MES systems speaking HTTP."""

    type: Literal["http"] = Field(description="Trigger kind; see docs/triggers.md.")

    def value_names(self) -> frozenset[str]:
        return super().value_names() | {"client"}


ModbusTable = Literal["discrete_inputs", "coils", "holding_registers", "input_registers"]
ModbusDataType = Literal[
    "uint16", "int16", "uint32", "int32", "float32", "uint64", "int64", "float64"
]
#: How many 16-bit registers one value of each data type spans.
MODBUS_WORDS: dict[str, int] = {
    "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2,
    "uint64": 4, "int64": 4, "float64": 4,
}  # fmt: skip
MODBUS_BITS: frozenset[str] = frozenset({"discrete_inputs", "coils"})
"""The tables of single bits: edges and min_active_ms apply to them; registers fire on change."""


class ModbusTrigger(TriggerBase):
    """Inputs of a Modbus TCP device (remote I/O module, PLC), polled over the network."""

    type: Literal["modbus"] = Field(description="Trigger kind; see docs/triggers.md.")
    host: str = Field(min_length=1, description="Device host name or IP address.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port.")
    unit_id: int = Field(
        1,
        ge=0,
        le=255,
        description="Unit (slave) id; behind a gateway the address of the serial device, on most "
        "I/O modules 1 or 255.",
    )
    table: ModbusTable = Field(
        "discrete_inputs",
        description="discrete_inputs or coils (bits: fire on edges), holding_registers or "
        "input_registers (values of data_type: fire on every change).",
    )
    data_type: ModbusDataType = Field(
        "uint16",
        description="Registers: what one value is: uint16/int16 (one register), uint32/int32/"
        "float32 (two), uint64/int64/float64 (four), as the device's manual lists it.",
    )
    word_order: Literal["big", "little"] = Field(
        "big",
        description="Registers wider than 16 bits: big = the register at the lower address holds "
        'the high word (the Modbus convention), little = the low word first ("word swapped", '
        '"CDAB" in some manuals).',
    )
    address: int = Field(
        0,
        ge=0,
        le=65535,
        description="First address, 0-based as sent on the wire (manuals writing 10001 or "
        "40001 count from 1: subtract the table's offset and 1).",
    )
    count: int = Field(
        1,
        ge=1,
        le=125,
        description="How many consecutive bits or values to watch (registers: at most 125 "
        "registers in all, e.g. 62 float32 values).",
    )
    poll_ms: int = Field(
        50,
        ge=10,
        le=60000,
        description="Read the device this often; a pulse shorter than this may be missed.",
    )
    timeout_s: float = Field(
        1.0, gt=0, le=30, description="Connect and answer timeout of one read."
    )
    reconnect_max_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Reconnect with back-off after a failure: 0.5 s, doubling up to this.",
    )
    edge: Literal["activated", "deactivated", "both"] = Field(
        "activated", description="Bits: fire when a bit becomes 1, becomes 0, or both."
    )
    bounce_ms: int = Field(
        0,
        ge=0,
        le=5000,
        description="Bits: ignore changes of a bit within this time after its last accepted one.",
    )
    min_active_ms: int = Field(
        0,
        ge=0,
        le=60000,
        description="Bits: ignore pulses shorter than this: an activation fires once the bit has been "
        "read as 1 this long (stamped at the first such read), a deactivation only after such a pulse.",
    )

    @model_validator(mode="after")
    def _options_fit_the_table(self) -> ModbusTrigger:
        if self.table not in MODBUS_BITS:
            given = [
                key
                for key, default in (("edge", "activated"), ("bounce_ms", 0), ("min_active_ms", 0))
                if getattr(self, key) != default
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for bits (table = 'discrete_inputs' or 'coils'); "
                    "registers fire on every change, filter them with a rule's condition"
                )
        else:
            given = [
                key
                for key, default in (("data_type", "uint16"), ("word_order", "big"))
                if getattr(self, key) != default
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for registers "
                    "(table = 'holding_registers' or 'input_registers'); bits are 0 or 1"
                )
        words = self.registers_per_value
        if self.count * words > 125:
            raise ValueError(
                f"count {self.count} x {words} registers per {self.data_type} passes 125, "
                "the most one Modbus read returns; split it into two triggers"
            )
        if self.address + self.count * words > 65536:
            raise ValueError(f"address {self.address} + count {self.count} passes 65535")
        return self

    @property
    def registers_per_value(self) -> int:
        """Registers one watched value spans on the wire (1 for bits)."""
        return 1 if self.table in MODBUS_BITS else MODBUS_WORDS[self.data_type]

    def value_names(self) -> frozenset[str]:
        names = {"address", "value", "previous", "host", "unit_id", "table"}
        if self.table in MODBUS_BITS:
            names |= {"state", "duration_ms"}
        return super().value_names() | names


OPCUA_NODE_PATTERN = r"^(ns=\d+;|nsu=[^;]+;)?[isgb]=.+$"


class OpcuaTrigger(SecretRef, TriggerBase):
    """Variables of an OPC UA server (a PLC, a SCADA gateway), subscribed to."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    type: Literal["opcua"] = Field(description="Trigger kind; see docs/triggers.md.")
    endpoint: str = Field(
        min_length=1,
        description="Server endpoint URL, e.g. opc.tcp://10.0.0.20:4840 (no user or password in it).",
    )
    nodes: Annotated[list[str], Field(min_length=1)] = Field(
        description="Node ids of the variables to watch, e.g. 'ns=2;s=Line1.Gate' or 'ns=3;i=1002'."
    )
    sampling_ms: float = Field(
        0,
        ge=0,
        le=60000,
        description="How often the server samples each variable; 0 asks for its fastest rate.",
    )
    publishing_ms: float = Field(
        50,
        ge=10,
        le=60000,
        description="How often the server sends the changes it sampled (the subscription's publishing interval).",
    )
    security: Literal["none", "sign", "sign_and_encrypt"] = Field(
        "none",
        description="Message security: none, sign, or sign_and_encrypt (both need certificate_file and "
        "private_key_file).",
    )
    policy: Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = Field(
        "Basic256Sha256", description="Security policy, with security sign or sign_and_encrypt."
    )
    certificate_file: Path | None = Field(
        None,
        description="This client's certificate (PEM or DER), trusted on the server; its URI must be "
        "urn:event-capture:client unless application_uri says otherwise.",
    )
    private_key_file: Path | None = Field(
        None,
        description="This client's private key (PEM or DER), e.g. /run/credentials/event-capture.service/opcua.key.",
    )
    server_certificate_file: Path | None = Field(
        None,
        description="The server's certificate to trust; omitted, it is taken from the server's endpoint list.",
    )
    application_uri: str = Field(
        "urn:event-capture:client",
        min_length=1,
        description="This client's application URI; must match the URI in certificate_file.",
    )
    user: str | None = Field(None, description="User name on the server; anonymous if omitted.")
    password: SecretStr | None = Field(
        None, description="Password in clear (prefer password_env or password_file)."
    )
    password_env: str | None = Field(
        None, description="Environment variable holding the OPC UA password."
    )
    password_file: Path | None = Field(None, description="File holding the OPC UA password.")
    timeout_s: float = Field(4.0, gt=0, le=60, description="Timeout of one request to the server.")
    reconnect_max_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Reconnect and resubscribe with back-off after a loss: 0.5 s, doubling up to this.",
    )

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp_url(cls, value: str) -> str:
        # The value is never quoted back: opc.tcp://user:password@host would show a password.
        address = value.strip()
        if not address.startswith("opc.tcp://") or any(c.isspace() for c in address):
            raise ValueError(
                "write the endpoint as opc.tcp://HOST:PORT, e.g. opc.tcp://10.0.0.20:4840"
            )
        if "@" in address.removeprefix("opc.tcp://").partition("/")[0]:
            raise ValueError("no user or password in the endpoint: use user and password_env")
        return address

    @field_validator("nodes")
    @classmethod
    def _node_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(OPCUA_NODE_PATTERN, value.strip()):
                raise ValueError(
                    f"node id {value!r}: write ns=N;s=Name or ns=N;i=1234 (also g=, b=), "
                    "e.g. 'ns=2;s=Line1.Gate', as the PLC tool or an OPC UA browser shows it"
                )
        return [value.strip() for value in values]

    @model_validator(mode="after")
    def _security_needs_certificate(self) -> OpcuaTrigger:
        if self.security != "none" and (
            self.certificate_file is None or self.private_key_file is None
        ):
            raise ValueError(
                f"security = {self.security!r} needs certificate_file and private_key_file"
            )
        if self.security == "none" and self.certificate_file is not None:
            raise ValueError(
                "certificate_file is only used with security = 'sign' or 'sign_and_encrypt'"
            )
        if self.user is None and any(
            getattr(self, key) is not None for key in ("password", "password_env", "password_file")
        ):
            raise ValueError("a password needs a user")
        return self

    def value_names(self) -> frozenset[str]:
        return super().value_names() | {"node", "value", "source_time", "status"}


class DetectionTrigger(TriggerBase):
    """What object detection found on a rule's pictures, for follow-up rules (docs/detection.md)."""

    type: Literal["detection"] = Field(description="Trigger kind; see docs/triggers.md.")
    rules: list[Name] = Field(
        default_factory=list,
        description="Fire for the detections of these rules only; empty: of every rule (never of "
        "a rule a detection trigger fired, so follow-ups cannot chain).",
    )

    def value_names(self) -> frozenset[str]:
        # A class's count is a value named after it ("stop sign" -> stop_sign): list the
        # classes your conditions use in `fields`.
        names = {"rule", "event", "objects", "classes", "analysed", "not_analysed"}
        return super().value_names() | names


TriggerConfig = Annotated[
    GpioTrigger
    | MqttTrigger
    | FileTrigger
    | SerialTrigger
    | IntervalTrigger
    | HttpTrigger
    | ModbusTrigger
    | OpcuaTrigger
    | DetectionTrigger,
    Field(discriminator="type"),
]


def union_members(union: object) -> tuple[type[Model], ...]:
    """The models of a discriminated union such as CameraConfig, in the order written."""
    return get_args(get_args(union)[0])  # Annotated[A | B, Field(...)] -> (A | B, ...) -> (A, B)


def tag_of(model: type[Model], discriminator: str) -> str:
    """The value a union member's discriminator takes: its `vendor` or `type`."""
    return str(get_args(model.model_fields[discriminator].annotation)[0])


# --------------------------------------------------------------------------- rules


LINE_PREFIX = "line:"
"""Prefix of a rule's camera entry selecting every camera of a production line."""


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class RuleConfig(Model):
    """When which trigger fires, which cameras to photograph and how."""

    name: Name = Field(description="Rule name; used in file names, the journal and MQTT topics.")
    when: Annotated[list[Name], Field(min_length=1)] = Field(
        description="Trigger name, or a list of them."
    )
    condition: str | None = Field(
        None,
        description="Expression on the event's values, e.g. 'temp >= 37.5'; see docs/rules-language.md#conditions.",
    )
    cameras: Annotated[list[str], Field(min_length=1)] = Field(
        description="Camera names, and/or 'line:NAME' for every camera of a production line."
    )
    delay_ms: int = Field(
        0,
        ge=0,
        le=600_000,
        description="Wait before the first frame, e.g. for the part to reach the camera.",
    )
    burst: int = Field(1, ge=1, le=100, description="Frames per camera.")
    interval_ms: int = Field(500, ge=0, le=600_000, description="Time between burst frames.")
    frames_ms: (
        Annotated[
            list[Annotated[int, Field(ge=-300_000, le=600_000)]],
            Field(min_length=1, max_length=100),
        ]
        | None
    ) = Field(
        None,
        description="Frames at these offsets from the trigger, e.g. [-500, 0, 200]: negative ones "
        "from a stream-backed camera's buffer, 0 the frame nearest the trigger, positive ones "
        "waited for; instead of delay_ms, burst and interval_ms. A snapshot camera takes "
        "each at once or when due and records its real delay.",
    )
    cooldown_s: float = Field(
        0, ge=0, le=86400, description="Ignore further firings of this rule for this long."
    )
    cooldown_key: str | None = Field(
        None,
        description='Apply the cooldown per distinct value of this field (e.g. station), or per trigger with "trigger", instead of per rule.',
    )
    filename: str | None = Field(
        None, min_length=1, description="Filename template; default [storage].filename."
    )
    enabled: bool = Field(True, description="false keeps the rule in the file but never fires it.")
    description: str = Field("", description="Free text for people.")
    detect: DetectOptions | None = Field(
        None,
        description="Detect objects on this rule's pictures after they are saved, e.g. "
        "{ classes = ['person', 'truck'], min_score = 0.5 }; overrides the cameras' `detect` "
        "(docs/detection.md).",
    )

    _normalize_lists = field_validator("when", "cameras", mode="before")(_as_list)

    @field_validator("frames_ms")
    @classmethod
    def _offsets_once_each(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each offset once: two frames at one moment would be the same picture")
        return sorted(value) if value is not None else None

    @model_validator(mode="after")
    def _frames_or_burst(self) -> RuleConfig:
        if self.frames_ms is not None:
            both = sorted({"delay_ms", "burst", "interval_ms"} & self.model_fields_set)
            if both:
                raise ValueError(
                    f"frames_ms gives every frame's time itself: drop {', '.join(both)}"
                )
        return self

    @property
    def frame_count(self) -> int:
        """Frames per camera of one firing: len(frames_ms), else burst."""
        return len(self.frames_ms) if self.frames_ms is not None else self.burst

    def offset_ms(self, seq: int) -> int:
        """When frame `seq` (from 1) is meant to show, in ms after the trigger (negative: before)."""
        if self.frames_ms is not None:
            return self.frames_ms[seq - 1]
        return self.delay_ms + (seq - 1) * self.interval_ms


# --------------------------------------------------------------------------- the file


class RuleFile(Model):
    """A whole rule file."""

    service: ServiceConfig = Field(default_factory=ServiceConfig, description="This service.")
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="Snapshot storage and retention."
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker.")
    web: WebConfig = Field(default_factory=WebConfig, description="Dashboard and API.")
    detection: DetectionConfig = Field(
        default_factory=DetectionConfig, description="Object detection on saved pictures."
    )
    upload: UploadConfig = Field(
        default_factory=UploadConfig, description="Pictures to S3-compatible object storage."
    )
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery."
    )
    cameras: dict[Name, CameraConfig] = Field(default_factory=dict, description="Cameras by name.")
    triggers: dict[Name, TriggerConfig] = Field(
        default_factory=dict, description="Triggers by name."
    )
    rules: list[RuleConfig] = Field(default_factory=list, description="Rules, in order.")

    def secret_values(self) -> list[str]:
        """Every secret the file configures (resolved), for log scrubbing and leak tests."""
        holders: list[BaseModel] = [
            self.mqtt,
            self.web,
            self.upload,
            *self.cameras.values(),
            *self.triggers.values(),
        ]
        values = []
        for holder in holders:
            for name in getattr(holder, "secret_fields", ()):
                secret = getattr(holder, name, None)
                if isinstance(secret, SecretStr) and secret.get_secret_value():
                    values.append(secret.get_secret_value())
        return values

    def camera_line(self, name: str) -> str:
        """The production line of a camera, falling back to the service's line."""
        return self.cameras[name].line or self.service.line

    def detect_options(self, rule: RuleConfig, camera: str) -> DetectOptions | None:
        """What to detect on a picture of `rule` by `camera`: the rule's, else the camera's, else None."""
        if self.detection.model is None:
            return None
        config = self.cameras.get(camera)
        return rule.detect or (config.detect if config is not None else None)

    def rule_cameras(self, rule: RuleConfig) -> list[str]:
        """Camera names a rule photographs: names and `line:NAME` tags, in order, once each."""
        selected: dict[str, None] = {}
        for entry in rule.cameras:
            if entry.startswith(LINE_PREFIX):
                line = entry.removeprefix(LINE_PREFIX).strip()
                selected.update(
                    (name, None) for name in self.cameras if self.camera_line(name) == line
                )
            elif entry in self.cameras:
                selected[entry] = None
        return list(selected)


def top_sections() -> list[tuple[str, type[Model]]]:
    """The single-table sections of a rule file ([service], [storage], ...), in the file's order.

    Read off RuleFile, so the reference and the example's test see a new section at once.
    """
    return [
        (name, annotation)
        for name, field in RuleFile.model_fields.items()
        if isinstance(annotation := field.annotation, type) and issubclass(annotation, Model)
    ]
