"""Deploy infra/template.yaml onto a real moto server, then check every resource through the service APIs."""

from __future__ import annotations

import json

import pytest

from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.deploy import template
from gadget_pipeline.deploy.local import deploy_local
from gadget_pipeline.stack import local_resource_record, stack_outputs

TEMPLATE = template.load_template()
PARAMS = {name: spec.get("Default") for name, spec in TEMPLATE["Parameters"].items()}
DESTINATION = TEMPLATE["Resources"]["DeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]


def test_every_resource_exists_with_the_template_settings(aws: AwsTarget, deployed: dict[str, str]) -> None:
    outputs = deployed
    assert stack_outputs(aws) == outputs

    table = aws.client("dynamodb").describe_table(TableName=outputs["TableName"])["Table"]
    assert outputs["TableName"] == PARAMS["TableName"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["KeySchema"] == [{"AttributeName": "order_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["LatestStreamArn"] == outputs["TableStreamArn"]

    stream = aws.client("kinesis").describe_stream_summary(StreamName=outputs["KinesisStreamName"])
    assert stream["StreamDescriptionSummary"]["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    assert stream["StreamDescriptionSummary"]["EncryptionType"] == "KMS"

    pipe = aws.client("pipes").describe_pipe(Name=outputs["PipeName"])
    assert pipe["Source"] == outputs["TableStreamArn"]
    assert pipe["Target"] == outputs["KinesisStreamArn"]
    assert pipe["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"] == "$.dynamodb.Keys.order_id.S"
    source = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert source["BatchSize"] == int(PARAMS["PipeBatchSize"])
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["DeadLetterConfig"]["Arn"] == outputs["PipeDeadLetterQueueArn"]
    assert pipe["RoleArn"].endswith(":role/gadget-pipeline-pipe")

    firehose = aws.client("firehose").describe_delivery_stream(
        DeliveryStreamName=outputs["DeliveryStreamName"]
    )
    description = firehose["DeliveryStreamDescription"]
    assert (
        description["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"]
        == outputs["KinesisStreamArn"]
    )
    s3_destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3_destination["BucketARN"] == f"arn:aws:s3:::{outputs['BucketName']}"
    assert s3_destination["Prefix"] == DESTINATION["Prefix"]
    assert s3_destination["Prefix"].startswith("raw/gadget_orders_cdc/year=!{timestamp:yyyy}/month=")
    assert s3_destination["ErrorOutputPrefix"] == DESTINATION["ErrorOutputPrefix"]
    local_overrides = json.loads((template.config.REPO_ROOT / "infra/parameters/local.json").read_text())
    assert s3_destination["BufferingHints"] == {
        "IntervalInSeconds": int(local_overrides["BufferingIntervalSeconds"]),
        "SizeInMBs": int(local_overrides["BufferingSizeMB"]),
    }
    processor = s3_destination["ProcessingConfiguration"]["Processors"][0]
    lambda_arn = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}["LambdaArn"]
    function = aws.client("lambda").get_function_configuration(FunctionName=outputs["TransformFunctionName"])
    assert lambda_arn == function["FunctionArn"]
    assert function["Handler"] == "handler.handler" and function["Runtime"] == "python3.11"

    crawler = aws.client("glue").get_crawler(Name=outputs["CrawlerName"])["Crawler"]
    assert crawler["Targets"]["S3Targets"] == [
        {"Path": outputs["RawLocation"], "Exclusions": ["**/_*", "**.tmp"]}
    ]
    assert crawler["DatabaseName"] == outputs["GlueDatabaseName"]
    classifier = local_resource_record(aws, "CdcJsonClassifier")["JsonClassifier"]
    assert crawler["Classifiers"] == [classifier["Name"]] and classifier["JsonPath"] == "$"
    aws.client("glue").get_database(Name=outputs["GlueDatabaseName"])

    workgroup = aws.client("athena").get_work_group(WorkGroup=outputs["AthenaWorkGroupName"])["WorkGroup"]
    configuration = workgroup["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == int(PARAMS["AthenaBytesScannedCutoff"])
    assert configuration["ResultConfiguration"]["OutputLocation"] == outputs["AthenaResultsLocation"]
    assert configuration["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"

    s3 = aws.client("s3")
    bucket = outputs["BucketName"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    lifecycle = {rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert lifecycle["expire-error-records"]["Filter"]["Prefix"] == "errors/"
    assert lifecycle["expire-error-records"]["Expiration"]["Days"] == int(PARAMS["ErrorRetentionDays"])
    # TLS-only is recorded, not applied: the local endpoint is plain HTTP and moto enforces bucket policies.
    policy = local_resource_record(aws, "DataBucketPolicy")["PolicyDocument"]
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    s3.put_object(Bucket=bucket, Key="raw/probe", Body=b"x")

    iam = aws.client("iam")
    for role in ("pipe", "transform", "firehose", "crawler"):
        assert iam.list_role_policies(RoleName=f"gadget-pipeline-{role}")["PolicyNames"]


def test_second_deploy_is_a_no_op(aws: AwsTarget, deployed: dict[str, str]) -> None:
    before = aws.client("dynamodb").describe_table(TableName=deployed["TableName"])["Table"][
        "CreationDateTime"
    ]
    lines: list[str] = []
    again = deploy_local(aws, progress=lines.append)
    assert again.changes == [] and not again.changed and lines == []
    assert again.outputs == deployed
    after = aws.client("dynamodb").describe_table(TableName=deployed["TableName"])["Table"][
        "CreationDateTime"
    ]
    assert before == after


def test_a_changed_parameter_replaces_only_what_uses_it(aws: AwsTarget, deployed: dict[str, str]) -> None:
    result = deploy_local(aws, parameters={"BufferingIntervalSeconds": "1"}, progress=lambda _: None)
    assert result.changes == [("DeliveryStream", "replaced")]
    firehose = aws.client("firehose").describe_delivery_stream(
        DeliveryStreamName=deployed["DeliveryStreamName"]
    )
    hints = firehose["DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert hints["BufferingHints"]["IntervalInSeconds"] == 1


def test_bad_parameter_is_refused_before_anything_changes(aws: AwsTarget) -> None:
    with pytest.raises(template.TemplateError, match="CompressionFormat"):
        deploy_local(aws, parameters={"CompressionFormat": "ZIP"}, progress=lambda _: None)
    assert aws.client("dynamodb").list_tables()["TableNames"] == []


def test_cli_deploy_reports_changes_then_no_changes(
    aws: AwsTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    from gadget_pipeline.cli import main

    assert main(["deploy", "--target", "local"]) == 0
    first = capsys.readouterr()
    assert "deployed stack gadget-pipeline" in first.out and "creating OrdersTable" in first.err
    assert main(["deploy", "--target", "local"]) == 0
    second = capsys.readouterr()
    assert "no changes" in second.out and "BucketName" in second.out and second.err == ""
