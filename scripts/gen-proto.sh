#!/usr/bin/env bash
# Regenerates the Python gRPC modules from proto/ into app/jobq/v1/.
# proto/jobq/v1/x.proto becomes the module jobq.v1.x_pb2, so generated imports resolve as-is.
# mypy-protobuf writes the .pyi stubs (messages and gRPC stubs/servicers), so mypy sees real types.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
# The protoc-gen-mypy plugins are console scripts installed beside that interpreter's packages.
bin=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
"$python" -m grpc_tools.protoc -Iproto \
  --plugin=protoc-gen-mypy="$bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$bin/protoc-gen-mypy_grpc" \
  --python_out=app --grpc_python_out=app \
  --mypy_out=app --mypy_grpc_out=app \
  proto/jobq/v1/*.proto
touch app/jobq/v1/__init__.py
