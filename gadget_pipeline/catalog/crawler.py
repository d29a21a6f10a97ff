"""The crawler: keeps the Glue table of the raw CDC files and its partitions in step with S3.

`crawler_for(target).crawl()` runs the deployed Glue crawler on AWS (AwsGlueCrawler) and, on the local
moto server, where a crawler never creates tables, our own faithful implementation of it
(LocalGlueCrawler). Both read their settings from the deployed crawler and return the same CrawlReport.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog.glue import Column
from gadget_pipeline.config import ConfigError


class CrawlerError(ConfigError):
    """The crawl could not run or did not finish; the message says why."""


@dataclass(frozen=True)
class CrawledTable:
    """What one crawl did to one table."""

    name: str
    action: str  # "created" | "updated" | "unchanged"
    location: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    partitions_added: tuple[tuple[str, ...], ...] = ()
    partitions_updated: int = 0
    partitions_missing: int = 0  # registered, but no object left under them (DeleteBehavior decides)
    partitions_total: int = 0
    schema_changed: bool = False

    @property
    def schema(self) -> dict[str, str]:
        return {column.name: column.type for column in self.columns + self.partition_keys}


@dataclass(frozen=True)
class CrawlReport:
    crawler_name: str
    status: str  # "SUCCEEDED" | "FAILED" | "CANCELLED"
    database: str
    tables: tuple[CrawledTable, ...]
    duration_seconds: float
    objects_seen: int | None = None  # None: AWS does not tell
    objects_sampled: int | None = None
    records_sampled: int | None = None
    objects_skipped: Mapping[str, int] = field(default_factory=dict)  # reason -> count
    message: str = ""

    @property
    def tables_created(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables if t.action == "created")

    @property
    def tables_updated(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables if t.action == "updated")

    @property
    def partitions_added(self) -> int:
        return sum(len(t.partitions_added) for t in self.tables)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def summary(self) -> str:
        skipped = sum(self.objects_skipped.values())
        seen = "?" if self.objects_seen is None else self.objects_seen
        text = (f"crawler {self.crawler_name}: {self.status} in {self.duration_seconds:.1f}s; "
                f"tables created {len(self.tables_created)}, updated {len(self.tables_updated)}; "
                f"partitions added {self.partitions_added}; objects seen {seen}, skipped {skipped}")
        return f"{text}; {self.message}" if self.message else text


def table_name_for_path(path: str, table_prefix: str = "") -> str:
    """Glue's naming rule for a crawled folder: the include path's last segment (with the crawler's
    TablePrefix), lower-case, anything but letters, digits and '_' turned into '_'."""
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9_]", "_", (table_prefix + segment).lower())


class Crawler(ABC):
    """Runs one crawl of the deployed crawler and reports what changed in the catalog."""

    @abstractmethod
    def crawl(self) -> CrawlReport: ...


def crawler_for(target: AwsTarget, outputs: Mapping[str, str] | None = None) -> Crawler:
    """The deployed crawler (stack output CrawlerName) in the target's world."""
    if outputs is None:
        from gadget_pipeline.stack import stack_outputs

        outputs = stack_outputs(target)
    name = outputs["CrawlerName"]
    if target.is_local:
        from gadget_pipeline.catalog.local_crawler import LocalGlueCrawler

        return LocalGlueCrawler(target, name)
    from gadget_pipeline.catalog.aws_crawler import AwsGlueCrawler

    return AwsGlueCrawler(target, name)
