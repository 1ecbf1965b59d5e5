#!/usr/bin/env bash
# Installs redis-server and redis-cli from Debian's packages for the coordination tests,
# without letting the package start its own daemon: the test harness runs standalone
# servers and a cluster of its own on free loopback ports. Idempotent.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-redis.sh: needs root to install ${need[*]}" >&2
  exit 1
fi
# policy-rc.d exit 101 tells invoke-rc.d not to start the packaged service.
policy=/usr/sbin/policy-rc.d
placed=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  placed=1
fi
trap '[ "$placed" -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
