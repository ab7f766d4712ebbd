"""Checks credentials the way cameras do: Basic, Digest with real nonces and `nc`, or query parameters.

Digest is the strict one. Nonces are issued per challenge and remembered;
an unknown or expired nonce earns `stale=true` (a re-hash, not a bad login),
`nc` must grow for each nonce (a replay is a failed login), `uri` must be the
request target exactly as sent, and the algorithm must be the one the nonce
was issued for, so a client that mixes up several challenges is caught.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from capture.simulator.camera import SimulatedCamera

_MAX_NONCES = 4096  # oldest forgotten first; a forgotten nonce is merely stale

_HASHES: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}


class Outcome(enum.Enum):
    """What a request's credentials amount to."""

    OK = "ok"
    MISSING = "missing"
    """No credentials at all: the normal first step of a handshake."""
    BAD = "bad"
    """Wrong user or password, wrong scheme, or a replayed nc: a failed login."""
    STALE = "stale"
    """Digest with an unknown or expired nonce: answered 401 stale=true, not counted."""
    MALFORMED = "malformed"
    """A Digest header that cannot be checked (missing fields, uri mismatch): 400."""


@dataclass(frozen=True)
class Credentials:
    """What the request offered, already extracted from headers and query."""

    authorization: str | None
    query: Mapping[str, str]
    method: str
    target: str


@dataclass
class _Nonce:
    algorithm: str
    issued_at: float
    last_nc: int = 0


@dataclass(frozen=True)
class ChallengeStyle:
    """How a vendor words its challenges (real clients trip over these details)."""

    realm: str
    uppercase_stale: bool = False
    empty_opaque: bool = False
    colon_nonce: bool = False
    always_algorithm: bool = True


