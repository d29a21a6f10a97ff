"""The Glue crawler for the local moto server (which stores crawlers but never runs them).

Reads the deployed crawler (`get_crawler`: S3 targets, exclusions, database, table prefix, schema-change
policy, classifiers) and the JSON classifier's JsonPath (moto cannot store classifiers: the local stack
record holds it), then does what a Glue crawl of newline-delimited JSON under Hive folders does:

1. list every object under each S3 target (listing is cheap; reading is not);
2. sort out what is not data (folder markers, empty, hidden `_`/`.` files, `.tmp`, excluded, wrong depth);
3. read a bounded sample -- the first `sample_bytes` (at most `sample_records` records) of a few
   objects of every partition not yet in the catalog plus the most recently written others -- and
   infer the schema like Glue's JSON classifier;
4. create or update the table (name from the folder, Glue's table parameters) and add only new
   partitions, so Athena-side code sees exactly what a real crawl would leave.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.crawler import (
    CrawledTable,
    Crawler,
    CrawlerError,
    CrawlReport,
    table_name_for_path,
)
from gadget_pipeline.catalog.glue import Column
from gadget_pipeline.catalog.json_schema import SchemaAccumulator, merge_schemas
from gadget_pipeline.catalog.s3 import S3Object, as_folder, iter_objects, split_s3_url

CLASSIFIER_LOGICAL_ID = "CdcJsonClassifier"  # the template's JSON classifier (see infra/template.yaml)
GZIP_MAGIC = b"\x1f\x8b"
SUPPORTED_JSON_PATHS = ("$", "$[*]")


@dataclass(frozen=True)
class CrawlerSettings:
    """The deployed crawler's settings, as get_crawler returns them."""

    name: str
    database: str
    table_prefix: str
    s3_targets: tuple[tuple[str, tuple[str, ...]], ...]  # (path, exclusion globs)
    classifiers: tuple[str, ...]
    update_behavior: str
    delete_behavior: str
    partitions_inherit_from_table: bool

    @classmethod
    def from_glue(cls, crawler: dict[str, Any]) -> CrawlerSettings:
        policy = crawler.get("SchemaChangePolicy", {})
        configuration = json.loads(crawler.get("Configuration") or "{}")
        partitions = configuration.get("CrawlerOutput", {}).get("Partitions", {})
        targets = crawler["Targets"].get("S3Targets", [])
        return cls(
            name=crawler["Name"],
            database=crawler["DatabaseName"],
            table_prefix=crawler.get("TablePrefix", ""),
            s3_targets=tuple((t["Path"], tuple(t.get("Exclusions", []))) for t in targets),
            classifiers=tuple(crawler.get("Classifiers", [])),
            update_behavior=policy.get("UpdateBehavior", "UPDATE_IN_DATABASE"),
            delete_behavior=policy.get("DeleteBehavior", "DEPRECATE_IN_DATABASE"),
            partitions_inherit_from_table=partitions.get("AddOrUpdateBehavior") == "InheritFromTable",
        )


@dataclass
class Sample:
    """What reading the head of one object found."""

    obj: S3Object
    records: list[dict[str, Any]] = field(default_factory=list)
    bytes_read: int = 0
    gzip: bool = False
    skip_reason: str | None = None


@dataclass
class TargetListing:
    data: dict[tuple[str, ...], list[S3Object]]  # partition values -> data objects
    partition_keys: tuple[str, ...]
    seen: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


