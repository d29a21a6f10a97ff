"""Glue tables as DuckDB views over local copies of their S3 objects (the local engine's table scan).

For `db.table` the view reads exactly what Athena would: the objects under the table's location (or,
for a partitioned table, under the locations of its *registered* partitions), hidden `_`/`.` files and
folder markers ignored, partition columns taken from the Glue partition values, JSON columns typed per
the Glue schema (so decimal text stays text until SQL casts it).

Objects are fetched with boto3 (no s3fs, no DuckDB httpfs) into a cache folder keyed by key and ETag, laid
out as `<table>/<k1>=<v1>/.../<file>` from the Glue values so DuckDB's Hive partitioning yields them --
and prunes files by partition predicates before reading them. A changed object gets a new ETag and is
fetched again; an unchanged one is never fetched twice.

The cache mirrors what is read, so it does not grow without end in a long `make dev` session (every
refresh writes new Parquet and deletes older builds): a read drops the copies, in the folders it lists,
of objects that are gone or changed; and once per engine, table folders no statement used for
IDLE_SECONDS (a finished build's staging table) and read-back copies older than that are removed.
Engines of several processes share the cache: a statement whose copy another one removed mid-way is run
once more by the engine (it fetches the copy again, as long as the object still exists).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from gadget_pipeline.athena.catalog_session import CatalogSession
from gadget_pipeline.athena.duckdb_types import duckdb_type, quote_identifier, quote_literal
from gadget_pipeline.athena.errors import QueryError
from gadget_pipeline.aws import AwsTarget, concurrently
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.glue import Column, GlueTable
from gadget_pipeline.catalog.s3 import S3Object, as_folder, iter_objects, split_s3_url

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:+-]*")  # partition values that survive a folder name unchanged
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_QUOTED = re.compile(r'"([^"]+)"')
MAX_JSON_OBJECT_BYTES = 16 * 1024 * 1024
PER_PARTITION_LISTING_LIMIT = 24  # pruned to at most this many partitions: list their folders only
IDLE_SECONDS = 15 * 60  # a table folder unused this long, or a read-back copy this old, is removed
WRITTEN = "written"  # the cache folder of files this engine uploaded (read back without a download)


@dataclass(frozen=True)
class CachedObject:
    bucket: str
    key: str
    etag: str
    path: Path


class LocalTableCache:
    """Keeps one DuckDB view per Glue table, refreshed whenever the table or its objects change."""

    def __init__(self, target: AwsTarget, connection: Any, cache_dir: Path, *, download_workers: int = 8,
                 session_of: Callable[[], CatalogSession | None] = lambda: None) -> None:
        self.target = target
        self.session_of = session_of  # the job's memo of Glue/S3 answers, if the engine runs one
        self.connection = connection
        self.cache_dir = cache_dir
        self.download_workers = download_workers
        self._fingerprints: dict[tuple[str, str], str] = {}
        self._origins: dict[str, str] = {}  # cached file -> the S3 object it copies, for error messages
        self._swept = False

    def describe(self, database: str, name: str) -> GlueTable:
        session = self.session_of()
        table = session.get_table(database, name) if session else catalog.get_table(
            self.target.client("glue"), database, name)
        if table is None:
            raise QueryError(f"TABLE_NOT_FOUND: Table 'awsdatacatalog.{database}.{name}' does not exist")
        if table.storage_format not in ("json", "parquet"):
            raise QueryError(f"the local engine reads JSON and Parquet tables; {database}.{name} is "
                             f"{table.storage_format}")
        return table

    def expose_all(self, wanted: list[tuple[GlueTable, str | None]]) -> None:
        """Create or refresh, in DuckDB schema "database", the views (`view_name`) of the tables one
        statement reads, each of the partitions matching a Glue expression (or of all). The tables' files
        are fetched concurrently -- one table's downloads need not wait for another's --, those that
        share a cache folder (a table's several filters) in turn, as each trims the folder to what it
        wants; the views are then created one by one (one DuckDB connection)."""
        self._sweep_idle()
        by_folder: dict[Path, list[tuple[GlueTable, str | None]]] = {}
        for table, partition_filter in wanted:
            by_folder.setdefault(self._table_dir(table), []).append((table, partition_filter))
        fetched = concurrently(*(lambda group=group: [self._local_files(*item) for item in group]
                                 for group in by_folder.values()))
        for group, files_of_group in zip(by_folder.values(), fetched, strict=True):
            for (table, partition_filter), files in zip(group, files_of_group, strict=True):
                self._create_view(table, self.view_name(table, partition_filter), files)

    @staticmethod
    def view_name(table: GlueTable, partition_filter: str | None) -> str:
        """The view of a table, or of its partitions matching a filter: named apart per filter."""
        if not partition_filter:
            return table.name
        return f"{table.name}__{hashlib.sha1(partition_filter.encode()).hexdigest()[:10]}"  # noqa: S324

    def _create_view(self, table: GlueTable, view: str, files: list[CachedObject]) -> None:
        view_sql = _view_sql(table, [str(f.path) for f in files])
        fingerprint = hashlib.sha256(view_sql.encode()).hexdigest()
        if self._fingerprints.get((table.database, view)) != fingerprint:
            schema = quote_identifier(table.database)
            self.connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self.connection.execute(f"CREATE OR REPLACE VIEW {schema}.{quote_identifier(view)} AS {view_sql}")
            self._fingerprints[(table.database, view)] = fingerprint

    def adopt(self, bucket: str, key: str, etag: str, path: Path) -> None:
        """Keep a copy of a file just uploaded as s3://bucket/key (with this ETag): reading the object back
        then costs no download -- the engine never fetches what it has just written."""
        stored = self._stored(bucket, key, etag)
        stored.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(path, stored)
        if (session := self.session_of()) is not None:
            session.object_written(bucket, key, etag, path.stat().st_size)

    def _stored(self, bucket: str, key: str, etag: str) -> Path:
        key_hash = hashlib.sha1(f"{bucket}/{key}".encode()).hexdigest()[:16]  # noqa: S324 (a name)
        return self.cache_dir / WRITTEN / f"{key_hash}-{_SAFE_NAME.sub('_', etag)[:40]}"

    def forget(self, database: str, name: str) -> None:
        if (session := self.session_of()) is not None:
            session.forget_table(database, name)
        self._fingerprints.pop((database, name), None)
        self.connection.execute(f"DROP VIEW IF EXISTS {quote_identifier(database)}.{quote_identifier(name)}")

    # ------------------------------------------------------------------ which objects, where locally

    def _list(self, bucket: str, prefix: str) -> Iterable[S3Object]:
        session = self.session_of()
        return session.list_objects(bucket, prefix) if session else iter_objects(
            self.target.client("s3"), bucket, prefix)

    def _table_dir(self, table: GlueTable) -> Path:
        """The cache folder of a table's copies: one per location and layout -- tables sharing a location
        but not a layout (order_latest_event, order_current_state) get their own."""
        identity = f"{table.location}|{','.join(key.name for key in table.partition_keys)}"
        return self.cache_dir / hashlib.sha1(identity.encode()).hexdigest()[:16]  # noqa: S324

    def _local_files(self, table: GlueTable, partition_filter: str | None) -> list[CachedObject]:
        table_dir = self._table_dir(table)
        wanted: list[CachedObject] = []
        listed = [table_dir]  # the local folders whose every object the listings below saw
        if not table.partition_keys:
            bucket, prefix = split_s3_url(as_folder(table.location))
            for obj in _data_objects(self._list(bucket, prefix)):
                wanted.append(_cached(bucket, obj, table_dir))
        else:
            session, where = self.session_of(), (table.database, table.name)
            partitions = session.get_partitions(*where, partition_filter) if session else \
                catalog.get_partitions(self.target.client("glue"), *where, expression=partition_filter)
            by_folder = {as_folder(p.location): p.values for p in partitions}
            pruned = bool(partition_filter)
            if pruned:
                listed = [_partition_folder(table_dir, table.partition_keys, p.values) for p in partitions]
            for bucket, objects in self._objects_under(table.location, by_folder, pruned=pruned):
                for obj in _data_objects(objects):
                    values = _partition_of(f"s3://{bucket}/{obj.key}", by_folder)
                    if values is not None:
                        folder = _partition_folder(table_dir, table.partition_keys, values)
                        wanted.append(_cached(bucket, obj, folder))
        self._download([item for item in wanted if not item.path.exists()])
        self._origins.update((str(item.path), f"s3://{item.bucket}/{item.key}") for item in wanted)
        _remove_unlisted(listed, {str(item.path) for item in wanted})
        if table_dir.is_dir():
            os.utime(table_dir)  # in use: not idle
        return wanted

    def _sweep_idle(self) -> None:
        """Once per engine: remove table folders unused for IDLE_SECONDS and read-back copies older than
        that (by then the tables that read them hold their own links, or the objects are gone)."""
        if self._swept:
            return
        self._swept = True
        cutoff = time.time() - IDLE_SECONDS
        try:
            entries = list(os.scandir(self.cache_dir))
        except OSError:  # no cache yet
            return
        for entry in entries:
            try:
                if entry.name == WRITTEN:
                    for item in os.scandir(entry.path):
                        if item.is_file() and item.stat().st_mtime < cutoff:
                            os.unlink(item.path)
                elif entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:  # another engine removed it first
                continue

    def lost_a_copy(self, text: str) -> bool:
        """Does a DuckDB message name a cached copy that no longer exists?"""
        return any(path in self._origins and not os.path.exists(path) for path in _QUOTED.findall(text))

    def in_s3_terms(self, text: str) -> str:
        """A DuckDB message with each quoted cache path replaced by the S3 object it holds."""
        return _QUOTED.sub(lambda match: f'"{self._origins.get(match.group(1), match.group(1))}"', text)

    def _objects_under(self, location: str, partition_folders: dict[str, tuple[str, ...]], *, pruned: bool
                       ) -> list[tuple[str, list[S3Object]]]:
        """One listing of the table location (or, for a few pruned partitions, of just their folders),
        plus one per partition that lives outside the table location; the listings run concurrently."""
        root = as_folder(location)
        inside = [folder for folder in partition_folders if folder.startswith(root)]
        if pruned and len(inside) <= PER_PARTITION_LISTING_LIMIT:
            folders = list(partition_folders)
        else:
            folders = [root] + [folder for folder in partition_folders if not folder.startswith(root)]
        places = [split_s3_url(folder) for folder in folders]
        listings = concurrently(*(lambda place=place: list(self._list(*place)) for place in places))
        return [(bucket, objects) for (bucket, _prefix), objects in zip(places, listings, strict=True)]

    def _download(self, items: list[CachedObject]) -> None:
        fetched = []
        for item in items:
            stored = self._stored(item.bucket, item.key, item.etag)
            if stored.exists():  # written by this engine: the same bytes (same ETag)
                item.path.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(stored, item.path)
            else:
                fetched.append(item)
        items = fetched
        if not items:
            return
        s3 = self.target.client("s3")

        def fetch(item: CachedObject) -> None:
            item.path.parent.mkdir(parents=True, exist_ok=True)
            partial = item.path.with_name(item.path.name + f".{os.getpid()}.{threading.get_ident()}.part")
            body = s3.get_object(Bucket=item.bucket, Key=item.key, IfMatch=f'"{item.etag}"')["Body"]
            with partial.open("wb") as file:
                shutil.copyfileobj(body, file, 1024 * 1024)
            partial.replace(item.path)  # atomic: a reader never sees half a file

        try:
            with ThreadPoolExecutor(max_workers=self.download_workers) as pool:
                list(pool.map(fetch, items))
        except ClientError as error:  # e.g. PreconditionFailed: the object changed since it was listed
            raise QueryError(f"could not read an object of the table ({error}); run it again") from None


def _link_or_copy(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + f".{os.getpid()}.{threading.get_ident()}.part")
    try:
        os.link(source, partial)
    except OSError:  # another file system, or no hard links
        shutil.copyfile(source, partial)
    partial.replace(target)  # atomic: a reader never sees half a file


def _remove_unlisted(folders: list[Path], wanted: set[str]) -> None:
    """Delete the cached files under these folders that the listings did not want: copies of objects that
    are gone or changed (a download in progress, `*.part`, is left alone)."""
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                if path not in wanted and not name.endswith(".part"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)


def _data_objects(objects: Iterable[S3Object]) -> Iterable[S3Object]:
    """What Athena reads: not folder markers, not empty, not hidden (`_SUCCESS`, `.crc` ...)."""
    for obj in objects:
        if obj.size > 0 and not obj.key.endswith("/") and not obj.name.startswith(("_", ".")):
            yield obj


def _partition_of(url: str, by_folder: dict[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    folder = url.rsplit("/", 1)[0] + "/"
    while folder.count("/") > 3:  # walk up: files may sit in sub-folders of a partition
        if folder in by_folder:
            return by_folder[folder]
        folder = folder[:-1].rsplit("/", 1)[0] + "/"
    return None


def _partition_folder(table_dir: Path, keys: Iterable[Column], values: Iterable[str]) -> Path:
    """`<table_dir>/<k1>=<v1>/...`: where a partition's copies live, so DuckDB's Hive partitioning reads
    the values off the path."""
    folders = (_hive_folder(key.name, value) for key, value in zip(keys, values, strict=True))
    return table_dir.joinpath(*folders)


def _hive_folder(key: str, value: str) -> str:
    if not _SAFE_VALUE.fullmatch(value) or value in ("", ".", ".."):
        raise QueryError(f"the local engine cannot read partition value {value!r} of {key}")
    return f"{key}={value}"


def _cached(bucket: str, obj: S3Object, folder: Path) -> CachedObject:
    key_hash = hashlib.sha1(f"{bucket}/{obj.key}".encode()).hexdigest()[:12]  # noqa: S324 (a name, not security)
    name = f"{key_hash}-{obj.etag.replace('-', '_')[:32]}-{_SAFE_NAME.sub('_', obj.name)[-80:]}"
    return CachedObject(bucket, obj.key, obj.etag, folder / name)


# ---------------------------------------------------------------------- the view over the files


def _view_sql(table: GlueTable, files: list[str]) -> str:
    """SELECT data columns then partition columns, typed per Glue, over the cached files."""
    if not files:  # an empty table still has its columns and types
        nulls = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {quote_identifier(c.name)}"
                          for c in table.all_columns)
        return f"SELECT {nulls} WHERE false"
    select = ", ".join(
        f"CAST({quote_identifier(c.name)} AS {duckdb_type(c.type)}) AS {quote_identifier(c.name)}"
        for c in table.all_columns
    )
    file_list = "[" + ", ".join(quote_literal(f) for f in files) + "]"
    hive = _hive_options(table)
    if table.storage_format == "json":
        columns = "{" + ", ".join(f"{quote_literal(c.name)}: {quote_literal(duckdb_type(c.type))}"
                                  for c in table.columns) + "}"
        # like Athena's JSON SerDe: a line that is not a JSON object fails the query, unless the table
        # says to read it as a row of NULLs (SerDe parameter ignore.malformed.json = true)
        lenient = table.serde_parameters.get("ignore.malformed.json", "").lower() == "true"
        source = (f"read_json({file_list}, format='newline_delimited', columns={columns}, "
                  f"ignore_errors={str(lenient).lower()}, maximum_object_size={MAX_JSON_OBJECT_BYTES}{hive})")
    else:
        source = f"read_parquet({file_list}, union_by_name=true{hive})"
    return f"SELECT {select} FROM {source}"  # noqa: S608 (names quoted, paths are our cache files)


def _hive_options(table: GlueTable) -> str:
    if not table.partition_keys:
        return ", hive_partitioning=false"
    types = ", ".join(f"{quote_literal(key.name)}: {quote_literal(duckdb_type(key.type))}"
                      for key in table.partition_keys)
    return f", hive_partitioning=true, hive_types={{{types}}}, hive_types_autocast=false"
