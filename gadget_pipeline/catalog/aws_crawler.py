"""The deployed Glue crawler on AWS: start it, wait for it, report what it changed.

Glue reports counts (get_crawler_metrics) but not which partitions it added, so the report diffs the
catalog before and after the crawl (tables under the crawler's S3 targets and their partition values).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.catalog import glue as catalog
from gadget_pipeline.catalog.crawler import CrawledTable, Crawler, CrawlerError, CrawlReport
from gadget_pipeline.catalog.s3 import as_folder

_CLOCK_SKEW = timedelta(seconds=30)  # our clock vs Glue's, when matching LastCrawl to our start


@dataclass(frozen=True)
class _TableSnapshot:
    table: catalog.GlueTable
    update_time: Any
    partitions: frozenset[tuple[str, ...]]


class AwsGlueCrawler(Crawler):
    def __init__(
        self,
        target: AwsTarget,
        crawler_name: str,
        *,
        timeout_seconds: float = 1800,
        poll_seconds: float = 15,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.crawler_name = crawler_name
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self._clock = clock

    def crawl(self) -> CrawlReport:
        glue = self.target.client("glue")
        started = self._clock()
        crawler = self._get_crawler(glue)
        database = crawler["DatabaseName"]
        paths = [as_folder(t["Path"]) for t in crawler["Targets"].get("S3Targets", [])]
        before = self._snapshot(glue, database, paths)
        requested_at = datetime.now(UTC)
        self._start(glue, started)
        finished = self._wait_until_ready(glue, started, requested_at)
        last_crawl = finished.get("LastCrawl", {})
        after = self._snapshot(glue, database, paths)
        message = last_crawl.get("ErrorMessage", "")
        metrics = self._metrics(glue)
        if metrics:
            counts = (f"Glue metrics: tables created {metrics.get('TablesCreated', 0)}, updated "
                      f"{metrics.get('TablesUpdated', 0)}, deleted {metrics.get('TablesDeleted', 0)}")
            message = f"{message}; {counts}" if message else counts
        return CrawlReport(
            crawler_name=self.crawler_name,
            status=last_crawl.get("Status", "FAILED"),
            database=database,
            tables=tuple(_table_changes(before, after)),
            duration_seconds=self._clock() - started,
            message=message,
        )

    def _get_crawler(self, glue: Any) -> dict[str, Any]:
        try:
            return glue.get_crawler(Name=self.crawler_name)["Crawler"]
        except glue.exceptions.EntityNotFoundException:
            raise CrawlerError(f"crawler {self.crawler_name!r} not found: deploy the stack first") from None

    def _start(self, glue: Any, started: float) -> None:
        """Start a crawl; if one is already running, wait for it and start ours (it may predate our data)."""
        for _ in range(2):
            try:
                glue.start_crawler(Name=self.crawler_name)
                return
            except glue.exceptions.CrawlerRunningException:
                self._wait_until_ready(glue, started, None)
        raise CrawlerError(f"crawler {self.crawler_name} kept running; try again later")

    def _wait_until_ready(self, glue: Any, started: float, requested_at: datetime | None) -> dict[str, Any]:
        """Poll get_crawler until it is READY again (and, for our own crawl, its LastCrawl is ours)."""
        left_ready = False
        while True:
            crawler = glue.get_crawler(Name=self.crawler_name)["Crawler"]
            state = crawler.get("State")
            left_ready = left_ready or state != "READY"
            ours = requested_at is None or left_ready or _crawl_is_ours(crawler, requested_at)
            if state == "READY" and ours:
                return crawler
            if self._clock() - started > self.timeout_seconds:
                raise CrawlerError(
                    f"crawler {self.crawler_name} still {state} after {self.timeout_seconds:.0f}s"
                )
            self._sleep(self.poll_seconds)

    def _metrics(self, glue: Any) -> dict[str, Any]:
        try:
            response = glue.get_crawler_metrics(CrawlerNameList=[self.crawler_name])
        except (ClientError, BotoCoreError):  # metrics are a nicety: the catalog diff is the report
            return {}
        metrics = response.get("CrawlerMetricsList", [])
        return metrics[0] if metrics else {}

    @staticmethod
    def _snapshot(glue: Any, database: str, paths: list[str]) -> dict[str, _TableSnapshot]:
        snapshot: dict[str, _TableSnapshot] = {}
        try:
            names = catalog.table_names(glue, database)
        except glue.exceptions.EntityNotFoundException:
            return snapshot
        for name in names:
            table = catalog.get_table(glue, database, name)
            if table is None or not any(as_folder(table.location).startswith(path) for path in paths):
                continue
            partitions = frozenset(p.values for p in catalog.get_partitions(glue, database, name))
            snapshot[name] = _TableSnapshot(table, table.raw.get("UpdateTime"), partitions)
        return snapshot


def _crawl_is_ours(crawler: dict[str, Any], requested_at: datetime) -> bool:
    start = crawler.get("LastCrawl", {}).get("StartTime")
    return isinstance(start, datetime) and start >= requested_at - _CLOCK_SKEW


def _table_changes(before: dict[str, _TableSnapshot], after: dict[str, _TableSnapshot]) -> list[CrawledTable]:
    changes = []
    for name, now in sorted(after.items()):
        previous = before.get(name)
        added = sorted(now.partitions - previous.partitions) if previous else sorted(now.partitions)
        schema_changed = previous is None or previous.table.all_columns != now.table.all_columns
        if previous is None:
            action = "created"
        elif schema_changed or added or previous.update_time != now.update_time:
            action = "updated"
        else:
            action = "unchanged"
        changes.append(CrawledTable(
            name=name, action=action, location=now.table.location, columns=now.table.columns,
            partition_keys=now.table.partition_keys, partitions_added=tuple(added),
            partitions_missing=len(previous.partitions - now.partitions) if previous else 0,
            partitions_total=len(now.partitions), schema_changed=schema_changed,
        ))
    return changes
