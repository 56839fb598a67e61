"""The AWS target: ECS Fargate behind an Application Load Balancer, in a private VPC."""

from infra.targets.aws.platform import AwsPlatform

__all__ = ["AwsPlatform"]
