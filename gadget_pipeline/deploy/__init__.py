"""Deploy infra/template.yaml: to AWS through a CloudFormation change set, or onto the local moto server."""
