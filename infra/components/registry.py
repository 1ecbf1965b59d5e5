"""ECR repositories for the jobq images."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from constructs import Construct

IMAGE_NAMES = ("jq-server", "jq-worker")


class ImageRepositories(Construct):
    """One repository per image: scanned on push, untagged layers expired, old tags trimmed."""

    def __init__(self, scope: Construct, construct_id: str, *, immutable_tags: bool, keep_images: int) -> None:
        super().__init__(scope, construct_id)
        self.repositories: dict[str, ecr.Repository] = {}
        for name in IMAGE_NAMES:
            repo = ecr.Repository(
                self,
                name,
                repository_name=name,
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.IMMUTABLE if immutable_tags else ecr.TagMutability.MUTABLE,
                encryption=ecr.RepositoryEncryption.KMS,
                # Images are the rollback path; keep the repository when a stack goes.
                removal_policy=RemovalPolicy.RETAIN,
                lifecycle_rules=[
                    ecr.LifecycleRule(
                        rule_priority=1,
                        description="Drop untagged layers left by re-pushed tags after a week",
                        tag_status=ecr.TagStatus.UNTAGGED,
                        max_image_age=Duration.days(7),
                    ),
                    ecr.LifecycleRule(
                        rule_priority=2,
                        description=f"Keep the newest {keep_images} images to roll back to",
                        tag_status=ecr.TagStatus.ANY,
                        max_image_count=keep_images,
                    ),
                ],
            )
            self.repositories[name] = repo

    def image(self, name: str, tag: str) -> str:
        return self.repositories[name].repository_uri_for_tag(tag)
