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

Lookups the job knows it will need are asked at once (`prefetch`, threads): each is a network round trip
(a few ms to moto, tens of ms to AWS), and independent ones need not wait for each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gadget_pipeline.aws import AwsTarget, concurrently
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.glue import GlueTable, Partition
from gadget_pipeline.catalog.s3 import S3Object, iter_objects

_PARTITION_INPUT_KEYS = ("Values", "LastAccessTime", "StorageDescriptor", "Parameters", "LastAnalyzedTime")


class CatalogSession:
    def __init__(self, target: AwsTarget) -> None:
        self.target = target
        self._tables: dict[tuple[str, str], GlueTable | None] = {}
        self._partitions: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
        self._listings: dict[tuple[str, str, str | None], dict[str, S3Object]] = {}  # (bucket, prefix, after)
        self._rows: dict[tuple[str, str], dict[tuple[str, ...], int]] = {}  # rows per partition, if known
        self._lock = threading.Lock()  # the memo is shared by prefetch threads; network calls run outside it

    def prefetch(self, *lookups: Callable[[], object]) -> None:
        """Run independent lookups (e.g. `lambda: session.get_table(db, name)`) concurrently; their answers
        stay in the memo. The first failure is raised, after every lookup has ended."""
        concurrently(*lookups)

    # ------------------------------------------------------------------ Glue

    def get_table(self, database: str, name: str) -> GlueTable | None:
        key = (database, name)
        with self._lock:
            if key in self._tables:
                return self._tables[key]
        table = catalog.get_table(self.target.client("glue"), database, name)
        with self._lock:
            return self._tables.setdefault(key, table)

    def _raw_partitions(self, database: str, name: str, expression: str | None) -> list[dict[str, Any]]:
        key = (database, name, expression or None)
        with self._lock:
            if key in self._partitions:
                return self._partitions[key]
        kwargs: dict[str, Any] = {"DatabaseName": database, "TableName": name}
        if expression:
            kwargs["Expression"] = expression
        pages = self.target.client("glue").get_paginator("get_partitions").paginate(**kwargs)
        partitions = [item for page in pages for item in page["Partitions"]]
        with self._lock:
            return self._partitions.setdefault(key, partitions)

    def get_partitions(self, database: str, name: str, expression: str | None = None) -> list[Partition]:
        return [Partition(tuple(item["Values"]), item.get("StorageDescriptor", {}).get("Location", ""))
                for item in self._raw_partitions(database, name, expression)]

    def narrow_partitions(self, database: str, name: str, held: str | None, narrower: str,
                          keep: Callable[[tuple[str, ...]], bool]) -> None:
        """Answer `narrower` (a Glue expression selecting a subset of what `held` selected) from the held
        answer: `keep` says, by partition values, what Glue would keep. No call."""
        held_answer = self._raw_partitions(database, name, held)
        subset = [item for item in held_answer if keep(tuple(item["Values"]))]
        with self._lock:
            self._partitions[(database, name, narrower)] = subset

    def partition_inputs_of(self, database: str, name: str) -> list[dict[str, Any]]:
        """Every partition of a table as PartitionInputs (fresh dicts: the caller may change them)."""
        return [{key: item[key] for key in _PARTITION_INPUT_KEYS if key in item}
                for item in self._raw_partitions(database, name, None)]

    def table_created(self, database: str, name: str, table_input: dict[str, Any],
                      partitions: list[dict[str, Any]], rows: dict[tuple[str, ...], int] | None = None
                      ) -> None:
        """A table this job's engine just created (CTAS), with every partition it registered (and, if the
        engine counted them as it wrote, the rows of each, by partition values): remembered as Glue would
        describe it, so the job does not ask Glue -- or count -- what the engine itself wrote."""
        self.forget_table(database, name)
        with self._lock:
            self._tables[(database, name)] = GlueTable.from_glue({**table_input, "DatabaseName": database})
            self._partitions[(database, name, None)] = [dict(partition) for partition in partitions]
            if rows is not None:
                self._rows[(database, name)] = dict(rows)

    def rows_written(self, database: str, name: str) -> dict[tuple[str, ...], int] | None:
        """Rows per partition (by values) of a table this job's engine created and counted as it wrote
        (the local engine does; Athena does not tell): None when unknown -- count them with a query."""
        with self._lock:
            rows = self._rows.get((database, name))
            return dict(rows) if rows is not None else None

    def table_dropped(self, database: str, name: str) -> None:
        """This job deleted the table: known absent, not asked again."""
        self.forget_table(database, name)
        with self._lock:
            self._tables[(database, name)] = None

    def forget_table(self, database: str, name: str) -> None:
        """The table or its partitions changed: describe and list them again when next asked."""
        with self._lock:
            self._tables.pop((database, name), None)
            self._rows.pop((database, name), None)
            for key in [key for key in self._partitions if key[:2] == (database, name)]:
                del self._partitions[key]

    # ------------------------------------------------------------------ S3

    def list_objects(self, bucket: str, prefix: str, start_after: str | None = None) -> list[S3Object]:
        """The objects under a prefix (after `start_after`, if given): one listing, or none if a listing
        held covers it -- of an enclosing prefix, and starting before every key under this one."""
        held = self._held(bucket, prefix, start_after)
        if held is None:
            s3 = self.target.client("s3")
            listed = {obj.key: obj for obj in iter_objects(s3, bucket, prefix, start_after)}
            with self._lock:
                held = self._listings.setdefault((bucket, prefix, start_after), listed)
        with self._lock:
            found = [obj for key, obj in held.items() if _listed_by(prefix, start_after, key)]
        return sorted(found, key=lambda obj: obj.key)

    def has_objects(self, bucket: str, prefix: str) -> bool:
        """Is any object under the prefix? From a listing held that covers it, else one small request."""
        if self._held(bucket, prefix) is not None:
            return bool(self.list_objects(bucket, prefix))
        return bool(self.target.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
                    .get("Contents"))

    def _held(self, bucket: str, prefix: str, start_after: str | None = None) -> dict[str, S3Object] | None:
        """A listing held with every key under `prefix` (after `start_after`): its prefix encloses this one
        and it started before them (every key under a prefix sorts after the prefix itself)."""
        with self._lock:
            for (held_bucket, held_prefix, held_after), objects in self._listings.items():
                started_before = held_after is None or prefix > held_after or (
                    start_after is not None and start_after >= held_after)
                if held_bucket == bucket and prefix.startswith(held_prefix) and started_before:
                    return objects
        return None

    def object_written(self, bucket: str, key: str, etag: str, size: int) -> None:
        """An object this job just put: added to the listings held that cover it."""
        with self._lock:
            for (held_bucket, held_prefix, held_after), objects in self._listings.items():
                if held_bucket == bucket and _listed_by(held_prefix, held_after, key):
                    objects[key] = S3Object(key=key, size=size, etag=etag)

    def objects_deleted(self, bucket: str, keys: list[str]) -> None:
        with self._lock:
            for (held_bucket, _prefix, _after), objects in self._listings.items():
                if held_bucket == bucket:
                    for key in keys:
                        objects.pop(key, None)


def _listed_by(prefix: str, start_after: str | None, key: str) -> bool:
    """Would a listing of `prefix` (after `start_after`) return `key`?"""
    return key.startswith(prefix) and (start_after is None or key > start_after)
