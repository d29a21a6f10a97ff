"""A per-job memo of Glue descriptions, partition lists and S3 listings (e.g. one refresh of
order_current_state), so that the statements of one job do not describe and list the same tables again.

Plain Glue/S3 calls, the same on AWS and locally: the job asks the session instead of Glue/S3, and the
local engine, given the session (`engine.using(session)`), reads its tables through it. It is never
stale across jobs (a new job makes a new session) and within one it follows the writes it knows of: the
engine forgets a table it (re)creates, inserts into or drops, and adds the objects it uploads to the
listings that cover them; a table the local engine creates (CTAS) is remembered as it registered it, so
the job does not describe it again (on AWS, Athena creates it and the session asks Glue once). Catalog
changes made outside the engine must call `forget_table`, and whoever else writes objects during the job
is simply not seen -- as if the job had listed before they wrote.
"""

from __future__ import annotations

from typing import Any

from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.glue import GlueTable, Partition
from gadget_pipeline.catalog.s3 import S3Object, iter_objects

_PARTITION_INPUT_KEYS = ("Values", "LastAccessTime", "StorageDescriptor", "Parameters", "LastAnalyzedTime")


class CatalogSession:
    def __init__(self, target: AwsTarget) -> None:
        self.target = target
        self._tables: dict[tuple[str, str], GlueTable | None] = {}
        self._partitions: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
        self._listings: dict[tuple[str, str], dict[str, S3Object]] = {}

    # ------------------------------------------------------------------ Glue

    def get_table(self, database: str, name: str) -> GlueTable | None:
        key = (database, name)
        if key not in self._tables:
            self._tables[key] = catalog.get_table(self.target.client("glue"), database, name)
        return self._tables[key]

    def _raw_partitions(self, database: str, name: str, expression: str | None) -> list[dict[str, Any]]:
        key = (database, name, expression or None)
        if key not in self._partitions:
            kwargs: dict[str, Any] = {"DatabaseName": database, "TableName": name}
            if expression:
                kwargs["Expression"] = expression
            paginator = self.target.client("glue").get_paginator("get_partitions")
            pages = paginator.paginate(**kwargs)
            self._partitions[key] = [item for page in pages for item in page["Partitions"]]
        return self._partitions[key]

    def get_partitions(self, database: str, name: str, expression: str | None = None) -> list[Partition]:
        return [Partition(tuple(item["Values"]), item.get("StorageDescriptor", {}).get("Location", ""))
                for item in self._raw_partitions(database, name, expression)]

    def partition_inputs_of(self, database: str, name: str) -> list[dict[str, Any]]:
        """Every partition of a table as PartitionInputs (fresh dicts: the caller may change them)."""
        return [{key: item[key] for key in _PARTITION_INPUT_KEYS if key in item}
                for item in self._raw_partitions(database, name, None)]

    def table_created(self, database: str, name: str, table_input: dict[str, Any],
                      partitions: list[dict[str, Any]]) -> None:
        """A table this job's engine just created (CTAS), with every partition it registered: remembered
        as Glue would describe it, so the job does not ask Glue for what the engine itself wrote."""
        self.forget_table(database, name)
        self._tables[(database, name)] = GlueTable.from_glue({**table_input, "DatabaseName": database})
        self._partitions[(database, name, None)] = [dict(partition) for partition in partitions]

    def forget_table(self, database: str, name: str) -> None:
        """The table or its partitions changed: describe and list them again when next asked."""
        self._tables.pop((database, name), None)
        for key in [key for key in self._partitions if key[:2] == (database, name)]:
            del self._partitions[key]

    # ------------------------------------------------------------------ S3

    def list_objects(self, bucket: str, prefix: str) -> list[S3Object]:
        """The objects under a prefix: one listing, or none if a listing of an enclosing prefix is held."""
        for (held_bucket, held_prefix), objects in self._listings.items():
            if held_bucket == bucket and prefix.startswith(held_prefix):
                return sorted((obj for key, obj in objects.items() if key.startswith(prefix)),
                              key=lambda obj: obj.key)
        objects = {obj.key: obj for obj in iter_objects(self.target.client("s3"), bucket, prefix)}
        self._listings[(bucket, prefix)] = objects
        return sorted(objects.values(), key=lambda obj: obj.key)

    def has_objects(self, bucket: str, prefix: str) -> bool:
        """Is any object under the prefix? From a listing held that covers it, else one small request."""
        if any(held == bucket and prefix.startswith(held_prefix) for held, held_prefix in self._listings):
            return bool(self.list_objects(bucket, prefix))
        return bool(self.target.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
                    .get("Contents"))

    def object_written(self, bucket: str, key: str, etag: str, size: int) -> None:
        """An object this job just put: added to the listings held that cover it."""
        for (held_bucket, held_prefix), objects in self._listings.items():
            if held_bucket == bucket and key.startswith(held_prefix):
                objects[key] = S3Object(key=key, size=size, etag=etag)

    def objects_deleted(self, bucket: str, keys: list[str]) -> None:
        for (held_bucket, _prefix), objects in self._listings.items():
            if held_bucket == bucket:
                for key in keys:
                    objects.pop(key, None)