class LocalGlueCrawler(Crawler):
    def __init__(
        self,
        target: AwsTarget,
        crawler_name: str,
        *,
        samples_per_new_partition: int = 3,
        recent_samples: int = 5,
        max_sampled_objects: int = 200,
        sample_bytes: int = 256 * 1024,
        sample_records: int = 500,
        read_workers: int = 4,
    ) -> None:
        self.target = target
        self.crawler_name = crawler_name
        self.samples_per_new_partition = samples_per_new_partition
        self.recent_samples = recent_samples
        self.max_sampled_objects = max_sampled_objects
        self.sample_bytes = sample_bytes
        self.sample_records = sample_records
        self.read_workers = read_workers

    # ------------------------------------------------------------------ the crawl

    def crawl(self) -> CrawlReport:
        started = time.monotonic()
        glue = self.target.client("glue")
        try:
            settings = CrawlerSettings.from_glue(glue.get_crawler(Name=self.crawler_name)["Crawler"])
        except glue.exceptions.EntityNotFoundException:
            raise CrawlerError(
                f"crawler {self.crawler_name!r} is not deployed: run `gadget-pipeline deploy`"
            ) from None
        json_path = self._json_path(settings.classifiers)
        tables: list[CrawledTable] = []
        skipped: Counter[str] = Counter()
        seen = sampled = records = 0
        messages: list[str] = []
        for path, exclusions in settings.s3_targets:
            listing = self._list(path, exclusions)
            seen += listing.seen
            skipped.update(listing.skipped)
            table, samples = self._crawl_target(glue, settings, path, exclusions, listing, json_path,
                                                messages)
            skipped.update(s.skip_reason for s in samples if s.skip_reason)
            sampled += len(samples)
            records += sum(len(s.records) for s in samples)
            if table is not None:
                tables.append(table)
        return CrawlReport(
            crawler_name=settings.name,
            status="SUCCEEDED",
            database=settings.database,
            tables=tuple(tables),
            duration_seconds=time.monotonic() - started,
            objects_seen=seen,
            objects_sampled=sampled,
            records_sampled=records,
            objects_skipped=dict(skipped),
            message="; ".join(messages),
        )

    def _json_path(self, classifier_names: tuple[str, ...]) -> str:
        """The JsonPath of the crawler's JSON classifier; "$" (one record per JSON value) without one."""
        if not classifier_names:
            return "$"
        from gadget_pipeline.stack import local_resource_record

        record = local_resource_record(self.target, CLASSIFIER_LOGICAL_ID).get("JsonClassifier", {})
        if record.get("Name") not in classifier_names:
            raise CrawlerError(
                f"crawler {self.crawler_name} uses classifiers {list(classifier_names)}, but the local stack "
                f"records only {record.get('Name')!r} ({CLASSIFIER_LOGICAL_ID})"
            )
        json_path = record.get("JsonPath", "$")
        if json_path not in SUPPORTED_JSON_PATHS:
            raise CrawlerError(f"the local crawler reads JsonPath {SUPPORTED_JSON_PATHS}, not {json_path!r}")
        return json_path

    # ------------------------------------------------------------------ 1-2: list and sort out

    def _list(self, path: str, exclusions: tuple[str, ...]) -> TargetListing:
        bucket, prefix = split_s3_url(as_folder(path))
        excluded = [_glob_to_regex(pattern) for pattern in exclusions]
        listing = TargetListing(data=defaultdict(list), partition_keys=())
        candidates: list[tuple[S3Object, tuple[str, ...], tuple[str, ...]]] = []
        for obj in iter_objects(self.target.client("s3"), bucket, prefix):
            listing.seen += 1
            relative = obj.key[len(prefix):]
            reason = _not_data_reason(obj, relative, excluded)
            if reason is not None:
                listing.skipped[reason] += 1
                continue
            folders = tuple(urllib.parse.unquote(part) for part in relative.split("/")[:-1])
            keys = tuple(_partition_key(folder, i) for i, folder in enumerate(folders))
            candidates.append((obj, keys, tuple(_partition_value(folder) for folder in folders)))
        # The table's partition layout is the one most data files share (deeper wins a tie); files
        # elsewhere -- a stray file at the root, a different folder depth -- are not part of the table.
        layouts = Counter(keys for _, keys, _ in candidates)
        layout = max(layouts, key=lambda keys: (layouts[keys], len(keys)), default=())
        for obj, keys, values in candidates:
            if keys == layout:
                listing.data[values].append(obj)
            else:
                listing.skipped["unexpected_layout"] += 1
        listing.partition_keys = layout
        return listing

    # ------------------------------------------------------------------ 3-4: sample, infer, write

    def _crawl_target(
        self, glue: Any, settings: CrawlerSettings, path: str, exclusions: tuple[str, ...],
        listing: TargetListing, json_path: str, messages: list[str],
    ) -> tuple[CrawledTable | None, list[Sample]]:
        database = settings.database
        name = table_name_for_path(path, settings.table_prefix)
        existing = catalog.get_table(glue, database, name)
        if existing is not None and tuple(k.name for k in existing.partition_keys) != listing.partition_keys:
            if listing.data:
                messages.append(
                    f"{name}: folder layout {listing.partition_keys} differs from the table's partition keys "
                    f"{[k.name for k in existing.partition_keys]}; table left unchanged"
                )
            return None, []
        registered = {p.values: p for p in catalog.get_partitions(glue, database, name)} if existing else {}

        new_partitions = sorted((values for values in listing.data if values not in registered), reverse=True)
        bucket = split_s3_url(path)[0]
        samples = self._read_samples(bucket, self._choose_samples(listing, new_partitions), json_path)
        junk = {s.obj.key for s in samples if s.skip_reason}
        data = {values: [o for o in objects if o.key not in junk] for values, objects in listing.data.items()}
        data = {values: objects for values, objects in data.items() if objects}
        if existing is None and not data:
            messages.append(f"no data objects under {path}")
            return None, samples

        schema = SchemaAccumulator()
        for sample in samples:
            for record in sample.records:
                schema.add(record)
        partition_names = set(listing.partition_keys)
        inferred = [c for c in schema.columns() if c.name not in partition_names]
        current = list(existing.columns) if existing else []
        columns = merge_schemas(current, inferred)
        schema_changed = existing is not None and columns != current
        if schema_changed and settings.update_behavior != "UPDATE_IN_DATABASE":
            messages.append(f"{name}: schema change logged, not applied ({settings.update_behavior})")
            columns, schema_changed = current, False

        partition_keys = tuple(Column(key, "string") for key in listing.partition_keys)
        parameters = _table_parameters(settings.name, data, samples, exclusions)
        descriptor = catalog.storage_descriptor(
            columns, path, "json", compressed=parameters["compressionType"] != "none",
            serde_parameters={"paths": ",".join(sorted(c.name for c in columns))}, parameters=parameters,
        )
        added = [values for values in new_partitions if values in data]
        action = "unchanged"
        object_count = parameters["objectCount"]
        recounted = existing is not None and existing.parameters.get("objectCount") != object_count
        if existing is None or schema_changed or added or recounted:
            table_input = {
                "Name": name, "TableType": "EXTERNAL_TABLE", "Parameters": parameters,
                "StorageDescriptor": descriptor, "PartitionKeys": [k.to_glue() for k in partition_keys],
            }
            action = catalog.put_table(glue, database, table_input)

        partition_descriptor = {key: value for key, value in descriptor.items() if key != "Location"}
        catalog.create_partitions(glue, database, name, (
            catalog.partition_input(values, partition_descriptor, _partition_location(path, listing, values),
                                    _partition_parameters(parameters))
            for values in added
        ))
        updated = 0
        if schema_changed and settings.partitions_inherit_from_table:
            updated = self._inherit_schema(glue, database, name, descriptor["Columns"])
        missing = [values for values in registered if values not in data]
        if missing and settings.delete_behavior == "DELETE_FROM_DATABASE":
            catalog.delete_partitions(glue, database, name, missing)
        elif missing:
            messages.append(f"{name}: {len(missing)} partition(s) without objects kept "
                            f"(DeleteBehavior {settings.delete_behavior})")
        return CrawledTable(
            name=name, action=action, location=as_folder(path), columns=tuple(columns),
            partition_keys=partition_keys, partitions_added=tuple(added), partitions_updated=updated,
            partitions_missing=len(missing), partitions_total=len(registered) + len(added),
            schema_changed=schema_changed or existing is None,
        ), samples

    def _choose_samples(self, listing: TargetListing, new_partitions: list[tuple[str, ...]]
                        ) -> list[S3Object]:
        """A few objects of every new partition (newest partitions first), then the most recently written
        others: new columns arrive with new data, so the sample follows the data's arrival."""
        chosen: dict[str, S3Object] = {}
        for values in new_partitions:
            for obj in listing.data[values][-self.samples_per_new_partition:]:
                chosen.setdefault(obj.key, obj)
                if len(chosen) >= self.max_sampled_objects:
                    return list(chosen.values())
        others = [o for objects in listing.data.values() for o in objects if o.key not in chosen]
        others.sort(key=lambda o: (o.last_modified is not None, o.last_modified, o.key), reverse=True)
        for obj in others[: min(self.recent_samples, self.max_sampled_objects - len(chosen))]:
            chosen[obj.key] = obj
        return list(chosen.values())

    def _read_samples(self, bucket: str, objects: list[S3Object], json_path: str) -> list[Sample]:
        if not objects:
            return []
        s3 = self.target.client("s3")
        def read(obj: S3Object) -> Sample:
            return read_sample(s3, bucket, obj, self.sample_bytes, json_path, self.sample_records)

        with ThreadPoolExecutor(max_workers=self.read_workers) as pool:
            return list(pool.map(read, objects))

    def _inherit_schema(self, glue: Any, database: str, name: str, columns: list[dict[str, str]]) -> int:
        """AddOrUpdateBehavior InheritFromTable: existing partitions take the table's new columns."""
        stale = [item for item in catalog.partition_inputs_of(glue, database, name)
                 if item.get("StorageDescriptor", {}).get("Columns") != columns]
        for item in stale:
            item["StorageDescriptor"] = {**item.get("StorageDescriptor", {}), "Columns": columns}
        return catalog.update_partitions(glue, database, name, stale)


