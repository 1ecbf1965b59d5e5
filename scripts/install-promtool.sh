#!/usr/bin/env bash
# Install promtool (from Debian's `prometheus` package) so the rule checks and
# rule unit tests under tests/ops/ can run. Idempotent: does nothing when a
# promtool is already on PATH.
#
# The package also ships a Prometheus server with an init script. We only want
# the promtool binary, so service start-up is blocked for the duration of the
# install with a policy-rc.d that denies it, and any prometheus daemon the
# install may still have started is stopped by its pid afterwards.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "promtool already installed: $(command -v promtool)"
    promtool --version 2>&1 | head -n 1
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-promtool.sh: needs root for apt-get (run with sudo)" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
placed_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# placed by scripts/install-promtool.sh; removed after the install\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    placed_policy=1
fi
cleanup() {
    if [ "$placed_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT

# Snapshot of prometheus daemons before, so we stop only one this install started.
before="$(pgrep -x prometheus || true)"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null

for pid in $(pgrep -x prometheus || true); do
    case " $before " in
        *" $pid "*) ;;
        *) echo "stopping prometheus daemon $pid started by the package install"
           kill "$pid" || true ;;
    esac
done

promtool --version 2>&1 | head -n 1
