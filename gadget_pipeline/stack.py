"""The deployed stack as the rest of the product sees it: its outputs and (locally) its resource record.

Names and settings are read from here or from the deployed resources themselves, never repeated in code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget

OUTPUTS_RECORD = "outputs"


def record_prefix(stack_name: str) -> str:
    return f"/gadget-pipeline/stacks/{stack_name}"


@dataclass
class ResourceRecord:
    resource_type: str
    physical_id: str
    attributes: dict[str, str]
    fingerprint: str
    properties: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ResourceRecord:
        return cls(**json.loads(text))


def read_resource_records(ssm: Any, stack_name: str) -> dict[str, ResourceRecord]:
    prefix = f"{record_prefix(stack_name)}/resources/"
    records: dict[str, ResourceRecord] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=True):
        for parameter in page["Parameters"]:
            records[parameter["Name"][len(prefix) :]] = ResourceRecord.from_json(parameter["Value"])
    return records


def stack_outputs(target: AwsTarget, stack_name: str | None = None) -> dict[str, str]:
    """The outputs of infra/template.yaml as deployed: CloudFormation on AWS, the stack record locally."""
    stack_name = stack_name or config.stack_name()
    if target.is_local:
        ssm = target.client("ssm")
        try:
            value = ssm.get_parameter(Name=f"{record_prefix(stack_name)}/{OUTPUTS_RECORD}")["Parameter"][
                "Value"
            ]
        except ssm.exceptions.ParameterNotFound:
            raise config.ConfigError(
                f"stack {stack_name!r} is not deployed on {target.endpoint_url}: "
                "run `gadget-pipeline deploy --target local`"
            ) from None
        return json.loads(value)
    cloudformation = target.client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except cloudformation.exceptions.ClientError as error:
        raise config.ConfigError(f"stack {stack_name!r} not found in AWS: {error}") from None
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def local_resource_record(
    target: AwsTarget, logical_id: str, stack_name: str | None = None
) -> dict[str, Any]:
    """Resolved properties of one locally deployed resource (for what moto cannot store, e.g. classifiers)."""
    stack_name = stack_name or config.stack_name()
    ssm = target.client("ssm")
    try:
        value = ssm.get_parameter(Name=f"{record_prefix(stack_name)}/resources/{logical_id}")["Parameter"][
            "Value"
        ]
    except ssm.exceptions.ParameterNotFound:
        raise config.ConfigError(f"{logical_id} is not deployed in local stack {stack_name!r}") from None
    return ResourceRecord.from_json(value).properties
