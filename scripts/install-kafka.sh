#!/usr/bin/env bash
# Fetches the jars of a single-node Apache Kafka broker (KRaft) from Maven Central into
# .cache/kafka-libs/ for the tests (tests/harness/kafka.py starts it). Cached: runs Maven only
# when the pom changed since the last fetch. Installs Java and Maven from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
pom=tests/harness/kafka-pom.xml
libs=.cache/kafka-libs
stamp=$libs/.pom.sha256

sum=$(sha256sum "$pom" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
  exit 0
fi

need=()
command -v java >/dev/null || need+=(default-jre-headless)
command -v mvn >/dev/null || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-kafka.sh: needs root to install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

rm -rf "$libs"
mkdir -p "$libs"
mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
  -DoutputDirectory="$PWD/$libs" -DincludeScope=runtime
echo "$sum" >"$stamp"
echo "kafka jars in $libs: $(ls "$libs" | grep -o '^kafka_2.13-.*\.jar')"