def read_sample(s3: Any, bucket: str, obj: S3Object, limit: int, json_path: str = "$",
                max_records: int = 500) -> Sample:
    """The records in the first `limit` bytes of one object (gzip or plain JSON lines), at most
    `max_records` of them: the schema shows in the first records, parsing more only costs time."""
    sample = Sample(obj)
    extra = {"Range": f"bytes=0-{limit - 1}"} if obj.size > limit else {}
    body = s3.get_object(Bucket=bucket, Key=obj.key, **extra)["Body"].read()
    sample.bytes_read = len(body)
    truncated = obj.size > len(body)
    if body[:2] == GZIP_MAGIC:
        sample.gzip = True
        try:
            body, complete = _gunzip_head(body, limit * 16)
        except zlib.error:
            sample.skip_reason = "bad_gzip"
            return sample
        truncated = truncated or not complete
    lines = body.split(b"\n")
    if truncated:
        lines = lines[:-1]  # the last line was cut by the byte limit
    bad_lines = 0
    for line in lines:
        if len(sample.records) >= max_records:
            break
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:  # includes UnicodeDecodeError: binary junk
            bad_lines += 1
            continue
        records = value if json_path == "$[*]" and isinstance(value, list) else [value]
        for record in records:
            if isinstance(record, dict):
                sample.records.append(record)
            else:
                bad_lines += 1
    if not sample.records:
        sample.skip_reason = "not_json" if bad_lines else "empty_content"
    return sample


