"""Provision infra/template.yaml onto the local moto server through the service APIs.

moto's own CloudFormation silently skips Firehose, Pipes, Glue and Athena resources (measured with moto
5.2.5), so this deployer plays CloudFormation's part: it resolves the template, creates the resources in
dependency order through each service's API, and keeps a stack record (physical id, attributes, resolved
properties and their fingerprint per resource, plus the outputs) in SSM on the same moto server. The
record lives and dies with the server's state, which makes a second deploy a no-op and lets a changed
property replace exactly the resources it touches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.deploy import package, template
from gadget_pipeline.stack import (
    OUTPUTS_RECORD,
    ResourceRecord,
    read_resource_records,
    record_prefix,
)

LOCAL_PARAMETERS_PATH = config.REPO_ROOT / "infra" / "parameters" / "local.json"
Progress = Callable[[str], None]


@dataclass
class DeployResult:
    changes: list[tuple[str, str]] = field(default_factory=list)  # (logical id, created|replaced|deleted)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def local_parameters(path: Path = LOCAL_PARAMETERS_PATH) -> dict[str, str]:
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {key: str(value) for key, value in raw.items() if not key.startswith("_")}


def artifact_bucket_name(stack_name: str) -> str:
    # Stands in for the pre-existing artifact bucket that `deploy --target aws` is given.
    return f"{stack_name}-artifacts"


def deploy_local(
    target: AwsTarget,
    *,
    parameters: Mapping[str, str] | None = None,
    stack_name: str | None = None,
    template_path: Path = config.TEMPLATE_PATH,
    progress: Progress = print,
) -> DeployResult:
    stack_name = stack_name or config.stack_name()
    tmpl = template.load_template(template_path)
    lambda_package = package.package_lambda()
    artifacts = artifact_bucket_name(stack_name)
    _ensure_bucket(target.client("s3"), artifacts, target.region)
    if package.upload_package(target.client("s3"), artifacts, lambda_package):
        progress(f"uploaded {lambda_package.s3_key} to s3://{artifacts}")
    given = {**local_parameters(), **(parameters or {})}
    given.update(LambdaCodeBucket=artifacts, LambdaCodeKey=lambda_package.s3_key)
    values = template.resolve_parameters(tmpl, given)

    pseudo = {
        **template.PSEUDO_PARAMETERS_LOCAL,
        "AWS::Region": target.region,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{target.region}:123456789012:stack/{stack_name}/local",
    }
    ssm = target.client("ssm")
    records = read_resource_records(ssm, stack_name)
    resources: dict[str, Any] = tmpl.get("Resources", {})
    resolver = template.Resolver(
        parameters=values,
        pseudo=pseudo,
        physical_ids={name: record.physical_id for name, record in records.items()},
        attributes={name: record.attributes for name, record in records.items()},
        conditions=tmpl.get("Conditions", {}),
    )
    result = DeployResult()
    for logical_id in template.deployment_order(resources):
        resource = resources[logical_id]
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        provisioner = PROVISIONERS.get(resource["Type"])
        if provisioner is None:
            raise template.TemplateError(f"{logical_id}: the local deployer cannot create {resource['Type']}")
        properties = resolver.resolve(resource.get("Properties", {}))
        digest = template.fingerprint(resource["Type"], properties)
        previous = records.get(logical_id)
        if previous is not None and previous.fingerprint == digest:
            continue
        context = _Context(target, stack_name, logical_id)
        if previous is not None:
            progress(f"replacing {logical_id} ({resource['Type']})")
            provisioner.delete(context, previous)
            action = "replaced"
        else:
            progress(f"creating {logical_id} ({resource['Type']})")
            action = "created"
        physical_id, attributes = provisioner.create(context, properties)
        record = ResourceRecord(resource["Type"], physical_id, attributes, digest, properties)
        _save(ssm, f"{record_prefix(stack_name)}/resources/{logical_id}", record.to_json())
        records[logical_id] = record
        resolver.physical_ids[logical_id] = physical_id
        resolver.attributes[logical_id] = attributes
        result.changes.append((logical_id, action))

    for logical_id in [name for name in reversed(list(records)) if name not in resources]:
        record = records.pop(logical_id)
        progress(f"deleting {logical_id} ({record.resource_type}), no longer in the template")
        PROVISIONERS[record.resource_type].delete(_Context(target, stack_name, logical_id), record)
        ssm.delete_parameter(Name=f"{record_prefix(stack_name)}/resources/{logical_id}")
        result.changes.append((logical_id, "deleted"))

    outputs = {name: str(resolver.resolve(spec["Value"])) for name, spec in tmpl.get("Outputs", {}).items()}
    outputs_name = f"{record_prefix(stack_name)}/{OUTPUTS_RECORD}"
    if result.changed or _read(ssm, outputs_name) != json.dumps(outputs, sort_keys=True):
        _save(ssm, outputs_name, json.dumps(outputs, sort_keys=True))
    result.outputs = outputs
    return result


def _save(ssm: Any, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="String", Tier="Advanced", Overwrite=True)


def _read(ssm: Any, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except s3.exceptions.ClientError:
        pass
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


# --------------------------------------------------------------------------- per resource type


@dataclass
class _Context:
    target: AwsTarget
    stack_name: str
    logical_id: str

    def client(self, service: str) -> Any:
        return self.target.client(service)

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.target.region}:123456789012:{resource}"


class Provisioner:
    def create(self, ctx: _Context, props: dict[str, Any]) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def delete(self, ctx: _Context, record: ResourceRecord) -> None:
        raise NotImplementedError


def _ints(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """CloudFormation passes numbers through as strings; the service APIs want ints."""
    return {key: (int(value) if key in keys else value) for key, value in mapping.items()}


class DynamoDbTable(Provisioner):
    def create(self, ctx, props):
        ddb = ctx.client("dynamodb")
        stream = props.get("StreamSpecification")
        kwargs: dict[str, Any] = {
            "TableName": props["TableName"],
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if stream:
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            kwargs["SSESpecification"] = {"Enabled": True}
        table = ddb.create_table(**kwargs)["TableDescription"]
        ddb.get_waiter("table_exists").wait(TableName=props["TableName"], WaiterConfig={"Delay": 1})
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=props["TableName"],
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return props["TableName"], attributes

    def delete(self, ctx, record):
        ddb = ctx.client("dynamodb")
        ddb.delete_table(TableName=record.physical_id)


class KinesisStream(Provisioner):
    def create(self, ctx, props):
        kinesis = ctx.client("kinesis")
        name = props["Name"]
        kwargs: dict[str, Any] = {"StreamName": name}
        if "StreamModeDetails" in props:
            kwargs["StreamModeDetails"] = props["StreamModeDetails"]
        if props.get("StreamModeDetails", {}).get("StreamMode") != "ON_DEMAND":
            kwargs["ShardCount"] = int(props.get("ShardCount", 1))
        kinesis.create_stream(**kwargs)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
        retention = int(props.get("RetentionPeriodHours", 24))
        if retention > 24:
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
        encryption = props.get("StreamEncryption")
        if encryption:
            kinesis.start_stream_encryption(
                StreamName=name, EncryptionType=encryption["EncryptionType"], KeyId=encryption["KeyId"]
            )
        arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        return name, {"Arn": arn}

    def delete(self, ctx, record):
        ctx.client("kinesis").delete_stream(StreamName=record.physical_id, EnforceConsumerDeletion=True)


class SqsQueue(Provisioner):
    _ATTRIBUTES = ("MessageRetentionPeriod", "KmsMasterKeyId", "VisibilityTimeout", "SqsManagedSseEnabled")

    def create(self, ctx, props):
        sqs = ctx.client("sqs")
        name = props.get("QueueName") or f"{ctx.stack_name}-{ctx.logical_id}"
        attributes = {
            key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
            for key in self._ATTRIBUTES
            if key in props
        }
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def delete(self, ctx, record):
        ctx.client("sqs").delete_queue(QueueUrl=record.physical_id)


class IamRole(Provisioner):
    def create(self, ctx, props):
        iam = ctx.client("iam")
        name = props.get("RoleName") or f"{ctx.stack_name}-{ctx.logical_id}"
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
            Description=props.get("Description", ""),
        )["Role"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        for policy_arn in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def delete(self, ctx, record):
        iam = ctx.client("iam")
        for policy in record.properties.get("Policies", []):
            iam.delete_role_policy(RoleName=record.physical_id, PolicyName=policy["PolicyName"])
        for policy_arn in record.properties.get("ManagedPolicyArns", []):
            iam.detach_role_policy(RoleName=record.physical_id, PolicyArn=policy_arn)
        iam.delete_role(RoleName=record.physical_id)


class S3Bucket(Provisioner):
    def create(self, ctx, props):
        s3 = ctx.client("s3")
        name = props["BucketName"]
        _ensure_bucket(s3, name, ctx.target.region)
        encryption = props.get("BucketEncryption")
        if encryption:
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                for rule in encryption["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
            )
        lifecycle = props.get("LifecycleConfiguration")
        if lifecycle:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in lifecycle["Rules"]]},
            )
        return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}

    def delete(self, ctx, record):
        # DeletionPolicy: Retain in the template; a replaced bucket keeps its data, as on AWS.
        return None


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape -> the S3 API's."""
    api: dict[str, Any] = {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        days = int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return api


class S3BucketPolicy(Provisioner):
    """The local AWS speaks plain HTTP on loopback, and moto enforces bucket policies (measured: a TLS-only
    deny turns every PutObject into 403). So statements that deny insecure transport are kept in the stack
    record but not applied when the endpoint is http://; everything else is applied as written."""

    def create(self, ctx, props):
        document = dict(props["PolicyDocument"])
        if (ctx.target.endpoint_url or "").startswith("http://"):
            document["Statement"] = [s for s in document["Statement"] if not _denies_insecure_transport(s)]
        if document["Statement"]:
            ctx.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
        return props["Bucket"], {}

    def delete(self, ctx, record):
        ctx.client("s3").delete_bucket_policy(Bucket=record.physical_id)


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition", {}).get("Bool", {})
    return statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false"


class LogGroup(Provisioner):
    def create(self, ctx, props):
        logs = ctx.client("logs")
        name = props["LogGroupName"]
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in props:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return name, {"Arn": ctx.arn("logs", f"log-group:{name}:*")}

    def delete(self, ctx, record):
        ctx.client("logs").delete_log_group(logGroupName=record.physical_id)


class LambdaFunction(Provisioner):
    def create(self, ctx, props):
        lam = ctx.client("lambda")
        kwargs: dict[str, Any] = {
            "FunctionName": props["FunctionName"],
            "Runtime": props["Runtime"],
            "Handler": props["Handler"],
            "Role": props["Role"],
            "Code": {"S3Bucket": props["Code"]["S3Bucket"], "S3Key": props["Code"]["S3Key"]},
            "Description": props.get("Description", ""),
            "Timeout": int(props.get("Timeout", 3)),
            "MemorySize": int(props.get("MemorySize", 128)),
        }
        for key in ("Environment", "TracingConfig"):
            if key in props:
                kwargs[key] = props[key]
        function = lam.create_function(**kwargs)
        if "ReservedConcurrentExecutions" in props:
            lam.put_function_concurrency(
                FunctionName=props["FunctionName"],
                ReservedConcurrentExecutions=int(props["ReservedConcurrentExecutions"]),
            )
        return props["FunctionName"], {"Arn": function["FunctionArn"]}

    def delete(self, ctx, record):
        ctx.client("lambda").delete_function(FunctionName=record.physical_id)


class Pipe(Provisioner):
    _NUMBERS = (
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "ParallelizationFactor",
    )

    def create(self, ctx, props):
        source = dict(props.get("SourceParameters", {}))
        if "DynamoDBStreamParameters" in source:
            source["DynamoDBStreamParameters"] = _ints(source["DynamoDBStreamParameters"], *self._NUMBERS)
        pipe = ctx.client("pipes").create_pipe(
            Name=props["Name"],
            Description=props.get("Description", ""),
            DesiredState=props.get("DesiredState", "RUNNING"),
            RoleArn=props["RoleArn"],
            Source=props["Source"],
            SourceParameters=source,
            Target=props["Target"],
            TargetParameters=props.get("TargetParameters", {}),
        )
        return props["Name"], {"Arn": pipe["Arn"]}

    def delete(self, ctx, record):
        ctx.client("pipes").delete_pipe(Name=record.physical_id)


class DeliveryStream(Provisioner):
    def create(self, ctx, props):
        destination = dict(props["ExtendedS3DestinationConfiguration"])
        destination["BufferingHints"] = _ints(destination["BufferingHints"], "IntervalInSeconds", "SizeInMBs")
        kwargs: dict[str, Any] = {
            "DeliveryStreamName": props["DeliveryStreamName"],
            "DeliveryStreamType": props.get("DeliveryStreamType", "DirectPut"),
            "ExtendedS3DestinationConfiguration": destination,
        }
        if "KinesisStreamSourceConfiguration" in props:
            kwargs["KinesisStreamSourceConfiguration"] = props["KinesisStreamSourceConfiguration"]
        arn = ctx.client("firehose").create_delivery_stream(**kwargs)["DeliveryStreamARN"]
        return props["DeliveryStreamName"], {"Arn": arn}

    def delete(self, ctx, record):
        ctx.client("firehose").delete_delivery_stream(DeliveryStreamName=record.physical_id)


class GlueDatabase(Provisioner):
    def create(self, ctx, props):
        ctx.client("glue").create_database(DatabaseInput=props["DatabaseInput"])
        return props["DatabaseInput"]["Name"], {}

    def delete(self, ctx, record):
        ctx.client("glue").delete_database(Name=record.physical_id)


class GlueClassifier(Provisioner):
    """moto 5.2.5 does not implement Glue classifiers (HTTP 500): the stack record is the classifier.

    The local crawler reads its settings from that record (gadget_pipeline.stack.local_resource_record).
    """

    def create(self, ctx, props):
        ((kind, settings),) = props.items()
        return settings["Name"], {}

    def delete(self, ctx, record):
        return None


class GlueCrawler(Provisioner):
    def create(self, ctx, props):
        kwargs = {
            key: props[key]
            for key in (
                "Name",
                "Role",
                "DatabaseName",
                "Description",
                "Targets",
                "Classifiers",
                "SchemaChangePolicy",
                "RecrawlPolicy",
                "Configuration",
                "TablePrefix",
                "Schedule",
            )
            if key in props
        }
        if isinstance(kwargs.get("Schedule"), dict):
            kwargs["Schedule"] = kwargs["Schedule"]["ScheduleExpression"]
        ctx.client("glue").create_crawler(**kwargs)
        return props["Name"], {}

    def delete(self, ctx, record):
        ctx.client("glue").delete_crawler(Name=record.physical_id)


class AthenaWorkGroup(Provisioner):
    def create(self, ctx, props):
        configuration = dict(props.get("WorkGroupConfiguration", {}))
        if "BytesScannedCutoffPerQuery" in configuration:
            configuration["BytesScannedCutoffPerQuery"] = int(configuration["BytesScannedCutoffPerQuery"])
        ctx.client("athena").create_work_group(
            Name=props["Name"], Description=props.get("Description", ""), Configuration=configuration
        )
        return props["Name"], {}

    def delete(self, ctx, record):
        ctx.client("athena").delete_work_group(WorkGroup=record.physical_id, RecursiveDeleteOption=True)


PROVISIONERS: dict[str, Provisioner] = {
    "AWS::DynamoDB::Table": DynamoDbTable(),
    "AWS::Kinesis::Stream": KinesisStream(),
    "AWS::SQS::Queue": SqsQueue(),
    "AWS::IAM::Role": IamRole(),
    "AWS::S3::Bucket": S3Bucket(),
    "AWS::S3::BucketPolicy": S3BucketPolicy(),
    "AWS::Logs::LogGroup": LogGroup(),
    "AWS::Lambda::Function": LambdaFunction(),
    "AWS::Pipes::Pipe": Pipe(),
    "AWS::KinesisFirehose::DeliveryStream": DeliveryStream(),
    "AWS::Glue::Database": GlueDatabase(),
    "AWS::Glue::Classifier": GlueClassifier(),
    "AWS::Glue::Crawler": GlueCrawler(),
    "AWS::Athena::WorkGroup": AthenaWorkGroup(),
}
