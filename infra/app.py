"""Entry point of the jobq CDK app: ``cdk synth|deploy -c env=dev|staging|prod``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import EnvironmentConfig, UnknownEnvironmentError, get_config
from infra.nag import acknowledge
from infra.stacks.application import ApplicationStack
from infra.stacks.data import DataStack
from infra.stacks.network import NetworkStack
from infra.stacks.observability import ObservabilityStack
from infra.stacks.platform import PlatformStack

TARGETS_CONTEXT_KEY = "jobq:targets"
RUNBOOK_CONTEXT_KEY = "jobq:runbook-base-url"
# Synth must work without a tag; deploys pass a real one (docs/deploy.md).
DEFAULT_IMAGE_TAG = "unreleased"


@dataclass(frozen=True)
class JobqStacks:
    network: NetworkStack
    data: DataStack
    platform: PlatformStack
    application: ApplicationStack
    observability: ObservabilityStack


def target_environment(app: cdk.App, config: EnvironmentConfig) -> cdk.Environment:
    """Account and region for an environment, pinned in cdk.json so synth never asks AWS."""
    targets: dict[str, Any] = app.node.try_get_context(TARGETS_CONTEXT_KEY) or {}
    target = targets.get(config.name)
    if not target:
        raise UnknownEnvironmentError(
            f"cdk.json context {TARGETS_CONTEXT_KEY!r} has no account/region for {config.name!r}"
        )
    return cdk.Environment(account=str(target["account"]), region=target["region"])


def image_tag(app: cdk.App) -> str:
    """The image tag to run, from ``-c image-tag=<git sha>``; see docs/deploy.md for rollouts."""
    return str(app.node.try_get_context("image-tag") or DEFAULT_IMAGE_TAG)


class MissingPagerError(ValueError):
    """Production would alarm into a topic nobody reads."""


def build(app: cdk.App, config: EnvironmentConfig) -> JobqStacks:
    """Create every stack of one environment inside ``app`` and wire them together."""
    if config.is_production and not config.observability.pagers:
        raise MissingPagerError(
            f"{config.name}: ObservabilityConfig.pagers is empty; production must page someone (infra/config.py)"
        )
    env = target_environment(app, config)
    prefix = config.prefix

    network = NetworkStack(app, f"{prefix}-network", config=config, env=env,
                           description="jobq network: VPC, subnets, endpoints")
    data = DataStack(app, f"{prefix}-data", config=config, network=network.network, env=env,
                     description="jobq data: RDS PostgreSQL, ElastiCache Redis, MSK")
    observability = ObservabilityStack(app, f"{prefix}-observability", config=config, data=data,
                                       runbook_base_url=app.node.try_get_context(RUNBOOK_CONTEXT_KEY) or ".",
                                       env=env, description="jobq observability: logs, alarm topic and pagers, AWS alarms")

    platform = PlatformStack(app, f"{prefix}-platform", config=config, network=network.network, data=data,
                             observability=observability, env=env,
                             description="jobq platform: EKS, node group, controllers, monitoring, ECR, IRSA")
    application = ApplicationStack(app, f"{prefix}-application", config=config, data=data, platform=platform,
                                   image_tag=image_tag(app), env=env,
                                   description="jobq application: server, workers, PgBouncer, autoscaling")
    for key, value in {"project": "jobq", "environment": config.name, **config.tags}.items():
        cdk.Tags.of(app).add(key, value)
    return JobqStacks(network=network, data=data, platform=platform, application=application,
                      observability=observability)


def main() -> None:
    app = cdk.App()
    config = get_config(app.node.try_get_context("env"))
    stacks = build(app, config)
    acknowledge(stacks, config)
    # Unacknowledged AwsSolutions findings fail synth, so a deploy cannot skip them.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
