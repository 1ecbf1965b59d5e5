"""cdk-nag AwsSolutions and cfn-lint over every synthesized template."""

from __future__ import annotations

import json
import shutil
import subprocess

from jobq_infra_testing import Synth


def test_cdk_nag_has_no_unacknowledged_findings(synth: Synth) -> None:
    violations = [
        f"{v['ruleName']}: {c['constructPath']}"
        for report in synth.validation_report()["pluginReports"]
        for v in report.get("violations", [])
        for c in v["violatingConstructs"]
    ]
    findings = "\n".join(violations) or str(synth.validation_error)
    assert synth.validation_error is None and not violations, findings


def _acknowledgements(synth: Synth) -> dict[str, str]:
    acks: dict[str, str] = {}
    for path in synth.outdir.glob("*.metadata.json"):
        for construct_path, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        acks[f"{construct_path} {rule}"] = reason
    return acks


def test_every_acknowledgement_gives_a_reason(synth: Synth) -> None:
    acks = _acknowledgements(synth)
    assert acks, "expected the acknowledged findings to be recorded in the cloud assembly"
    for finding, reason in acks.items():
        assert len(reason.split()) >= 8, f"{finding}: reason too thin: {reason!r}"


def test_prod_acknowledges_no_database_availability_findings(prod: Synth) -> None:
    # Multi-AZ and deletion protection must pass for real in prod, not be waved through.
    acks = _acknowledgements(prod)
    for rule in ("AwsSolutions-RDS3", "AwsSolutions-RDS10"):
        assert not any(key.endswith(rule) for key in acks), rule


def test_cfn_lint_reports_no_errors(synth: Synth) -> None:
    cfn_lint = shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is not installed (requirements-infra.txt)"
    files = [str(p) for p in synth.template_files()]
    assert len(files) >= 5
    result = subprocess.run(
        [cfn_lint, "--format", "parseable", *files], capture_output=True, text=True, check=False
    )
    # parseable: file:line:col:end_line:end_col:RULE:message
    findings = [line.split(":") for line in result.stdout.splitlines() if line.strip()]
    errors = [":".join(f) for f in findings if len(f) > 5 and f[5].startswith("E")]
    assert not errors, "\n".join(errors)
    # Exit bits: 2 error, 4 warning, 8 informational; bit 2 (or 1, a crash) fails.
    assert result.returncode & 0b11 == 0, result.stderr or result.stdout
