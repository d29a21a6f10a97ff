"""Deploy infra/template.yaml to AWS: package the transform, upload it, create or update the stack."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from gadget_pipeline import config
from gadget_pipeline.deploy import package, template

Progress = Callable[[str], None]
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class AwsDeployError(config.ConfigError):
    """The AWS deployment failed; the message carries CloudFormation's reason."""


@dataclass
class AwsDeployResult:
    stack_name: str
    change_set_type: str  # CREATE | UPDATE
    changed: bool
    outputs: dict[str, str] = field(default_factory=dict)


def stack_exists(cloudformation: Any, stack_name: str) -> bool:
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return False
        raise
    status = stack["StackStatus"]
    if status == "REVIEW_IN_PROGRESS":  # a first change set was never executed
        return False
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        raise AwsDeployError(
            f"stack {stack_name} is in {status}; delete it (aws cloudformation delete-stack) and deploy again"
        )
    return True


def deploy_aws(
    cloudformation: Any,
    s3: Any,
    *,
    stack_name: str,
    artifact_bucket: str,
    parameters: Mapping[str, str],
    progress: Progress = print,
    waiter_delay: int = 10,
) -> AwsDeployResult:
    lambda_package = package.package_lambda()
    if package.upload_package(s3, artifact_bucket, lambda_package):
        progress(
            f"uploaded s3://{artifact_bucket}/{lambda_package.s3_key} ({len(lambda_package.content)} bytes)"
        )
    else:
        progress(f"s3://{artifact_bucket}/{lambda_package.s3_key} is already uploaded")
    given = {**parameters, "LambdaCodeBucket": artifact_bucket, "LambdaCodeKey": lambda_package.s3_key}
    template.resolve_parameters(template.load_template(), given)  # fail fast on a bad value, before AWS does

    change_set_type = "UPDATE" if stack_exists(cloudformation, stack_name) else "CREATE"
    change_set_name = f"gadget-pipeline-{int(time.time())}"
    progress(f"creating {change_set_type} change set {change_set_name} for stack {stack_name}")
    cloudformation.create_change_set(
        StackName=stack_name,
        ChangeSetName=change_set_name,
        ChangeSetType=change_set_type,
        TemplateBody=template.template_body(),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in sorted(given.items())],
        Capabilities=CAPABILITIES,
        Tags=[{"Key": "product", "Value": "gadget-pipeline"}],
    )
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            StackName=stack_name, ChangeSetName=change_set_name, WaiterConfig={"Delay": waiter_delay}
        )
    except WaiterError:
        described = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set_name)
        reason = described.get("StatusReason", "")
        if any(marker in reason for marker in _NO_CHANGES):
            cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=change_set_name)
            progress("no changes: the stack already matches the template")
            return AwsDeployResult(stack_name, change_set_type, False, _outputs(cloudformation, stack_name))
        raise AwsDeployError(f"change set {change_set_name} failed: {reason}") from None

    described = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set_name)
    for change in described.get("Changes", []):
        detail = change.get("ResourceChange", {})
        progress(
            f"  {detail.get('Action', '?'):<8} {detail.get('LogicalResourceId')} "
            f"({detail.get('ResourceType')})"
        )
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName=change_set_name)
    waiter = "stack_create_complete" if change_set_type == "CREATE" else "stack_update_complete"
    progress(f"executing; waiting for {waiter.replace('_', ' ')}")
    try:
        cloudformation.get_waiter(waiter).wait(StackName=stack_name, WaiterConfig={"Delay": waiter_delay})
    except WaiterError as error:
        raise AwsDeployError(
            f"stack {stack_name} did not complete: {_last_failure(cloudformation, stack_name)}"
        ) from error
    return AwsDeployResult(stack_name, change_set_type, True, _outputs(cloudformation, stack_name))


def _outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def _last_failure(cloudformation: Any, stack_name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    for event in events:
        if event.get("ResourceStatus", "").endswith("FAILED"):
            return f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason')}"
    return "see the stack events in the CloudFormation console"
