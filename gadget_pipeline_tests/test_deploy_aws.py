"""The AWS path without AWS: the Lambda zip, and the change-set call sequence against botocore's Stubber."""

from __future__ import annotations

import io
import re
import shlex
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from gadget_pipeline import config
from gadget_pipeline.deploy import package
from gadget_pipeline.deploy.aws import AwsDeployError, deploy_aws

OUTPUTS = [{"OutputKey": "BucketName", "OutputValue": "my-cdc-bucket"}]


def _clients():
    kwargs = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    return boto3.client("cloudformation", **kwargs), boto3.client("s3", **kwargs)


def test_lambda_zip_has_the_handler_at_its_root_and_is_reproducible() -> None:
    first, second = package.package_lambda(), package.package_lambda()
    assert first.content == second.content and first.s3_key == second.s3_key
    with zipfile.ZipFile(io.BytesIO(first.content)) as archive:
        names = archive.namelist()
        assert "handler.py" in names
        assert all("__pycache__" not in name and not name.startswith("lambdas/") for name in names)
        source = (config.LAMBDA_SOURCE_DIR / "handler.py").read_text()
        assert archive.read("handler.py").decode() == source
    assert re.fullmatch(r"lambda/gadget_sales_transform-[0-9a-f]{16}\.zip", first.s3_key)


def test_lambda_zip_changes_with_the_code(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return event\n")
    before = package.package_lambda(tmp_path)
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    assert package.package_lambda(tmp_path).s3_key != before.s3_key
    (tmp_path / "handler.py").unlink()
    with pytest.raises(config.ConfigError, match="no handler.py"):
        package.package_lambda(tmp_path)


def _stub_upload(s3_stub: Stubber, key: str) -> None:
    s3_stub.add_client_error(
        "head_object", "404", http_status_code=404, expected_params={"Bucket": "artifacts", "Key": key}
    )
    s3_stub.add_response("put_object", {}, {"Bucket": "artifacts", "Key": key, "Body": ANY})


def _stacks(status: str, **extra: object) -> dict:
    """A describe_stacks answer for stack 'gp' in one status."""
    return {"Stacks": [{"StackName": "gp", "StackStatus": status, "CreationTime": "2026-01-01", **extra}]}


def _deploy(cloudformation, s3, parameters: dict | None = None, progress=lambda _: None):
    return deploy_aws(
        cloudformation,
        s3,
        stack_name="gp",
        artifact_bucket="artifacts",
        parameters=parameters or {},
        progress=progress,
        waiter_delay=0,
    )


def test_create_stack_through_a_change_set() -> None:
    cloudformation, s3 = _clients()
    key = package.package_lambda().s3_key
    with Stubber(cloudformation) as cfn_stub, Stubber(s3) as s3_stub:
        _stub_upload(s3_stub, key)
        cfn_stub.add_client_error("describe_stacks", "ValidationError", "Stack with id gp does not exist")
        cfn_stub.add_response(
            "create_change_set",
            {"Id": "cs-arn"},
            {
                "StackName": "gp",
                "ChangeSetName": ANY,
                "ChangeSetType": "CREATE",
                "TemplateBody": ANY,
                "Parameters": ANY,
                "Capabilities": ["CAPABILITY_NAMED_IAM"],
                "Tags": ANY,
            },
        )
        cfn_stub.add_response(
            "describe_change_set", {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"}
        )
        cfn_stub.add_response(
            "describe_change_set",
            {
                "Status": "CREATE_COMPLETE",
                "Changes": [
                    {
                        "Type": "Resource",
                        "ResourceChange": {
                            "Action": "Add",
                            "LogicalResourceId": "OrdersTable",
                            "ResourceType": "AWS::DynamoDB::Table",
                        },
                    }
                ],
            },
        )
        cfn_stub.add_response("execute_change_set", {}, {"StackName": "gp", "ChangeSetName": ANY})
        complete = _stacks("CREATE_COMPLETE", Outputs=OUTPUTS)
        cfn_stub.add_response("describe_stacks", complete)
        cfn_stub.add_response("describe_stacks", complete)
        lines: list[str] = []
        result = _deploy(cloudformation, s3, {"BucketName": "my-cdc-bucket"}, lines.append)
        cfn_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    assert result.change_set_type == "CREATE" and result.changed
    assert result.outputs == {"BucketName": "my-cdc-bucket"}
    assert any("Add" in line and "OrdersTable" in line for line in lines)


def test_unchanged_stack_deletes_the_empty_change_set() -> None:
    cloudformation, s3 = _clients()
    key = package.package_lambda().s3_key
    with Stubber(cloudformation) as cfn_stub, Stubber(s3) as s3_stub:
        s3_stub.add_response("head_object", {}, {"Bucket": "artifacts", "Key": key})
        cfn_stub.add_response(
            "describe_stacks",
            _stacks("UPDATE_COMPLETE"),
        )
        cfn_stub.add_response("create_change_set", {"Id": "cs-arn"})
        failed = {"Status": "FAILED", "StatusReason": "The submitted information didn't contain changes."}
        cfn_stub.add_response("describe_change_set", failed)
        cfn_stub.add_response("describe_change_set", failed)
        cfn_stub.add_response("delete_change_set", {}, {"StackName": "gp", "ChangeSetName": ANY})
        cfn_stub.add_response(
            "describe_stacks",
            _stacks("UPDATE_COMPLETE", Outputs=OUTPUTS),
        )
        result = _deploy(cloudformation, s3)
        cfn_stub.assert_no_pending_responses()
    assert result.change_set_type == "UPDATE" and not result.changed


def test_rolled_back_stack_is_a_clear_error() -> None:
    cloudformation, s3 = _clients()
    key = package.package_lambda().s3_key
    with Stubber(cloudformation) as cfn_stub, Stubber(s3) as s3_stub:
        s3_stub.add_response("head_object", {}, {"Bucket": "artifacts", "Key": key})
        cfn_stub.add_response(
            "describe_stacks",
            _stacks("ROLLBACK_COMPLETE"),
        )
        with pytest.raises(AwsDeployError, match="ROLLBACK_COMPLETE; delete it"):
            _deploy(cloudformation, s3)


def test_readme_aws_commands_parse_with_the_real_cli() -> None:
    """The README's AWS steps use flags the command really has."""
    from gadget_pipeline.cli import build_parser

    readme = (config.REPO_ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(?:\.venv/bin/)?gadget-pipeline (deploy --target aws[^\n]*)$", readme, re.M)
    assert commands, "README documents `gadget-pipeline deploy --target aws ...`"
    for command in commands:
        args = build_parser().parse_args(shlex.split(command.replace("\\", "")))
        assert args.target == "aws" and args.artifact_bucket and args.bucket
