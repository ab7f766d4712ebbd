"""Helpers for the simulator tests: cameras with a test password, JPEG checks, raw HTTP and digest."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket

from PIL import Image

from capture.simulator import SimulatedCamera

PASSWORD = "s3cret-pw"


def camera(name: str, vendor: str, **kwargs: object) -> SimulatedCamera:
    """A simulated camera with the test password."""
    return SimulatedCamera(name=name, vendor=vendor, password=PASSWORD, **kwargs)  # type: ignore[arg-type]


def decoded(jpeg: bytes) -> Image.Image:
    """Fully decode a JPEG (Pillow raises on a truncated one) and check SOI/EOI framing."""
    assert jpeg[:3] == b"\xff\xd8\xff", "no SOI"
    assert jpeg[-2:] == b"\xff\xd9", "no EOI at the end"
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def comment_of(jpeg: bytes) -> bytes:
    """The payload of the first COM segment (the simulator's per-response counter)."""
    at = jpeg.index(b"\xff\xfe")
    length = int.from_bytes(jpeg[at + 2 : at + 4], "big")
    return jpeg[at + 4 : at + 2 + length]


def raw_get(port: int, target: str, headers: str = "", timeout: float = 5.0) -> bytes:
    """Send one GET over a fresh socket with Connection: close and return every byte answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: camera\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def digest_authorization(
    challenge: str,
    target: str,
    nc: int = 1,
    password: str = PASSWORD,
    user: str = "admin",
    algorithm: str | None = None,
    uri: str | None = None,
) -> str:
    """A hand-made Digest Authorization value for `challenge` (tests control nc and uri)."""
    fields: dict[str, str] = {}
    for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', challenge):
        fields[key] = quoted or bare
    algorithm = algorithm or fields.get("algorithm", "MD5")
    hash_name = "sha256" if algorithm.upper().startswith("SHA-256") else "md5"

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    cnonce = os.urandom(8).hex()
    ha1 = h(f"{user}:{fields['realm']}:{password}")
    if algorithm.lower().endswith("-sess"):
        ha1 = h(f"{ha1}:{fields['nonce']}:{cnonce}")
    ha2 = h(f"GET:{uri or target}")
    value = (
        f'Digest username="{user}", realm="{fields["realm"]}", nonce="{fields["nonce"]}", '
        f'uri="{uri or target}", algorithm={algorithm}'
    )
    if "qop" in fields:
        response = h(f"{ha1}:{fields['nonce']}:{nc:08x}:{cnonce}:auth:{ha2}")
        value += f', qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    else:
        response = h(f"{ha1}:{fields['nonce']}:{ha2}")
    return value + f', response="{response}"'
