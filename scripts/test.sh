#!/usr/bin/env bash
# Everything `make test` needs beyond the Python venv, then every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-promtool.sh >/dev/null   # alert rule checks (Debian's prometheus package)
bash scripts/install-services.sh             # PostgreSQL 15 and PgBouncer binaries
bash scripts/install-redis.sh                # redis-server and redis-cli for the coordination tests
bash scripts/install-grpcurl.sh >/dev/null    # an external gRPC client for the reflection test
bash scripts/install-kafka.sh                # Apache Kafka jars (and Java, Maven) for the event tests
bash scripts/install-chromium.sh             # Debian's Chromium for the console's browser tests

export PATH="$PWD/.cache/bin:$PWD/.venv/bin:$PATH"
# jsii (under aws-cdk-lib) warns on Node versions it has not been tested with.
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20,21  # the Node majors to hush

.venv/bin/python -m pytest "$@"
