"""RDS PostgreSQL, the source of truth for jobs, with rotated credentials."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra.components.keys import data_key
from infra.config import DatabaseConfig

POSTGRES_PORT = 5432
DATABASE_NAME = "jobq"
MASTER_USERNAME = "jobq_admin"
# The application's login (ADR 0019): a member of the jobq_app role migration 0010 creates,
# with DML on jobq's tables and no DDL. Secrets Manager's alternating-users rotation swaps
# it with jobq_app_clone, so the login pods hold stays valid until the next rotation.
APP_USERNAME = "jobq_app"


class PostgresDatabase(Construct):
    """PostgreSQL 15 with encrypted storage, forced TLS, backups and a rotated master secret."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DatabaseConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        secret_name: str,
        app_secret_name: str,
    ) -> None:
        super().__init__(scope, construct_id)

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="jobq PostgreSQL: reachable from the private (EKS) subnets only",
            allow_all_outbound=False,
        )
        # Clients are admitted by security group, not CIDR: the platform stack adds a rule
        # from the EKS cluster security group. (The description predates that; changing it
        # would replace the group.)

        key = data_key(self, "Key", description="jobq PostgreSQL storage encryption", store_policy=config.removal_policy)

        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=_engine(),
            parameters={
                # Clients must use TLS; PgBouncer connects with sslmode=require.
                "rds.force_ssl": "1",
                # Durable submit (DESIGN.md): an OK from Submit means committed.
                "synchronous_commit": "on",
                "log_min_duration_statement": "1000",
            },
        )

        # The construct id "Instance" must never change: a new id means CloudFormation
        # replaces the database, which loses every job.
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=_engine(),
            instance_type=ec2.InstanceType(config.instance_type),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            port=POSTGRES_PORT,
            multi_az=config.multi_az,
            allocated_storage=config.allocated_storage_gib,
            max_allocated_storage=config.max_allocated_storage_gib,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            storage_encryption_key=key,
            credentials=rds.Credentials.from_generated_secret(MASTER_USERNAME, secret_name=secret_name),
            database_name=DATABASE_NAME,
            parameter_group=parameters,
            backup_retention=Duration.days(config.backup_retention_days),
            deletion_protection=config.deletion_protection,
            removal_policy=config.removal_policy,
            iam_authentication=True,
            cloudwatch_logs_exports=["postgresql", "upgrade"],
            enable_performance_insights=config.performance_insights,
            performance_insight_encryption_key=key if config.performance_insights else None,
            monitoring_interval=Duration.seconds(60),
            auto_minor_version_upgrade=True,
            copy_tags_to_snapshot=True,
        )
        self.secret = self.instance.secret
        assert self.secret is not None
        # The master (owner) login: migrations only, never an application pod.
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=Duration.days(config.rotation_days),
        )
        # The application's login, its own secret. masterarn (from master_secret) is how
        # the multi-user rotation function creates and re-passwords jobq_app / jobq_app_clone.
        self.app_secret = rds.DatabaseSecret(
            self, "AppSecret", username=APP_USERNAME, secret_name=app_secret_name,
            # The default exclusions keep the password URL-safe (External Secrets renders it
            # into postgresql:// URLs unescaped), as for the master secret.
            master_secret=self.secret,
        ).attach(self.instance)
        self.app_rotation = self.instance.add_rotation_multi_user(
            "AppRotation",
            secret=self.app_secret,
            automatically_after=Duration.days(config.rotation_days),
            # Not at creation: the first rotation grants jobq_app to jobq_app_clone, and that
            # role exists only once the application stack's init container ran migration 0010
            # (which also sets this secret's first password: `jq-server migrate`).
            rotate_immediately_on_update=False,
        )


def _engine() -> rds.IInstanceEngine:
    return rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_15_17)

