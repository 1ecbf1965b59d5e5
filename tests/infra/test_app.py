"""The app as a whole: every environment synthesizes offline, unknown ones are refused."""

from __future__ import annotations

import json

import pytest
from jobq_infra_testing import REPO_ROOT, Synth

from infra.config import ENVIRONMENTS, UnknownEnvironmentError, get_config

LAYERS = ("network", "data", "platform", "application", "observability")


def test_every_environment_synthesizes_all_lifecycle_stacks(synth: Synth) -> None:
    # Given an environment, when it is synthesized, then each lifecycle stack has a template.
    for layer in LAYERS:
        assert synth.raw(layer)["Resources"], f"{synth.config.name}: {layer} stack is empty"


def test_unknown_environment_names_the_allowed_ones() -> None:
    with pytest.raises(UnknownEnvironmentError) as info:
        get_config("qa")
    assert "dev, prod, staging" in str(info.value)
    with pytest.raises(UnknownEnvironmentError):
        get_config(None)


def test_cdk_json_pins_account_region_and_zones_for_every_environment() -> None:
    # Synth must never call AWS: each target's AZs are in context.
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    context = cdk_json["context"]
    assert cdk_json["app"].endswith("infra.app")
    for name in ENVIRONMENTS:
        target = context["jobq:targets"][name]
        zones = context[f"availability-zones:account={target['account']}:region={target['region']}"]
        assert len(zones) >= ENVIRONMENTS[name].network.max_azs


def test_stateful_stacks_are_separate_from_compute(synth: Synth) -> None:
    data = synth.template("data")
    data.resource_count_is("AWS::RDS::DBInstance", 1)
    data.resource_count_is("AWS::MSK::Cluster", 1)
    for layer in ("platform", "application"):
        assert not synth.template(layer).find_resources("AWS::RDS::DBInstance")


def test_prod_data_stack_has_termination_protection(prod: Synth) -> None:
    assert prod.stacks.data.termination_protection is True
