"""Gadget sales CDC data product: streaming ingest, Glue/Athena tables and their Dagster orchestration."""
