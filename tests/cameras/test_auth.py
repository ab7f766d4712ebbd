"""The camera auth flow: challenge parsing, digest variants, learning, retries and refusals."""

from __future__ import annotations

import hashlib
import threading
import urllib.request
from collections.abc import Callable

import httpx
import pytest
import respx

from capture.cameras.auth import CameraAuth, Credentials, parse_challenges
from capture.cameras.errors import Unsupported

URL = "http://cam.local/ISAPI/Streaming/channels/101/picture?videoResolutionWidth=640"
USER, PASSWORD = "admin", 'pa:ss"w0rd'
REALM = "IP Camera(F5390)"


def expected_response(fields: dict[str, str], algorithm: str, password: str = PASSWORD) -> str:
    """RFC 7616 response, computed independently of the code under test."""
    name = algorithm.upper().removesuffix("-SESS")
    hash_hex = {
        "MD5": lambda b: hashlib.md5(b).hexdigest(),
        "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    }[name]
    ha1 = hash_hex(f"{fields['username']}:{fields['realm']}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        ha1 = hash_hex(f"{ha1}:{fields['nonce']}:{fields['cnonce']}".encode())
    ha2 = hash_hex(f"GET:{fields['uri']}".encode())
    if "qop" in fields:
        return hash_hex(
            f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:{fields['qop']}:{ha2}".encode()
        )
    return hash_hex(f"{ha1}:{fields['nonce']}:{ha2}".encode())


def digest_fields(request: httpx.Request) -> dict[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Digest "):
        return None
    return urllib.request.parse_keqv_list(urllib.request.parse_http_list(header[7:]))


class FakeDigestCamera:
    """A respx side effect that checks digest answers like a strict camera would."""

    def __init__(
        self,
        challenges: list[tuple[str, str]],
        qop: bool = True,
        password: str = PASSWORD,
        stale_first: bool = False,
        forbid_reused_nonce: bool = False,
    ) -> None:
        self.challenges = challenges  # (algorithm, nonce)
        self.qop = qop
        self.password = password
        self.stale_first = stale_first
        self.forbid_reused_nonce = forbid_reused_nonce
        self.requests: list[httpx.Request] = []
        self.nc_seen: list[str] = []
        self._lock = threading.Lock()
        self._used_nonces: set[str] = set()

    def header_values(self, stale: bool = False) -> list[tuple[str, str]]:
        out = []
        for algorithm, nonce in self.challenges:
            qop = 'qop="auth", ' if self.qop else ""
            out.append(
                (
                    "WWW-Authenticate",
                    f'Digest realm="{REALM}", {qop}nonce="{nonce}", '
                    f'opaque="", algorithm={algorithm}, stale="{"TRUE" if stale else "FALSE"}"',
                )
            )
        return out

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        fields = digest_fields(request)
        if fields is None:
            if self.forbid_reused_nonce:  # a fresh nonce for every handshake
                self.challenges = [(a, f"{n}-{len(self.requests)}") for a, n in self.challenges]
            return httpx.Response(401, headers=self.header_values())
        if self.forbid_reused_nonce and fields["nonce"] in self._used_nonces:
            return httpx.Response(403, text="Authority:check failure.")
        algorithm = dict((n, a) for a, n in self.challenges).get(fields["nonce"])
        if algorithm is None:
            return httpx.Response(401, headers=self.header_values(stale=True))
        if self.stale_first:
            self.stale_first = False
            self.challenges = [(a, n + "x") for a, n in self.challenges]
            return httpx.Response(401, headers=self.header_values(stale=True))
        assert fields["uri"] == request.url.raw_path.decode()
        assert fields.get("algorithm", "MD5") == algorithm
        if fields["response"] != expected_response(fields, algorithm, self.password):
            return httpx.Response(401, headers=self.header_values())
        with self._lock:
            self.nc_seen.append(fields.get("nc", ""))
            self._used_nonces.add(fields["nonce"])
        return httpx.Response(200, content=b"ok")


def client_with(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[respx.MockRouter, httpx.Client]:
    router = respx.mock(assert_all_called=False, using="httpx")
    router.get(url__startswith="http://cam.local/").mock(side_effect=handler)
    return router, httpx.Client()


def fetch(
    auth: CameraAuth, handler: Callable[[httpx.Request], httpx.Response], times: int = 1
) -> list[httpx.Response]:
    router, client = client_with(handler)
    with router, client:
        return [client.get(URL, auth=auth) for _ in range(times)]


def digest_auth(mode: str = "digest", password: str = PASSWORD) -> CameraAuth:
    return CameraAuth("line3_cam2", mode, Credentials(USER, password))  # type: ignore[arg-type]


# ------------------------------------------------------------------ parsing


def test_several_challenges_in_one_header_are_split() -> None:
    challenges = parse_challenges(
        ['Digest realm="a, b", nonce="4e:1700000000", qop="auth,auth-int", Basic realm="x"']
    )
    assert [c.scheme for c in challenges] == ["digest", "basic"]
    assert challenges[0].params == {
        "realm": "a, b",
        "nonce": "4e:1700000000",
        "qop": "auth,auth-int",
    }
    assert challenges[1].params == {"realm": "x"}


def test_odd_but_real_challenge_syntax_is_accepted() -> None:
    (challenge,) = parse_challenges(
        ['Digest realm="Login to 4L0\\"A", nonce=abc ,qop="auth", stale, algorithm=MD5,']
    )
    assert challenge.params["realm"] == 'Login to 4L0"A'
    assert challenge.params["nonce"] == "abc"
    assert challenge.params["stale"] == ""
    assert challenge.params["algorithm"] == "MD5"


def test_schemes_without_parameters_and_token68_are_kept() -> None:
    challenges = parse_challenges(["Negotiate abc==, NTLM", 'Basic realm="r"'])
    assert [c.scheme for c in challenges] == ["negotiate", "ntlm", "basic"]
    assert challenges[0].params == {"token68": "abc=="}


def test_stale_flag_is_read_case_insensitively() -> None:
    assert parse_challenges(['Digest realm="r", nonce="n", stale="TRUE"'])[0].stale
    assert not parse_challenges(['Digest realm="r", nonce="n", stale="FALSE"'])[0].stale


def test_password_never_appears_in_credentials_repr() -> None:
    assert PASSWORD not in repr(Credentials(USER, PASSWORD))


# ------------------------------------------------------------------ digest


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
def test_digest_algorithms_are_answered_correctly(algorithm: str) -> None:
    camera = FakeDigestCamera([(algorithm, "nonce1")])
    responses = fetch(digest_auth(), camera)
    assert responses[0].status_code == 200


def test_rfc2069_challenge_without_qop_is_answered_without_nc() -> None:
    camera = FakeDigestCamera([("MD5", "n0nce")], qop=False)
    (response,) = fetch(digest_auth(), camera)
    assert response.status_code == 200
    fields = digest_fields(camera.requests[-1])
    assert fields is not None and "nc" not in fields and "qop" not in fields


def test_strongest_of_several_challenges_is_used_with_its_own_nonce() -> None:
    camera = FakeDigestCamera([("MD5", "md5-nonce"), ("SHA-256", "sha-nonce")])
    (response,) = fetch(digest_auth(), camera)
    assert response.status_code == 200
    fields = digest_fields(camera.requests[-1])
    assert fields is not None
    assert (fields["algorithm"], fields["nonce"]) == ("SHA-256", "sha-nonce")


def test_later_requests_reuse_the_challenge_with_a_growing_nc() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")])
    responses = fetch(digest_auth(), camera, times=3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(camera.requests) == 4  # one 401 handshake, then pre-emptive answers
    assert camera.nc_seen == ["00000001", "00000002", "00000003"]


def test_header_sends_algorithm_qop_and_nc_unquoted() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")])
    fetch(digest_auth(), camera)
    header = camera.requests[-1].headers["authorization"]
    assert "algorithm=MD5" in header and "qop=auth" in header and "nc=00000001" in header
    assert 'opaque=""' not in header


def test_stale_nonce_is_rehashed_silently() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")], stale_first=True)
    (response,) = fetch(digest_auth(), camera)
    assert response.status_code == 200
    assert len(camera.requests) == 3  # 401, stale 401, 200


def test_403_to_a_preemptive_header_starts_a_fresh_handshake() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")], forbid_reused_nonce=True)
    auth = digest_auth()
    first, second = fetch(auth, camera, times=2)
    assert (first.status_code, second.status_code) == (200, 200)
    # Second snapshot: pre-emptive (403), without header (401), fresh answer (200).
    assert len(camera.requests) == 2 + 3


def test_wrong_password_costs_exactly_one_login_attempt() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")], password="the-real-one")
    (response,) = fetch(digest_auth(), camera)
    assert response.status_code == 401
    assert len(camera.requests) == 2  # the challenge, one answer, no loop


def test_a_cached_challenge_is_answered_pre_emptively_only_by_credentials_it_accepted() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")])
    good = digest_auth()
    wrong = CameraAuth(
        "line3_cam3",
        "digest",
        Credentials(USER, "wrong"),
        memory=good.memory,
        fingerprint=b"other",
    )
    router, client = client_with(camera)
    with router, client:
        assert client.get(URL, auth=good).status_code == 200
        before = len(camera.requests)
        assert client.get(URL, auth=wrong).status_code == 401
        # A plain request, then its one answer; not first a pre-emptive guess with good's nonce.
        assert len(camera.requests) - before == 2
        before = len(camera.requests)
        assert client.get(URL, auth=good).status_code == 200
        assert len(camera.requests) - before == 1  # good still answers pre-emptively


def test_concurrent_requests_get_distinct_nonce_counts() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")])
    auth = digest_auth()
    router, client = client_with(camera)
    with router, client:
        assert client.get(URL, auth=auth).status_code == 200

        def worker() -> None:
            for _ in range(5):
                assert client.get(URL, auth=auth).status_code == 200

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(camera.nc_seen) == 41
    assert len(set(camera.nc_seen)) == 41


@pytest.mark.parametrize(
    ("challenge", "detail"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"', "SHA-512-256"),
        ('Digest realm="r", nonce="n", qop="auth-int"', "auth-int"),
        ("NTLM", "ntlm"),
        ('Digest realm="r", qop="auth"', "malformed digest challenge"),
    ],
    ids=["unknown-algorithm", "auth-int-only", "ntlm", "no-nonce"],
)
def test_challenges_we_cannot_answer_are_one_typed_error(challenge: str, detail: str) -> None:
    requests: list[httpx.Request] = []

    def camera(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    with pytest.raises(Unsupported, match=detail) as caught:
        fetch(digest_auth("auto"), camera)
    assert caught.value.camera == "line3_cam2"
    assert caught.value.status == 401
    assert len(requests) == 1  # no credentials were ever sent


# ------------------------------------------------------------------ basic, auto, query


def test_basic_is_sent_preemptively_and_a_rejection_is_final() -> None:
    requests: list[httpx.Request] = []

    def camera(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="cam"'})

    (response,) = fetch(CameraAuth("c", "basic", Credentials(USER, PASSWORD)), camera)
    assert response.status_code == 401
    assert len(requests) == 1
    assert requests[0].headers["authorization"].startswith("Basic ")


def test_auto_learns_basic_from_the_first_401_and_then_sends_it_preemptively() -> None:
    requests: list[httpx.Request] = []
    good = httpx.BasicAuth(USER, PASSWORD)._auth_header

    def camera(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.headers.get("authorization") == good:
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="cam"'})

    auth = CameraAuth("c", "auto", Credentials(USER, PASSWORD))
    assert auth.scheme == "none"
    responses = fetch(auth, camera, times=2)
    assert [r.status_code for r in responses] == [200, 200]
    assert auth.scheme == "basic"
    assert len(requests) == 3


def test_auto_prefers_digest_when_basic_is_also_offered() -> None:
    camera = FakeDigestCamera([("MD5", "nonce1")])
    original = camera.header_values
    camera.header_values = lambda stale=False: [
        ("WWW-Authenticate", 'Basic realm="x"'),
        *original(stale),
    ]  # type: ignore[method-assign]
    auth = digest_auth("auto")
    (response,) = fetch(auth, camera)
    assert response.status_code == 200
    assert auth.scheme == "digest"


def test_digest_mode_does_not_fall_back_to_basic() -> None:
    requests: list[httpx.Request] = []

    def camera(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="cam"'})

    (response,) = fetch(digest_auth("digest"), camera)
    assert response.status_code == 401
    assert "authorization" not in requests[-1].headers


def test_query_mode_puts_percent_encoded_credentials_in_the_query() -> None:
    seen: list[httpx.Request] = []

    def camera(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    auth = CameraAuth("c", "query", Credentials(USER, "p#&w"), {"user": USER, "pwd": "p#&w"})
    fetch(auth, camera)
    assert seen[0].url.params["pwd"] == "p#&w"
    assert b"pwd=p%23%26w" in seen[0].url.raw_path
    assert "authorization" not in seen[0].headers
    assert seen[0].url.userinfo == b""
