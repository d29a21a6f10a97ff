"""Dagster resources. One switch (GADGET_ENV) decides whether they talk to the local moto server or AWS;
assets, sensors and SQL never know which."""

import os
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.stack import stack_outputs


class AwsStackResource(dg.ConfigurableResource):
    """The deployed stack: which AWS (a moto endpoint or the real one) and the stack's outputs."""

    environment: str = "local"
    endpoint_url: str | None = None  # local only; None on AWS
    region: str = "us-east-1"
    stack_name: str = "gadget-pipeline"
    _target: AwsTarget | None = PrivateAttr(default=None)
    _outputs: dict[str, str] | None = PrivateAttr(default=None)

    @property
    def target(self) -> AwsTarget:
        if self._target is None:
            if self.environment == "local":
                endpoint = self.endpoint_url or os.environ.get("GADGET_AWS_ENDPOINT")
                if not endpoint:
                    from gadget_pipeline.aws import local_endpoint

                    endpoint = local_endpoint()
                self._target = AwsTarget(endpoint_url=endpoint, region=self.region)
            else:
                self._target = AwsTarget(endpoint_url=None, region=self.region)
        return self._target

    @property
    def outputs(self) -> dict[str, str]:
        if self._outputs is None:
            self._outputs = stack_outputs(self.target, self.stack_name)
        return self._outputs

    def client(self, service: str) -> Any:
        return self.target.client(service)

    def raw_prefix_template(self) -> str:
        """Firehose's deployed S3 prefix, e.g. raw/gadget_orders_cdc/year=!{timestamp:yyyy}/..."""
        description = self.client("firehose").describe_delivery_stream(
            DeliveryStreamName=self.outputs["DeliveryStreamName"]
        )["DeliveryStreamDescription"]
        return description["Destinations"][0]["ExtendedS3DestinationDescription"]["Prefix"]

    def error_prefix_template(self) -> str:
        description = self.client("firehose").describe_delivery_stream(
            DeliveryStreamName=self.outputs["DeliveryStreamName"]
        )["DeliveryStreamDescription"]
        return description["Destinations"][0]["ExtendedS3DestinationDescription"]["ErrorOutputPrefix"]


class AthenaResource(dg.ConfigurableResource):
    """Athena SQL: pyathena against the workgroup on AWS, DuckDB over the Glue catalog locally."""

    stack: AwsStackResource
    _engine: Any = PrivateAttr(default=None)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from gadget_pipeline.athena.engine import engine_for

            self._engine = engine_for(self.stack.target)
        return self._engine


class GlueCrawlerResource(dg.ConfigurableResource):
    """The crawler that keeps the raw table's schema and partitions current: Glue on AWS, ours locally."""

    stack: AwsStackResource

    def crawl(self) -> Any:
        from gadget_pipeline.catalog.crawler import crawler_for

        return crawler_for(self.stack.target).crawl()


class OrdersTableResource(dg.ConfigurableResource):
    """Read access to the DynamoDB source of truth, for reconciliation."""

    stack: AwsStackResource

    def scan_items(self) -> list[dict[str, Any]]:
        table = self.stack.outputs["TableName"]
        items: list[dict[str, Any]] = []
        paginator = self.stack.client("dynamodb").get_paginator("scan")
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        for page in paginator.paginate(TableName=table, ConsistentRead=True):
            items.extend({k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"])
        return items


def build_resources(environment: str | None = None) -> dict[str, Any]:
    """The single place where local and AWS differ."""
    environment = environment or config.gadget_env()
    # EnvVar keeps the value out of Dagster's stored config; without it, `local up`'s state file is used.
    endpoint = dg.EnvVar("GADGET_AWS_ENDPOINT") if os.environ.get("GADGET_AWS_ENDPOINT") else None
    stack = AwsStackResource(
        environment=environment,
        endpoint_url=endpoint if environment == "local" else None,
        region=config.region(),
        stack_name=config.stack_name(),
    )
    return {
        "stack": stack,
        "athena": AthenaResource(stack=stack),
        "crawler": GlueCrawlerResource(stack=stack),
        "orders_table": OrdersTableResource(stack=stack),
    }
