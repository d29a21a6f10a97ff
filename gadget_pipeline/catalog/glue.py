"""The Glue Data Catalog as the crawler and the Athena engines use it: tables, partitions, storage formats.

Only Glue API calls that behave the same on AWS and on moto are used, so whichever code writes the
catalog (the local crawler, the local engine's CTAS, the table swaps after a build) leaves exactly the
state a real crawl or a real Athena query would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gadget_pipeline.catalog.s3 import as_folder

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
HCATALOG_JSON_SERDE = "org.apache.hive.hcatalog.data.JsonSerDe"
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

PARTITION_BATCH = 100  # BatchCreatePartition / BatchUpdatePartition accept at most 100 entries
DELETE_PARTITION_BATCH = 25  # BatchDeletePartition accepts at most 25
_TABLE_INPUT_KEYS = (
    "Name", "Description", "Owner", "LastAccessTime", "LastAnalyzedTime", "Retention", "StorageDescriptor",
    "PartitionKeys", "ViewOriginalText", "ViewExpandedText", "TableType", "Parameters", "TargetTable",
)
_PARTITION_INPUT_KEYS = ("Values", "LastAccessTime", "StorageDescriptor", "Parameters", "LastAnalyzedTime")


class CatalogError(RuntimeError):
    """The Glue catalog refused a change; the message names the table."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str

    def to_glue(self) -> dict[str, str]:
        return {"Name": self.name, "Type": self.type}


@dataclass(frozen=True)
class Partition:
    values: tuple[str, ...]
    location: str


@dataclass
class GlueTable:
    """A table as stored in Glue, with the parts the engines need pulled out."""

    database: str
    name: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    location: str
    storage_format: str  # "json" | "parquet" | the SerDe library for anything else
    parameters: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Data columns then partition columns: the order Athena shows them in."""
        return self.columns + self.partition_keys

    @property
    def serde_parameters(self) -> dict[str, str]:
        return dict(self.raw.get("StorageDescriptor", {}).get("SerdeInfo", {}).get("Parameters", {}))

    @classmethod
    def from_glue(cls, table: dict[str, Any]) -> GlueTable:
        descriptor = table.get("StorageDescriptor", {})
        return cls(
            database=table["DatabaseName"],
            name=table["Name"],
            columns=_columns(descriptor.get("Columns", [])),
            partition_keys=_columns(table.get("PartitionKeys", [])),
            location=descriptor.get("Location", ""),
            storage_format=storage_format(descriptor),
            parameters=dict(table.get("Parameters", {})),
            raw=table,
        )


def _columns(items: list[dict[str, str]]) -> tuple[Column, ...]:
    return tuple(Column(item["Name"].lower(), item["Type"]) for item in items)


def storage_format(descriptor: dict[str, Any]) -> str:
    library = descriptor.get("SerdeInfo", {}).get("SerializationLibrary", "")
    input_format = descriptor.get("InputFormat", "")
    if library in (JSON_SERDE, HCATALOG_JSON_SERDE):
        return "json"
    if library == PARQUET_SERDE or input_format == PARQUET_INPUT_FORMAT:
        return "parquet"
    return library or input_format or "unknown"


def storage_descriptor(
    columns: Sequence[Column], location: str, storage: str, *, compressed: bool = False,
    serde_parameters: dict[str, str] | None = None, parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A StorageDescriptor for a JSON-lines or a Parquet table at a folder location."""
    if storage == "json":
        formats = {"InputFormat": TEXT_INPUT_FORMAT, "OutputFormat": TEXT_OUTPUT_FORMAT}
        serde = {"SerializationLibrary": JSON_SERDE, "Parameters": dict(serde_parameters or {})}
    elif storage == "parquet":
        formats = {"InputFormat": PARQUET_INPUT_FORMAT, "OutputFormat": PARQUET_OUTPUT_FORMAT}
        serde = {"SerializationLibrary": PARQUET_SERDE,
                 "Parameters": {"serialization.format": "1", **(serde_parameters or {})}}
    else:
        raise ValueError(f"unsupported storage {storage!r}")
    return {
        "Columns": [column.to_glue() for column in columns],
        "Location": as_folder(location),
        **formats,
        "Compressed": compressed,
        "NumberOfBuckets": -1,
        "SerdeInfo": serde,
        "BucketColumns": [],
        "SortColumns": [],
        "Parameters": dict(parameters or {}),
        "StoredAsSubDirectories": False,
    }