def _gunzip_head(data: bytes, max_output: int) -> tuple[bytes, bool]:
    """Decompress what we have of a (possibly multi-member) gzip object; True if it ended cleanly."""
    output = bytearray()
    while data:
        decompressor = zlib.decompressobj(wbits=31)
        output += decompressor.decompress(data, max_output - len(output))
        if not decompressor.eof:
            return bytes(output), False
        data = decompressor.unused_data
    return bytes(output), True


def _not_data_reason(obj: S3Object, relative: str, excluded: Iterable[re.Pattern[str]]) -> str | None:
    if relative == "" or obj.key.endswith("/") or obj.name.endswith("$folder$"):
        return "folder_marker"
    if any(pattern.fullmatch(relative) for pattern in excluded):
        return "excluded"
    if obj.name.startswith(("_", ".")):  # _SUCCESS, .crc ...: Hive/Athena ignore these too
        return "hidden"
    if obj.name.endswith(".tmp"):
        return "temporary"
    if obj.size == 0:
        return "empty"
    return None


def _partition_key(folder: str, index: int) -> str:
    key, sep, _ = folder.partition("=")
    return key.lower() if sep and key else f"partition_{index}"  # Glue's names for non-Hive folders


def _partition_value(folder: str) -> str:
    key, sep, value = folder.partition("=")
    return value if sep and key else folder


def _partition_location(path: str, listing: TargetListing, values: tuple[str, ...]) -> str:
    """The folder of a partition, from any of its objects' keys (values may have been URL-encoded)."""
    key = listing.data[values][0].key
    return f"s3://{split_s3_url(path)[0]}/" + key.rsplit("/", 1)[0] + "/"


def _table_parameters(
    crawler_name: str,
    data: dict[tuple[str, ...], list[S3Object]],
    samples: list[Sample],
    exclusions: tuple[str, ...],
) -> dict[str, str]:
    """The table parameters a Glue crawl sets on a JSON table (record count estimated from the sample)."""
    objects = [o for group in data.values() for o in group]
    total_bytes = sum(o.size for o in objects)
    good = [s for s in samples if not s.skip_reason]
    sampled_records = sum(len(s.records) for s in good)
    sampled_bytes = sum(s.bytes_read for s in good)
    gzipped = sum(1 for o in objects if o.key.endswith(".gz"))
    parameters = {
        "classification": "json",
        "compressionType": "gzip" if objects and gzipped * 2 >= len(objects) else "none",
        "typeOfData": "file",
        "objectCount": str(len(objects)),
        "sizeKey": str(total_bytes),
        "recordCount": str(round(total_bytes * sampled_records / sampled_bytes) if sampled_bytes else 0),
        "averageRecordSize": str(round(sampled_bytes / sampled_records) if sampled_records else 0),
        "CrawlerSchemaDeserializerVersion": "1.0",
        "CrawlerSchemaSerializerVersion": "1.0",
        "UPDATED_BY_CRAWLER": crawler_name,
    }
    if exclusions:
        parameters["exclusions"] = json.dumps(list(exclusions))
    return parameters


def _partition_parameters(table_parameters: dict[str, str]) -> dict[str, str]:
    keep = ("classification", "compressionType", "typeOfData", "CrawlerSchemaDeserializerVersion",
            "CrawlerSchemaSerializerVersion", "UPDATED_BY_CRAWLER")
    return {key: table_parameters[key] for key in keep}


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Glue exclusion globs: `**` crosses folders, `*` and `?` stay within one, `{a,b}` alternates."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            end = pattern.find("}", i)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1:end].split(",")) + ")")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))
