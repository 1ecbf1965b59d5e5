"""The stores keep jobs safe: Multi-AZ, encrypted, backed up, protected in prod."""

from __future__ import annotations

from aws_cdk.assertions import Match
from jobq_infra_testing import REPO_ROOT, Synth


def test_postgres_15_is_encrypted_and_backed_up_for_a_week_or_more(synth: Synth) -> None:
    data = synth.template("data")
    instances = data.find_resources(
        "AWS::RDS::DBInstance",
        {
            "Properties": {
                "Engine": "postgres",
                "EngineVersion": Match.string_like_regexp(r"^15\."),
                "StorageEncrypted": True,
            }
        },
    )
    assert len(instances) == 1
    (instance,) = instances.values()
    assert instance["Properties"]["BackupRetentionPeriod"] >= 7
    assert instance["Properties"]["MultiAZ"] is synth.config.database.multi_az


def test_staging_and_prod_postgres_are_multi_az(synths: dict[str, Synth]) -> None:
    for name in ("staging", "prod"):
        synths[name].template("data").has_resource_properties(
            "AWS::RDS::DBInstance", {"MultiAZ": True}
        )


def test_prod_postgres_has_deletion_protection_and_is_retained(prod: Synth) -> None:
    prod.template("data").has_resource(
        "AWS::RDS::DBInstance",
        {
            "Properties": {"DeletionProtection": True},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_postgres_forces_tls(synth: Synth) -> None:
    synth.template("data").has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Parameters": Match.object_like({"rds.force_ssl": "1"})}
    )


def test_database_credentials_live_in_secrets_manager_and_rotate(synth: Synth) -> None:
    data = synth.template("data")
    data.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": f"{synth.config.prefix}/database",
            "GenerateSecretString": Match.object_like({"GenerateStringKey": "password"}),
        },
    )
    data.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {
            "RotationRules": {
                "ScheduleExpression": f"rate({synth.config.database.rotation_days} days)"
            }
        },
    )


def test_redis_runs_cluster_mode_multi_az_encrypted_with_auth(synth: Synth) -> None:
    cache = synth.config.cache
    synth.template("data").has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "Engine": "redis",
            "ClusterMode": "enabled",
            "CacheParameterGroupName": Match.string_like_regexp(r"cluster\.on$"),
            "NumNodeGroups": cache.shards,
            "ReplicasPerNodeGroup": Match.any_value(),
            "MultiAZEnabled": True,
            "AutomaticFailoverEnabled": True,
            "TransitEncryptionEnabled": True,
            "AtRestEncryptionEnabled": True,
            "AuthToken": Match.any_value(),
        },
    )
    (group,) = synth.template("data").find_resources("AWS::ElastiCache::ReplicationGroup").values()
    assert group["Properties"]["ReplicasPerNodeGroup"] >= 1, (
        "Multi-AZ failover needs a replica per shard"
    )
    assert "{{resolve:secretsmanager:" in str(group["Properties"]["AuthToken"]), (
        "AUTH token must come from Secrets Manager"
    )


def test_msk_uses_tls_and_iam_only(synth: Synth) -> None:
    synth.template("data").has_resource_properties(
        "AWS::MSK::Cluster",
        {
            "EncryptionInfo": {
                "EncryptionInTransit": {"ClientBroker": "TLS", "InCluster": True},
                "EncryptionAtRest": Match.object_like({"DataVolumeKMSKeyId": Match.any_value()}),
            },
            "ClientAuthentication": {
                "Sasl": {"Iam": {"Enabled": True}},
                "Unauthenticated": {"Enabled": False},
            },
        },
    )


def test_msk_brokers_spread_evenly_over_the_zones(synth: Synth) -> None:
    (cluster,) = synth.template("data").find_resources("AWS::MSK::Cluster").values()
    subnets = cluster["Properties"]["BrokerNodeGroupInfo"]["ClientSubnets"]
    assert cluster["Properties"]["NumberOfBrokerNodes"] % len(subnets) == 0


def test_data_stores_admit_only_the_private_subnets(synth: Synth) -> None:
    data = synth.raw("data")
    for resource in data["Resources"].values():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            for rule in resource["Properties"].get("SecurityGroupIngress", []):
                assert rule.get("CidrIp") != "0.0.0.0/0"


def test_the_app_login_has_its_own_secret_rotated_by_alternating_users(synth: Synth) -> None:
    # ADR 0019: the pods' login is the jobq_app role of migration 0010, never the master.
    from infra.components.database import APP_USERNAME

    migration = (REPO_ROOT / "migrations" / "postgres" / "0010_app_role.sql").read_text()
    assert f"CREATE ROLE {APP_USERNAME} LOGIN" in migration
    resources = synth.raw("data")["Resources"]
    (app_lid,) = [
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::SecretsManager::Secret"
        and r["Properties"].get("Name") == f"{synth.config.prefix}/database-app"
    ]
    template = resources[app_lid]["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    parts = template["Fn::Join"][1]
    assert parts[0].startswith(f'{{"username":"{APP_USERNAME}","masterarn":"')
    # The master secret (attached to the instance) is what the rotation logs in with.
    master = parts[1]["Ref"]
    assert resources[master]["Type"] == "AWS::SecretsManager::SecretTargetAttachment"
    attachments = [
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::SecretsManager::SecretTargetAttachment"
        and r["Properties"]["SecretId"] == {"Ref": app_lid}
    ]
    (schedule,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SecretsManager::RotationSchedule"
        and r["Properties"]["SecretId"] in [{"Ref": a} for a in attachments]
    ]
    app = resources[schedule["RotationLambdaARN"]["Fn::GetAtt"][0]]
    location = app["Properties"]["Location"]["ApplicationId"]["Fn::FindInMap"][0]
    mapping = synth.raw("data")["Mappings"][location]
    # Alternating users: the login the pods hold stays valid until the next rotation, so
    # pods still on it (External Secrets refreshes hourly) keep connecting meanwhile.
    assert mapping["aws"]["applicationId"].endswith("/SecretsManagerRDSPostgreSQLRotationMultiUser")
    assert app["Properties"]["Parameters"]["masterSecretArn"] == {"Ref": master}
    # The first rotation needs the jobq_app role, which exists only once migrations ran.
    assert schedule["RotateImmediatelyOnUpdate"] is False
