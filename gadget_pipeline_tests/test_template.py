"""infra/template.yaml: lints clean, least privilege, and the only place resource names are written."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from gadget_pipeline import config
from gadget_pipeline.deploy import template

TEMPLATE = template.load_template()


def test_cfn_lint_reports_no_errors() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(config.TEMPLATE_PATH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _policy_statements():
    for logical_id, resource in TEMPLATE["Resources"].items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield logical_id, statement


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_iam_is_least_privilege() -> None:
    statements = list(_policy_statements())
    assert statements
    for logical_id, statement in statements:
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        assert "*" not in actions, f"{logical_id} allows every action"
        assert not any(action.endswith(":*") for action in actions), f"{logical_id}: service-wide action"
        assert "*" not in resources, f"{logical_id} grants {actions} on every resource"


def test_every_resource_type_has_a_local_provisioner() -> None:
    from gadget_pipeline.deploy.local import PROVISIONERS

    types = {resource["Type"] for resource in TEMPLATE["Resources"].values()}
    assert types <= set(PROVISIONERS)


def test_resource_names_are_not_repeated_in_python() -> None:
    """Names live in the template; code reads them from stack outputs or deployed resources."""
    names = {
        str(spec["Default"])
        for spec in TEMPLATE["Parameters"].values()
        if isinstance(spec.get("Default"), str) and not spec["Default"].isupper()
    }
    offenders = []
    for path in (config.REPO_ROOT / "gadget_pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(config.REPO_ROOT)}:{node.lineno} {node.value!r}")
    assert not offenders, offenders


def _resolver(**parameters: str) -> template.Resolver:
    return template.Resolver(
        parameters={"Name": "n", **parameters},
        pseudo={"AWS::Region": "eu-west-1", "AWS::AccountId": "111"},
        physical_ids={"Bucket": "my-bucket"},
        attributes={"Bucket": {"Arn": "arn:aws:s3:::my-bucket"}},
        conditions={"IsProd": {"Fn::Equals": [{"Ref": "Name"}, "prod"]}},
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"Ref": "Name"}, "n"),
        ({"Ref": "Bucket"}, "my-bucket"),
        ({"Fn::GetAtt": ["Bucket", "Arn"]}, "arn:aws:s3:::my-bucket"),
        (
            {"Fn::Sub": "s3://${Bucket}/x/${AWS::Region}/${Bucket.Arn}/${!Literal}"},
            "s3://my-bucket/x/eu-west-1/arn:aws:s3:::my-bucket/${Literal}",
        ),
        ({"Fn::Sub": ["${A}-${Name}", {"A": {"Ref": "AWS::AccountId"}}]}, "111-n"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Name"}]]}, "a-n"),
        ({"Fn::If": ["IsProd", "big", "small"]}, "small"),
        ({"K": {"Ref": "AWS::NoValue"}, "L": [1, {"Ref": "AWS::NoValue"}]}, {"L": [1]}),
        ("raw/year=!{timestamp:yyyy}/", "raw/year=!{timestamp:yyyy}/"),
    ],
)
def test_intrinsic_functions(value, expected) -> None:
    assert _resolver().resolve(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ({"Ref": "Nope"}, "neither a parameter nor a deployed resource"),
        ({"Fn::GetAtt": ["Bucket", "Nope"]}, "GetAtt Bucket.Nope"),
        ({"Fn::FindInMap": ["M", "a", "b"]}, "does not support Fn::FindInMap"),
    ],
)
def test_unsupported_or_unknown_references_are_clear_errors(value, message) -> None:
    with pytest.raises(template.TemplateError, match=message):
        _resolver().resolve(value)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"CompressionFormat": "ZIP"}, "is not one of"),
        ({"BufferingIntervalSeconds": "901"}, "above its maximum"),
        ({"BufferingSizeMB": "many"}, "is not a number"),
        ({"BucketName": "Bad_Bucket"}, "does not match"),
        ({"Typo": "1"}, "unknown template parameter"),
    ],
)
def test_parameter_constraints(given, message) -> None:
    given = {"LambdaCodeBucket": "b", "LambdaCodeKey": "k", **given}
    with pytest.raises(template.TemplateError, match=message):
        template.resolve_parameters(TEMPLATE, given)


def test_missing_required_parameter() -> None:
    with pytest.raises(template.TemplateError, match="LambdaCodeKey has no default"):
        template.resolve_parameters(TEMPLATE, {"LambdaCodeBucket": "b"})


def test_deployment_order_puts_dependencies_first() -> None:
    order = template.deployment_order(TEMPLATE["Resources"])
    assert order.index("OrdersTable") < order.index("OrdersCdcPipe")
    assert order.index("CdcStream") < order.index("OrdersCdcPipe")
    assert order.index("TransformFunction") < order.index("DeliveryStream")
    assert order.index("DataBucket") < order.index("CdcCrawler")
    with pytest.raises(template.TemplateError, match="circular"):
        template.deployment_order(
            {
                "A": {"Properties": {"X": {"Ref": "B"}}},
                "B": {"Properties": {"X": {"Fn::GetAtt": ["A", "Arn"]}}},
            }
        )
