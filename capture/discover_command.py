"""`capture discover HOST`: ask one ONVIF device what it offers and print its `[cameras.NAME]` section.

A unicast probe of a host the technician names (no WS-Discovery multicast,
which plant networks often block and which finds every device but the one
wanted): GetDeviceInformation, the media profiles and their snapshot and
stream URIs (capture.cameras.onvif_media). It prints what it found and a
section ready to paste into the rule file, which `capture check` accepts as
it is. The password is read from the environment variable the section then
names (`password_env`), so it is never typed on a command line, kept in the
shell history, or printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from capture.cameras.errors import AuthFailed, CameraError
from capture.cameras.onvif_media import DeviceMedia, MediaProfile, OnvifTarget, ask_device
from capture.cameras.redact import redact_url
from capture.config.schema import NAME_PATTERN, OnvifCamera

#: The ONVIF port tried when none is given: the HTTP port, where most devices serve it.
DEFAULT_PORT = 80


def register(subparsers: Any) -> None:
    """Add `capture discover` to the CLI."""
    parser = subparsers.add_parser(
        "discover",
        help="ask an ONVIF camera what it offers and print its rule-file section",
        description="Ask the ONVIF device at HOST (unicast; no multicast discovery) for its "
        "maker, model, media profiles and their snapshot and stream URIs, and print a "
        "[cameras.NAME] section ready to paste into the rule file. The password is read from "
        "the environment variable --password-env names, and the section refers to it.",
    )
    parser.add_argument("host", metavar="HOST", help="camera host name or IP address")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="ONVIF port (default 80; 8000, 8080, 2020 on some)",
    )
    parser.add_argument("--https", action="store_true", help="speak ONVIF over HTTPS")
    parser.add_argument("--user", default=None, help="user name on the camera")
    parser.add_argument(
        "--password-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the password (the section names it as password_env)",
    )
    parser.add_argument(
        "--name", default=None, help="camera name for the section (default: from the model)"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, metavar="S", help="give up after S seconds (15)"
    )
    parser.set_defaults(func=run_discover)


class _Refused(Exception):
    """What stops the probe, said to the technician on stderr."""


def run_discover(args: argparse.Namespace) -> int:
    """Probe the device and print what it offers and its section; 1 on any failure."""
    try:
        target = _target(args)
        try:
            media = ask_device(target, args.timeout)
        except CameraError as exc:
            hint = (
                " (a camera asking for a login needs --user and --password-env)"
                if isinstance(exc, AuthFailed) and not args.user
                else ""
            )
            raise _Refused(f"{exc.kind}: {exc}{hint}") from None
        print(report(target, media, target.password))
        try:
            chosen = media.profile_for("main")
        except LookupError as exc:
            raise _Refused(f"this device gives no snapshots over ONVIF: {exc}") from None
    except _Refused as exc:
        print(f"capture discover: {exc}", file=sys.stderr)
        return 1
    name = args.name or camera_name(media, args.host)
    print()
    print("# Paste into the rule file; the password stays in the environment (password_env):")
    print(section(name, target, args.password_env, media, chosen))
    return 0


def _target(args: argparse.Namespace) -> OnvifTarget:
    """The device to ask, from the arguments; the password from the environment variable named."""
    password: str | None = None
    if args.password_env is not None:
        if args.user is None:
            raise _Refused("--password-env needs --user")
        password = os.environ.get(args.password_env)
        if not password:
            raise _Refused(f"the environment variable {args.password_env} is not set or empty")
    elif args.user is not None:
        raise _Refused("--user needs --password-env VAR (the password is never an argument)")
    try:
        OnvifCamera(vendor="onvif", host=args.host, port=args.port)
    except ValidationError as exc:
        raise _Refused(f"HOST: {exc.errors()[0]['msg']}") from None
    label = args.name or "discover"
    return OnvifTarget(label, args.host, args.port, args.user, password, https=args.https)


def report(target: OnvifTarget, media: DeviceMedia, password: str | None) -> str:
    """What the device said: maker, model, firmware, and each profile with its URIs."""
    info = media.info
    lines = [
        f"ONVIF device at {target.address}: {info.manufacturer} {info.model}, "
        f"firmware {info.firmware or 'unknown'}",
        f"{len(media.profiles)} media profile(s):",
    ]
    secrets = (password,) if password else ()
    for profile in media.profiles:
        lines.append(f"  {profile.describe()}")
        for what, uri in (("snapshot", profile.snapshot_uri), ("stream", profile.stream_uri)):
            shown = _shown(uri, secrets) if uri else "none"
            lines.append(f"    {what:<8} {shown}")
    return "\n".join(lines)


def section(
    name: str,
    target: OnvifTarget,
    password_env: str | None,
    media: DeviceMedia,
    chosen: MediaProfile,
) -> str:
    """The `[cameras.NAME]` section for the device, photographing `chosen`."""
    lines = [
        f"[cameras.{name}]",
        'vendor = "onvif"',
        f"host = {_quote(target.host)}",
    ]
    if target.port != (443 if target.https else 80):
        lines.append(f"port = {target.port}                      # the ONVIF port")
    if target.https:
        lines.append('scheme = "https"')
    if target.user is not None:
        lines.append(f"user = {_quote(target.user)}")
        lines.append(f"password_env = {_quote(password_env or '')}")
    lines.append(f"profile = {_quote(chosen.token)}  # {chosen.describe()}")
    others = [p.describe() for p in media.profiles if p is not chosen and p.snapshot_uri]
    if others:
        lines.append(f"# other profiles with snapshots: {'; '.join(others)}")
    lines.append(f"description = {_quote(f'{media.info.manufacturer} {media.info.model}'.strip())}")
    return "\n".join(lines)


def camera_name(media: DeviceMedia, host: str) -> str:
    """A camera name from the model (`ds-2cd2143g0-i`), else the host; valid as a section name."""
    for text in (media.info.model, host):
        name = re.sub(r"[^a-z0-9_.-]+", "_", text.lower()).strip("_.-")[:64]
        if name and re.fullmatch(NAME_PATTERN, name):
            return name
    return "onvif_camera"


def _quote(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, control characters included)."""
    return json.dumps(text, ensure_ascii=False)


def _shown(uri: str, secrets: tuple[str, ...]) -> str:
    """The URI as the device gave it, unless it holds credentials (then redacted)."""
    netloc = urlsplit(uri).netloc
    if "@" in netloc or any(secret in uri for secret in secrets):
        return redact_url(uri, (), secrets)
    return uri
