"""The Glue catalog of the raw CDC files: the crawler (AWS or local) and the Glue helpers it shares."""

from gadget_pipeline.catalog.crawler import CrawledTable, Crawler, CrawlerError, CrawlReport, crawler_for

__all__ = ["CrawlReport", "CrawledTable", "Crawler", "CrawlerError", "crawler_for"]
