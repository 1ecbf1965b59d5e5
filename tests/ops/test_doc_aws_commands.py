"""Every `aws ...` command that docs/deploy.md and the runbooks show is checked against the
AWS API model the CLI itself is generated from (botocore's service definitions): the
service and operation exist, every --option is a parameter of that operation (or a global
CLI option), and every required parameter is given. Nothing calls AWS; that a command
then does what the page says needs an account (docs/deploy.md, "What was checked here").
"""

from __future__ import annotations

import shlex

import botocore.session
import pytest
from botocore import xform_name
from doc_commands import shown_commands

GLOBAL_OPTIONS = {"query", "output", "region", "profile", "no-cli-pager", "endpoint-url"}
# Commands the CLI adds on top of the API model (awscli customizations), with their options.
CLI_CUSTOMIZATIONS = {("ecr", "get-login-password"): set[str]()}
# CLI service names that differ from botocore's.
SERVICE_NAMES = {"s3api": "s3"}

COMMANDS = shown_commands("aws")
SESSION = botocore.session.get_session()


def problems(command: str) -> list[str]:
    """What is wrong with one `aws <service> <operation> [--option value ...]` command."""
    tokens = shlex.split(command, posix=True)
    if len(tokens) < 3:
        return [f"no operation in {command!r}"]
    service, operation = SERVICE_NAMES.get(tokens[1], tokens[1]), tokens[2]
    options = {t[2:].split("=", 1)[0] for t in tokens[3:] if t.startswith("--")}
    if (service, operation) in CLI_CUSTOMIZATIONS:
        unknown = options - CLI_CUSTOMIZATIONS[(service, operation)] - GLOBAL_OPTIONS
        return [f"unknown options {sorted(unknown)}"] if unknown else []
    if service not in SESSION.get_available_services():
        return [f"no AWS service {service!r}"]
    model = SESSION.get_service_model(service)
    by_cli_name = {xform_name(name, "-"): name for name in model.operation_names}
    if operation not in by_cli_name:
        return [f"{service} has no operation {operation!r}"]
    shape = model.operation_model(by_cli_name[operation]).input_shape
    members = {xform_name(m, "-"): m for m in (shape.members if shape else {})}
    found = []
    unknown = options - set(members) - GLOBAL_OPTIONS
    if unknown:
        found.append(f"{service} {operation} has no options {sorted(unknown)}")
    bare = len(tokens) == 3  # named in prose ("use aws x y"), not run as shown
    required = {xform_name(m, "-") for m in (shape.required_members if shape else [])}
    if not bare and required - options:
        found.append(f"{service} {operation} needs {sorted(required - options)}")
    return found


def test_the_docs_show_aws_commands() -> None:
    assert len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_aws_command_matches_the_api_model(page: str, command: str) -> None:
    assert problems(command) == [], f"{page}: {command}"


def test_a_wrong_operation_option_or_missing_parameter_fails_the_check() -> None:
    assert problems("aws cloudwatch describe-alarms --alarm-names x --query 'A'") == []
    assert problems("aws cloudwatch describe-alarmz --alarm-names x")
    assert problems("aws cloudwatch describe-alarms --alarm-name x")
    assert problems("aws kafka describe-cluster-v2 --output text")  # --cluster-arn missing
    assert problems("aws nosuchservice do-it --x y")
