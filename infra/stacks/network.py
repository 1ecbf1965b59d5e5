"""Network stack: the VPC, its subnets and endpoints. Changes rarely; everything else depends on it."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.components.network import JobqNetwork
from infra.config import EnvironmentConfig


class NetworkStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.network = JobqNetwork(self, "Network", config=config.network)

    @property
    def private_cidrs(self) -> list[str]:
        return [s.ipv4_cidr_block for s in self.network.vpc.select_subnets(subnet_group_name=JobqNetwork.PRIVATE).subnets]
