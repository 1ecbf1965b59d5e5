"""AWS Backup for the database: recovery points outside RDS's own automated backups, in a
vault of their own, so deleting the instance (or its automated backups) keeps them."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from constructs import Construct


class DatabaseBackupPlan(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, instance: rds.IDatabaseInstance, retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(self, "VaultKey", enable_key_rotation=True, description=f"{name} backup vault",
                      removal_policy=RemovalPolicy.RETAIN)
        self.vault = backup.BackupVault(
            self, "Vault", backup_vault_name=f"{name}-database", encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.plan = backup.BackupPlan(self, "Plan", backup_plan_name=f"{name}-database", backup_vault=self.vault)
        self.plan.add_rule(backup.BackupPlanRule(
            rule_name="daily",
            schedule_expression=events.Schedule.cron(hour="3", minute="0"),
            delete_after=Duration.days(retention_days),
        ))
        self.plan.add_selection("Database", resources=[backup.BackupResource.from_rds_database_instance(instance)])
