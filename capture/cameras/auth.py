"""Camera authentication as an httpx auth flow: none, basic, digest, query, or learned from a 401.

Written for real devices rather than for RFC test vectors: several challenges
in one response (the strongest wins, each nonce kept with its algorithm),
digest without `qop` (RFC 2069), `stale=true` as a silent re-hash, a 403 to a
pre-emptive digest header (Dahua NVRs) answered by dropping the cached
challenge, and odd challenges reported as one typed `Unsupported` error
instead of a `KeyError` from deep inside a library. It never loops: a login
is attempted at most once per fresh challenge, because cameras lock accounts
after a few failures. For the same reason a digest challenge is answered
pre-emptively only by credentials the device accepted with it: a section with
a wrong password that shares the device with a correct one starts with a plain
request, so each of its attempts costs the account one failed login, not two.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field

import httpx

from capture.cameras.errors import Unsupported
from capture.config.schema import AuthMode

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
#: Preference among the challenges a device offers, strongest first.
_STRENGTH = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SPACE_OR_COMMA = re.compile(r"[\s,]*")
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Credentials:
    """A camera user and password; the password never appears in a repr."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header: the scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str]

    def describe(self) -> str:
        """`digest realm 'IP Camera'` for messages; never includes the nonce."""
        realm = self.params.get("realm")
        return f"{self.scheme} realm {realm!r}" if realm is not None else self.scheme

    @property
    def stale(self) -> bool:
        """True when the device says only our nonce expired, not our password."""
        return self.params.get("stale", "").lower() == "true"


def parse_challenges(header_values: list[str]) -> list[Challenge]:
    """Parse every challenge from `WWW-Authenticate` header values, leniently.

    Handles several challenges per header, quoted strings with commas, colons
    and escapes, bare flags (`stale`), trailing commas and odd spacing.
    """
    challenges: list[Challenge] = []
    for value in header_values:
        challenges.extend(_parse_header(value))
    return challenges


def _skip(blank: re.Pattern[str], text: str, pos: int) -> int:
    """Where the run of `blank` (a pattern that also matches nothing) starting at `pos` ends."""
    match = blank.match(text, pos)
    assert match is not None  # `*` patterns match the empty string anywhere
    return match.end()


