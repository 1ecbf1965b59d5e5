#!/usr/bin/env bash
# Regenerates the Python gRPC modules from proto/ into app/jobq/v1/.
# proto/jobq/v1/x.proto becomes the module jobq.v1.x_pb2, so generated imports resolve as-is.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
"$python" -m grpc_tools.protoc -Iproto \
  --python_out=app --grpc_python_out=app --pyi_out=app \
  proto/jobq/v1/*.proto
touch app/jobq/v1/__init__.py
