"""Data stack: the stateful stores. Deletion protection and removal policies live here.

Never rename the construct ids below ("Database", "Cache", "Kafka") or the ids
inside their constructs: CloudFormation treats a new logical id as a new
resource and replaces the store.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.components.backup import DatabaseBackupPlan
from infra.components.cache import RedisCluster
from infra.components.database import PostgresDatabase
from infra.components.kafka import KafkaCluster
from infra.components.network import JobqNetwork
from infra.config import EnvironmentConfig


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: JobqNetwork,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=config.is_production, **kwargs)
        prefix = config.prefix

        self.database = PostgresDatabase(
            self,
            "Database",
            config=config.database,
            vpc=network.vpc,
            subnets=network.data_subnets,
            secret_name=f"{prefix}/database",
            app_secret_name=f"{prefix}/database-app",
        )
        self.cache = RedisCluster(
            self,
            "Cache",
            config=config.cache,
            vpc=network.vpc,
            subnets=network.data_subnets,
            name=prefix,
            log_retention=config.observability.log_retention,
        )
        self.kafka = KafkaCluster(
            self,
            "Kafka",
            config=config.kafka,
            vpc=network.vpc,
            subnets=network.data_subnets,
            name=prefix,
            log_retention=config.observability.log_retention,
        )
        if config.database.backup_plan_retention_days:
            self.backup_plan = DatabaseBackupPlan(
                self, "Backup", name=prefix, instance=self.database.instance,
                retention_days=config.database.backup_plan_retention_days,
            )
        # The workers' bootstrap API key: its `token` is the secret half of jq_<id>_<token>
        # (JQ_TOKEN); the server is given only its SHA-256 in JQ_AUTH_BOOTSTRAP_KEYS
        # (infra/k8s/workloads.py server_auth). Rotation: docs/deploy.md "API keys".
        # The key that signs console session cookies (ADR 0020): one value for every jq-server
        # replica, so a login on one is valid on the next behind the load balancer.
        self.console_secret = secretsmanager.Secret(
            self,
            "ConsoleSecret",
            secret_name=f"{prefix}/console",
            description="jobq web console session-signing key (JQ_CONSOLE_SECRET), shared by every replica",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key="secret",
                exclude_punctuation=True,
                password_length=64,
            ),
        )
        self.api_token = secretsmanager.Secret(
            self,
            "ApiToken",
            secret_name=f"{prefix}/api-token",
            description="jobq workers' bootstrap API key (the server holds only its hash)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key="token",
                exclude_punctuation=True,
                password_length=48,
            ),
        )
