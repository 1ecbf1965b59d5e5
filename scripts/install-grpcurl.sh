#!/usr/bin/env bash
# Builds grpcurl (an unmodified external gRPC client) from the Go module proxy into
# .cache/bin, once; the e2e suite uses it to prove reflection exposes every method.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.9.3
bin=.cache/bin/grpcurl
stamp=.cache/bin/grpcurl.version  # `go install` builds report no version of their own
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-grpcurl.sh: the go toolchain is needed to build grpcurl" >&2
  exit 1
fi
mkdir -p .cache/bin
GOBIN="$PWD/.cache/bin" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@${version}"
echo "$version" >"$stamp"
