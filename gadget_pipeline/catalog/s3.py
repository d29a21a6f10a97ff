"""S3 locations as the catalog uses them: split `s3://bucket/prefix/`, list under a prefix, clear a prefix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DELETE_BATCH = 1000  # DeleteObjects accepts at most 1000 keys per call


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str  # without quotes; changes whenever the content does
    last_modified: Any = None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> ("bucket", "a/b/")."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an S3 location: {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"S3 location without a bucket: {url!r}")
    return bucket, prefix


def as_folder(url: str) -> str:
    """Locations name folders: always end them with '/' so `raw/x` never matches `raw/xy/...`."""
    return url if url.endswith("/") else url + "/"


def iter_objects(s3: Any, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[S3Object]:
    """Every object under a prefix (paginated ListObjectsV2), in key order; only keys after `start_after`
    if given (the listing then starts there: its cost follows what comes after, not what lies before)."""
    extra = {"StartAfter": start_after} if start_after else {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **extra):
        for item in page.get("Contents", []):
            yield S3Object(item["Key"], item["Size"], item["ETag"].strip('"'), item.get("LastModified"))


def list_folders(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The immediate sub-folders of a prefix (CommonPrefixes), as full keys ending in '/'."""
    folders: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
    return folders


def has_objects(s3: Any, location: str) -> bool:
    bucket, prefix = split_s3_url(as_folder(location))
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("Contents"))


def clear_prefix(s3: Any, location: str) -> int:
    """Delete every object under a folder location; returns how many. Athena never deletes table data
    (DROP TABLE keeps it, CTAS refuses a non-empty location), so rebuilding code clears locations here."""
    bucket, prefix = split_s3_url(as_folder(location))
    if not prefix:
        raise ValueError(f"refusing to clear a whole bucket: {location!r}")
    keys = [obj.key for obj in iter_objects(s3, bucket, prefix)]
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start:start + DELETE_BATCH]
        request = {"Objects": [{"Key": key} for key in batch], "Quiet": True}
        response = s3.delete_objects(Bucket=bucket, Delete=request)
        if response.get("Errors"):
            first = response["Errors"][0]
            raise RuntimeError(f"could not delete s3://{bucket}/{first['Key']}: {first.get('Message')}")
    return len(keys)