class Authenticator:
    """The credential check of one simulated camera."""

    def __init__(
        self,
        camera: SimulatedCamera,
        style: ChallengeStyle,
        query_params: tuple[str, str] = ("user", "password"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.style = style
        self.query_params = query_params
        self._clock = clock
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ checking

    def check(self, offered: Credentials) -> Outcome:
        """Judge one request's credentials against the camera's scheme."""
        mode = self.camera.effective_auth
        header = offered.authorization or ""
        scheme = header.split(" ", 1)[0].lower()
        if mode == "none":
            return Outcome.OK
        if mode == "query":
            return self._check_query(offered.query, header, scheme)
        if not header:
            return Outcome.MISSING
        if mode == "basic" and scheme == "basic":
            return self._check_basic(header)
        if mode == "digest" and scheme == "digest":
            return self._check_digest(header[len("digest") :].strip(), offered)
        return Outcome.BAD  # e.g. Basic sent to a digest-only device: a failed login

    def _check_query(self, query: Mapping[str, str], header: str, scheme: str) -> Outcome:
        user_param, password_param = self.query_params
        if user_param in query or password_param in query:
            return self._compare(query.get(user_param, ""), query.get(password_param, ""))
        # Query-auth devices of the Foscam era also took Basic.
        return self._check_basic(header) if scheme == "basic" else Outcome.MISSING

    def _compare(self, user: str, password: str) -> Outcome:
        good_user = hmac.compare_digest(user.encode(), self.camera.user.encode())
        good_password = hmac.compare_digest(password.encode(), self.camera.password.encode())
        return Outcome.OK if good_user and good_password else Outcome.BAD

    def _check_basic(self, header: str) -> Outcome:
        try:
            decoded = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
        except (IndexError, binascii.Error, UnicodeDecodeError):
            return Outcome.BAD
        user, sep, password = decoded.partition(":")
        return self._compare(user, password) if sep else Outcome.BAD

    def _check_digest(self, fields_text: str, offered: Credentials) -> Outcome:
        fields = _parse_digest(fields_text)
        if fields is None or fields["uri"] != offered.target:
            return Outcome.MALFORMED
        with self._lock:
            nonce = self._nonces.get(fields["nonce"])
            if nonce is None or self._clock() - nonce.issued_at > self.camera.nonce_ttl_s:
                self._nonces.pop(fields["nonce"], None)
                return Outcome.STALE
            nc = self._fresh_nc(fields, nonce)
            if nc is None or not self._response_matches(fields, nonce, offered.method):
                return Outcome.BAD
            nonce.last_nc = max(nonce.last_nc, nc)
            return Outcome.OK

    def _fresh_nc(self, fields: dict[str, str], nonce: _Nonce) -> int | None:
        """The request's nc if it is acceptable for this nonce (0 without qop), else None."""
        if self.camera.digest_qop is None:
            return None if "qop" in fields else 0  # qop was not offered
        if fields.get("qop") != "auth" or "cnonce" not in fields:
            return None
        try:
            nc = int(fields.get("nc", ""), 16)
        except ValueError:
            return None
        return nc if nc > nonce.last_nc else None  # a replayed or reordered nc is refused

    def _response_matches(self, fields: dict[str, str], nonce: _Nonce, method: str) -> bool:
        if fields.get("algorithm", "MD5").upper() != nonce.algorithm.upper():
            return False  # the nonce was issued for another algorithm
        if fields["username"] != self.camera.user or fields["realm"] != self.style.realm:
            return False
        expected = self._response(fields, nonce.algorithm, method)
        return hmac.compare_digest(expected, fields["response"].lower())

    def _response(self, fields: dict[str, str], algorithm: str, method: str) -> str:
        session = algorithm.upper().endswith("-SESS")
        hash_function = _HASHES[algorithm.upper().removesuffix("-SESS")]

        def digest(*parts: str) -> str:
            return str(hash_function(":".join(parts).encode()).hexdigest())

        ha1 = digest(self.camera.user, self.style.realm, self.camera.password)
        if session:
            ha1 = digest(ha1, fields["nonce"], fields.get("cnonce", ""))
        ha2 = digest(method, fields["uri"])
        if self.camera.digest_qop is None:
            return digest(ha1, fields["nonce"], ha2)
        return digest(ha1, fields["nonce"], fields["nc"], fields["cnonce"], "auth", ha2)

    # ------------------------------------------------------------------ challenging

    def challenges(self, stale: bool = False) -> list[str]:
        """`WWW-Authenticate` values for a 401: one per digest algorithm, or Basic."""
        mode = self.camera.effective_auth
        if mode in ("basic", "query"):
            return [f'Basic realm="{self.style.realm}"']
        if mode != "digest":
            return []
        return [
            self._digest_challenge(algorithm, stale) for algorithm in self.camera.digest_algorithms
        ]

    def _digest_challenge(self, algorithm: str, stale: bool) -> str:
        nonce = secrets.token_hex(16)
        if self.style.colon_nonce:
            nonce = f"{nonce}:{int(time.time())}"
        with self._lock:
            self._nonces[nonce] = _Nonce(algorithm, self._clock())
            while len(self._nonces) > _MAX_NONCES:
                self._nonces.popitem(last=False)
        stale_text = (
            ("TRUE" if stale else "FALSE") if self.style.uppercase_stale else str(stale).lower()
        )
        parts = [f'realm="{self.style.realm}"']
        if self.camera.digest_qop is not None:
            parts.append('qop="auth"')
        parts.append(f'nonce="{nonce}"')
        if self.style.empty_opaque:
            parts.append('opaque=""')
        if self.style.always_algorithm or algorithm != "MD5":
            parts.append(f"algorithm={algorithm}")
        parts.append(f'stale="{stale_text}"')
        return "Digest " + ", ".join(parts)


def _parse_digest(text: str) -> dict[str, str] | None:
    """The fields of a Digest Authorization header, or None when required ones are missing."""
    try:
        fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(text))
    except ValueError:
        return None
    if not {"username", "realm", "nonce", "uri", "response"} <= fields.keys():
        return None
    return fields
