"""Customer-managed KMS keys for the data stores."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct


def data_key(scope: Construct, construct_id: str, *, description: str, store_policy: RemovalPolicy) -> kms.Key:
    """A rotating key whose lifetime covers whatever the store leaves behind.

    A store removed with SNAPSHOT leaves encrypted snapshots, which are useless
    without their key, so the key is then retained.
    """
    policy = RemovalPolicy.RETAIN if store_policy == RemovalPolicy.SNAPSHOT else store_policy
    return kms.Key(scope, construct_id, enable_key_rotation=True, description=description, removal_policy=policy)