def get_table(glue: Any, database: str, name: str) -> GlueTable | None:
    try:
        return GlueTable.from_glue(glue.get_table(DatabaseName=database, Name=name)["Table"])
    except glue.exceptions.EntityNotFoundException:
        return None


def table_names(glue: Any, database: str) -> list[str]:
    names: list[str] = []
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
        names.extend(table["Name"] for table in page["TableList"])
    return names


def get_partitions(glue: Any, database: str, name: str, expression: str | None = None) -> list[Partition]:
    kwargs: dict[str, Any] = {"DatabaseName": database, "TableName": name}
    if expression:
        kwargs["Expression"] = expression
    partitions: list[Partition] = []
    for page in glue.get_paginator("get_partitions").paginate(**kwargs):
        for item in page["Partitions"]:
            location = item.get("StorageDescriptor", {}).get("Location", "")
            partitions.append(Partition(tuple(item["Values"]), location))
    return partitions


def table_input(table: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A TableInput from a GetTable answer (drops the read-only keys), with some keys replaced."""
    result = {key: table[key] for key in _TABLE_INPUT_KEYS if key in table}
    result.update(changes)
    return result


def put_table(glue: Any, database: str, table: dict[str, Any]) -> str:
    """Create the table, or replace its definition if it exists: 'created' | 'updated'."""
    try:
        glue.create_table(DatabaseName=database, TableInput=table)
        return "created"
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=database, TableInput=table)
        return "updated"


def delete_table(glue: Any, database: str, name: str) -> bool:
    try:
        glue.delete_table(DatabaseName=database, Name=name)
        return True
    except glue.exceptions.EntityNotFoundException:
        return False


def partition_input(values: Sequence[str], descriptor: dict[str, Any], location: str,
                    parameters: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Values": list(values),
        "StorageDescriptor": {**descriptor, "Location": as_folder(location)},
        "Parameters": dict(parameters or {}),
    }


def create_partitions(glue: Any, database: str, name: str, partitions: Iterable[dict[str, Any]]) -> int:
    """BatchCreatePartition in batches of 100; partitions that already exist are left as they are."""
    pending = list(partitions)
    created = 0
    for start in range(0, len(pending), PARTITION_BATCH):
        batch = pending[start:start + PARTITION_BATCH]
        errors = glue.batch_create_partition(DatabaseName=database, TableName=name,
                                             PartitionInputList=batch).get("Errors", [])
        real = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]
        if real:
            detail = real[0].get("ErrorDetail", {})
            raise CatalogError(f"cannot add partition {real[0].get('PartitionValues')} to {database}.{name}: "
                               f"{detail.get('ErrorCode')}: {detail.get('ErrorMessage')}")
        created += len(batch) - len(errors)
    return created


def update_partitions(glue: Any, database: str, name: str, partitions: Iterable[dict[str, Any]]) -> int:
    pending = list(partitions)
    if not pending:
        return 0
    for start in range(0, len(pending), PARTITION_BATCH):
        entries = [{"PartitionValueList": p["Values"], "PartitionInput": p}
                   for p in pending[start:start + PARTITION_BATCH]]
        response = glue.batch_update_partition(DatabaseName=database, TableName=name, Entries=entries)
        errors = response.get("Errors")
        if errors:
            raise CatalogError(f"cannot update partitions of {database}.{name}: {errors[0]}")
    return len(pending)


def delete_partitions(glue: Any, database: str, name: str, values: Iterable[Sequence[str]]) -> int:
    pending = [{"Values": list(v)} for v in values]
    if not pending:
        return 0
    for start in range(0, len(pending), DELETE_PARTITION_BATCH):
        errors = glue.batch_delete_partition(DatabaseName=database, TableName=name,
                                             PartitionsToDelete=pending[start:start + DELETE_PARTITION_BATCH])
        if errors.get("Errors"):
            raise CatalogError(f"cannot delete partitions of {database}.{name}: {errors['Errors'][0]}")
    return len(pending)


def partition_inputs_of(glue: Any, database: str, name: str) -> list[dict[str, Any]]:
    """Every partition of a table as PartitionInputs (to copy them onto another table)."""
    inputs: list[dict[str, Any]] = []
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=name):
        for item in page["Partitions"]:
            inputs.append({key: item[key] for key in _PARTITION_INPUT_KEYS if key in item})
    return inputs
