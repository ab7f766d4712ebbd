"""The object store, through minio: one PUT per picture, its errors translated here and only here.

minio is imported here alone, so a service without [upload] never loads it
(it is the optional extra `upload`). Its exceptions (S3Error, urllib3's
connection errors) become ours in `put`: `StoreUnavailable` when the store
as a whole cannot take pictures now (no connection, time-out, 5xx,
throttling, refused credentials, a missing bucket, which a technician fixes
on the store's side without touching the Pi); `ObjectRefused` when the store
answered this one PUT with another error (`AccessDenied` from a policy per
prefix, say): the others go on and this one is tried again later;
`PictureGone` when the local file is no longer there, `PictureRefused` when
this one picture can never be uploaded (an unreadable file, a key the store
or minio refuses for good): the worker then gives up on it. No message ever carries a key: only the endpoint, bucket,
object key and what the store answered.
"""

from __future__ import annotations

import logging
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from capture.config.schema import UploadConfig
from capture.errors import CaptureError

log = logging.getLogger(__name__)

#: Seconds to connect, and to wait for the store's answer to one PUT.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


class UploadError(CaptureError):
    """A picture could not be uploaded; the message says where to look."""


class StoreUnavailable(UploadError, ConnectionError):
    """The store cannot take pictures now: every upload waits and is tried again later."""


class PictureGone(UploadError, FileNotFoundError):
    """The picture's file is no longer on local disk: there is nothing left to upload."""


class PictureRefused(UploadError, ValueError):
    """This one picture cannot be uploaded, ever (unreadable file, a key the store refuses)."""


class ObjectRefused(UploadError, PermissionError):
    """The store refused this one PUT (e.g. AccessDenied for its prefix): tried again later."""


#: S3 error codes about one object, not the store: trying again cannot help.
_OBJECT_CODES = frozenset(
    {"KeyTooLongError", "InvalidObjectName", "EntityTooLarge", "InvalidArgument"}
)
#: S3 error codes about the store, the bucket or our credentials, whatever the key: every
#: upload waits. Any other code is taken as about this one object (`ObjectRefused`).
_STORE_CODES = frozenset(
    {
        "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "InvalidBucketName",
        "AllAccessDisabled", "AccountProblem", "RequestTimeTooSkewed", "ExpiredToken",
        "InvalidToken", "InternalError", "ServiceUnavailable", "SlowDown",
        "XMinioServerNotInitialized", "XMinioStorageFull", "RequestTimeout",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Metadata:
    """What travels with an object as x-amz-meta-* headers, for a plant-wide viewer."""

    site: str
    event_id: str
    rule: str
    camera: str
    seq: int

    def headers(self) -> dict[str, str]:
        return {
            "site": self.site,
            "event-id": self.event_id,
            "rule": self.rule,
            "camera": self.camera,
            "seq": str(self.seq),
        }


class ObjectStore:
    """A bucket of an S3-compatible store; `put` is safe from several threads."""

    def __init__(self, config: UploadConfig) -> None:
        assert config.endpoint is not None and config.bucket is not None  # validated when enabled
        self.endpoint = config.endpoint
        self.bucket = config.bucket
        self._base_url = config.base_url
        address = urlsplit(config.endpoint)
        secure = address.scheme == "https"
        if secure and not config.verify:
            # Said once here, where the choice was made; urllib3 would warn on
            # every PUT, thousands of times a day, into the service's stderr.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
            log.warning(
                "upload: verify = false: the certificate of %s is not checked, so a machine "
                "on the network path could pose as the store and receive the pictures (give "
                "the store's CA as ca_file instead)",
                config.endpoint,
            )
        pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=config.concurrency,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
            retries=False,  # the worker backs off; urllib3 retrying would hide an outage
            cert_reqs=ssl.CERT_REQUIRED if config.verify else ssl.CERT_NONE,
            # Without ca_file: the system's CAs, where a plant CA installed with
            # update-ca-certificates is, as the docs say (not certifi's bundle).
            ca_certs=str(config.ca_file) if config.ca_file else None,
        )
        self._client = Minio(
            address.netloc,
            access_key=config.access_key.get_secret_value() if config.access_key else None,
            secret_key=config.secret_key.get_secret_value() if config.secret_key else None,
            secure=secure,
            region=config.region,
            http_client=pool,
            cert_check=config.verify,
        )
        self._pool = pool

    def url(self, key: str) -> str:
        """Where the object of `key` is read (path-style under `[upload].public_url`)."""
        return f"{self._base_url}/{quote(key)}"

    def put(self, key: str, path: Path, metadata: Metadata) -> None:
        """Upload the file at `path` as `key`; a second PUT of the same key replaces it."""
        try:
            file = path.open("rb")
        except FileNotFoundError as exc:
            raise PictureGone(f"{path}: no longer on local disk; not uploaded") from exc
        except OSError as exc:
            raise PictureRefused(f"{path}: cannot be read ({exc.strerror}); not uploaded") from exc
        with file:
            try:
                size = path.stat().st_size
                self._client.put_object(
                    self.bucket,
                    key,
                    file,
                    size,
                    content_type="image/jpeg",
                    metadata=metadata.headers(),  # type: ignore[arg-type]  # minio's own alias
                )
            except S3Error as exc:
                where = f"object store {self.endpoint} bucket {self.bucket}: refused {key!r}"
                if exc.code in _OBJECT_CODES:
                    raise PictureRefused(f"{where} for good: {exc.code}") from exc
                if exc.code in _STORE_CODES or exc.response.status >= 500:
                    raise StoreUnavailable(f"{where}: {exc.code} ({_hint(exc.code)})") from exc
                raise ObjectRefused(f"{where}: {exc.code} ({_hint(exc.code)})") from exc
            except ValueError as exc:  # minio refuses the key before sending it ('..' segment)
                raise PictureRefused(
                    f"object store {self.endpoint}: key {key!r} cannot be used: {exc}"
                ) from exc
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise StoreUnavailable(f"object store {self.endpoint}: {_reason(exc)}") from exc

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()


def _hint(code: str | None) -> str:
    """What a technician does about an S3 error code."""
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return "check access_key and secret_key"
    if code == "AccessDenied":
        return "check the access key's rights on the bucket and on this key's prefix"
    if code == "NoSuchBucket":
        return "create the bucket, or fix [upload].bucket"
    return "the store's own log says more"


def _reason(exc: BaseException) -> str:
    """A short reason without a URL's query (a presigned one would carry a signature).

    A certificate the client cannot verify gets the fix beside it: it is
    what a store with the plant's own CA answers until ca_file is set.
    """
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).split("?", 1)[0][:300] or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        text += " (give the CA that signed the store's certificate as [upload].ca_file)"
    return text
