#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the console's browser tests (Playwright
# drives /usr/bin/chromium; it never downloads a browser of its own). Idempotent.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium.sh: needs root to install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
echo "installed: ${need[*]}"
