"""Synthesize each environment once per session and share the result.

The first synth in a process costs seconds (jsii starts Node), so every test
reads from these fixtures instead of building its own app.
"""

from __future__ import annotations

import pytest
from jobq_infra_testing import ENV_NAMES, Synth, synthesize


@pytest.fixture(scope="session")
def synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    return {name: synthesize(name, tmp_path_factory.mktemp(f"cdk-{name}")) for name in ENV_NAMES}


@pytest.fixture(params=ENV_NAMES)
def synth(request: pytest.FixtureRequest, synths: dict[str, Synth]) -> Synth:
    return synths[request.param]


@pytest.fixture
def prod(synths: dict[str, Synth]) -> Synth:
    return synths["prod"]