def _parse_header(text: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    params: dict[str, str] = {}
    scheme: str | None = None
    pos = 0
    while True:
        pos = _skip(_SPACE_OR_COMMA, text, pos)
        token = _TOKEN.match(text, pos)
        if token is None:
            break
        name, pos = token.group(), token.end()
        after_space = _skip(_SPACE, text, pos)
        if after_space < len(text) and text[after_space] == "=" and scheme is not None:
            value, pos = _read_value(text, _skip(_SPACE, text, after_space + 1))
            params[name.lower()] = value
            continue
        at_separator = after_space >= len(text) or text[after_space] == ","
        if scheme is not None and params and "token68" not in params and at_separator:
            params[name.lower()] = ""  # a bare flag such as `stale`
            continue
        if scheme is not None:
            challenges.append(Challenge(scheme, params))
        scheme, params = name.lower(), {}
        pos = after_space
        if scheme and pos < len(text) and text[pos] not in ",":
            # token68 form (`Negotiate abc==`): keep it as an opaque parameter
            token68 = re.match(r"[A-Za-z0-9._~+/-]+=*(?=\s*(,|$))", text[pos:])
            if token68:
                params["token68"] = token68.group()
                pos += token68.end()
    if scheme is not None:
        challenges.append(Challenge(scheme, params))
    return challenges


def _read_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            out.append(text[pos])
            pos += 1
        return "".join(out), pos + 1
    end = pos
    while end < len(text) and text[end] not in ", \t":
        end += 1
    return text[pos:end], end


@dataclass
class _DigestState:
    """The challenge we answer pre-emptively, how often its nonce was used, and by whom.

    `accepted_by` holds the fingerprints of the credentials the device accepted
    with this challenge; only they answer it pre-emptively, since a pre-emptive
    answer with any other password is one more failed login on the account.
    """

    challenge: Challenge
    algorithm: str
    nonce_count: int = 0
    accepted_by: set[bytes] = field(default_factory=set)


@dataclass(eq=False)
class AuthMemory:
    """What a device taught us about logging in: the scheme `auto` learned, the digest challenge.

    Shared by the camera sections of one device (capture.cameras.device), so
    four NVR channels do one handshake between them, not four. The digest
    challenge is stored only once the device accepted an answer to it.
    """

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    learned: str | None = None
    digest: _DigestState | None = None


#: Request extension: a callable run with the request each time the flow sends it again (the
#: 401 and 403 retries), where the HTTP layer cuts its timeouts to what is left of the deadline.
BEFORE_RESEND = "capture.before_resend"


def _before_resend(request: httpx.Request) -> None:
    hook = request.extensions.get(BEFORE_RESEND)
    if hook is not None:
        hook(request)


class CameraAuth(httpx.Auth):
    """Authentication of one camera, shared by all its requests (thread-safe).

    `mode` is the configured scheme; `auto` sends nothing until a 401 names
    the scheme, then remembers it (`scheme`). `query` adds `query_params`
    (e.g. `user`/`pwd`) to every request instead of a header. `memory` is
    what the device taught us, shared with the other sections of the device;
    `fingerprint` tells these credentials apart from theirs
    (capture.cameras.device.credentials_fingerprint), so a cached digest
    challenge is answered pre-emptively only by credentials it was accepted with.
    """

    def __init__(
        self,
        camera: str,
        mode: AuthMode,
        credentials: Credentials | None,
        query_params: Mapping[str, str] | None = None,
        memory: AuthMemory | None = None,
        *,
        fingerprint: bytes = b"",
    ) -> None:
        self.camera = camera
        self.mode = mode
        self.credentials = credentials
        self.query_params = dict(query_params or {})
        self.memory = memory if memory is not None else AuthMemory()
        self.fingerprint = fingerprint

    @property
    def scheme(self) -> str:
        """The scheme in use now: the configured one, or what `auto` learned ('none' until a 401)."""
        if self.mode != "auto":
            return self.mode
        return self.memory.learned or "none"

    def sends_credentials(self, request: httpx.Request) -> bool:
        """Whether this request carried our credentials (header or query)."""
        return "authorization" in request.headers or (
            self.mode == "query" and bool(self.query_params)
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the request, answering at most one fresh challenge (plus one `stale` re-hash)."""
        if self.mode == "query":
            request.url = request.url.copy_merge_params(self.query_params)
            yield request
            return
        if self.mode == "none" or self.credentials is None:
            yield request
            return
        sent, digest = self._authorize_preemptively(request)
        response = yield request
        if response.status_code == 403 and sent == "digest":
            # Some NVRs answer a reused nonce with 403 instead of 401: start over.
            self._forget_digest(digest)
            sent, digest = None, None
            del request.headers["authorization"]
            _before_resend(request)
            response = yield request
        fresh_attempts = 0
        while response.status_code == 401:
            challenges = parse_challenges(response.headers.get_list("www-authenticate"))
            chosen = self._choose(challenges)
            if chosen is None:
                return
            if fresh_attempts >= 2 or (fresh_attempts == 1 and not chosen.stale):
                # A fresh login failed: the caller reports bad credentials. These credentials
                # no longer answer the cached challenge: after the back-off the next try starts
                # with a plain request, so it costs the account one failed login, not two.
                self._disown_digest()
                return
            if sent == "basic" and chosen.scheme == "basic":
                return  # basic has no nonce: the first rejection is final
            digest = self._answer(request, chosen)
            _copy_cookies(response, request)
            fresh_attempts += 1
            sent = chosen.scheme
            _before_resend(request)
            response = yield request
        if digest is not None and response.status_code != 403:
            self._remember_accepted(digest)

    def _authorize_preemptively(
        self, request: httpx.Request
    ) -> tuple[str | None, _DigestState | None]:
        """Add the header we can send before any challenge: what was sent and the digest used."""
        scheme = self.scheme
        if scheme == "basic":
            request.headers["Authorization"] = self._basic_header()
            return "basic", None
        if scheme == "digest":
            memory = self.memory
            with memory.lock:
                state = memory.digest
                if state is None or self.fingerprint not in state.accepted_by:
                    # Never a pre-emptive answer with credentials the device has not accepted.
                    return None, None
                state.nonce_count += 1
                count = state.nonce_count
            request.headers["Authorization"] = self._digest_header(request, state, count)
            return "digest", state
        return None, None

    def _choose(self, challenges: list[Challenge]) -> Challenge | None:
        """The strongest challenge we can answer within the configured mode.

        Returns None when the device only offers a scheme the configuration
        rules out (the caller explains the mismatch); raises `Unsupported` when
        it offers nothing we can answer at all.
        """
        digests = [c for c in challenges if c.scheme == "digest"]
        usable = [c for c in digests if _digest_algorithm(c) in _STRENGTH and _qop_ok(c)]
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if self.mode == "basic":
            return basic
        if usable:
            best = min(usable, key=lambda c: _STRENGTH.index(_digest_algorithm(c)))
            _require_realm_and_nonce(self.camera, best)
            return best
        if self.mode == "auto" and basic is not None:
            return basic
        if not challenges or (basic is not None and not digests):
            return None  # nothing offered, or only basic while auth = 'digest'
        raise Unsupported(
            self.camera,
            f"unsupported authentication challenge ({_describe_unusable(challenges)}); "
            "the camera needs a scheme this service cannot answer — enable digest "
            "(MD5 or SHA-256, qop auth) or basic authentication on the device",
            status=401,
        )

    def _answer(self, request: httpx.Request, challenge: Challenge) -> _DigestState | None:
        """Answer `challenge`; a digest answer's state is returned, stored once accepted."""
        memory = self.memory
        if challenge.scheme == "basic":
            if self.mode == "auto":
                memory.learned = "basic"
            request.headers["Authorization"] = self._basic_header()
            return None
        state = _DigestState(challenge, _digest_algorithm(challenge), nonce_count=1)
        if self.mode == "auto":
            with memory.lock:
                memory.learned = "digest"
        request.headers["Authorization"] = self._digest_header(request, state, 1)
        return state

    def _remember_accepted(self, state: _DigestState) -> None:
        """The device accepted our answer to `state`: these credentials may answer it pre-emptively."""
        memory = self.memory
        if memory.digest is state and self.fingerprint in state.accepted_by:
            return  # the usual case, a pre-emptive answer accepted again: nothing to record
        with memory.lock:
            if memory.digest is not state:
                memory.digest = state
            state.accepted_by.add(self.fingerprint)

    def _forget_digest(self, state: _DigestState | None) -> None:
        """The device refused the cached challenge itself (a 403 to its nonce): nobody reuses it."""
        with self.memory.lock:
            if state is None or self.memory.digest is state:
                self.memory.digest = None

    def _disown_digest(self) -> None:
        """Our credentials were rejected: they stop answering the cached challenge pre-emptively."""
        with self.memory.lock:
            if self.memory.digest is not None:
                self.memory.digest.accepted_by.discard(self.fingerprint)

    def _basic_header(self) -> str:
        assert self.credentials is not None
        pair = f"{self.credentials.user}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _digest_header(self, request: httpx.Request, state: _DigestState, count: int) -> str:
        assert self.credentials is not None
        params = state.challenge.params
        algorithm = state.algorithm
        hash_hex = _HASHES[algorithm.removesuffix("-SESS")]
        realm, nonce = params["realm"], params["nonce"]
        uri = request.url.raw_path.decode("ascii")
        cnonce = os.urandom(8).hex()
        nc = f"{count:08x}"
        ha1 = hash_hex(f"{self.credentials.user}:{realm}:{self.credentials.password}".encode())
        if algorithm.endswith("-SESS"):
            ha1 = hash_hex(f"{ha1}:{nonce}:{cnonce}".encode())
        ha2 = hash_hex(f"{request.method}:{uri}".encode())
        qop = "auth" if "qop" in params else None
        if qop:
            response = hash_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
        else:
            response = hash_hex(f"{ha1}:{nonce}:{ha2}".encode())
        fields = [
            f'username="{_quote(self.credentials.user)}"',
            f'realm="{_quote(realm)}"',
            f'nonce="{_quote(nonce)}"',
            f'uri="{uri}"',
            f'response="{response}"',
            f"algorithm={params.get('algorithm', 'MD5')}",
        ]
        if params.get("opaque"):
            fields.append(f'opaque="{_quote(params["opaque"])}"')
        if qop:
            # Unquoted qop and nc: some Dahua/Amcrest firmware rejects the quoted form.
            fields += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        return "Digest " + ", ".join(fields)


def _digest_algorithm(challenge: Challenge) -> str:
    return challenge.params.get("algorithm", "MD5").upper()


def _qop_ok(challenge: Challenge) -> bool:
    """qop absent (RFC 2069) or offering `auth`; `auth-int` alone cannot be answered."""
    if "qop" not in challenge.params:
        return True
    options = {option.strip().lower() for option in challenge.params["qop"].split(",")}
    return "auth" in options


def _require_realm_and_nonce(camera: str, challenge: Challenge) -> None:
    if "realm" not in challenge.params or not challenge.params.get("nonce"):
        raise Unsupported(
            camera,
            "malformed digest challenge (no realm or nonce); the camera's firmware "
            "sends an authentication request this service cannot answer",
            status=401,
        )


def _describe_unusable(challenges: list[Challenge]) -> str:
    described = []
    for challenge in challenges:
        if challenge.scheme == "digest":
            qop = challenge.params.get("qop")
            detail = f"algorithm {_digest_algorithm(challenge)}" + (f", qop {qop}" if qop else "")
            described.append(f"digest {detail}")
        else:
            described.append(challenge.scheme)
    return "; ".join(described)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _copy_cookies(response: httpx.Response, request: httpx.Request) -> None:
    """Carry cookies set by the 401 over to the retry, as browsers do."""
    if response.cookies:
        httpx.Cookies(response.cookies).set_cookie_header(request)


def is_stale(response: httpx.Response) -> bool:
    """True when a 401 only says our nonce expired (not that the password is wrong)."""
    return any(c.stale for c in parse_challenges(response.headers.get_list("www-authenticate")))


def describe_challenge(response: httpx.Response) -> str | None:
    """The strongest challenge of a 401 for messages (`digest realm 'X'`), or None."""
    challenges = parse_challenges(response.headers.get_list("www-authenticate"))
    if not challenges:
        return None
    digest = [c for c in challenges if c.scheme == "digest"]
    return (digest or challenges)[0].describe()
