#!/usr/bin/env bash
# Make sure a Chromium for the console's browser tests is installed (Debian's `chromium`).
# Playwright's own browser download is not used: the tests launch this binary through
# `executable_path`. Installs it with apt-get when missing and running as root (as CI does);
# otherwise says how. Under CI=true a missing browser is an error; on a laptop the browser
# tests are then skipped (they fail, never skip, under CI=true).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium is missing: installing it (apt-get install chromium)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  command -v chromium >/dev/null 2>&1 && exit 0
  echo "ERROR: apt-get install chromium did not provide a chromium binary" >&2
  exit 1
fi

echo "chromium is not installed; install it with: sudo apt-get install chromium" >&2
case "${CI:-}" in
  1|true|TRUE|True|yes) exit 1 ;;
  *) echo "(the console's browser tests will be skipped)" >&2 ;;
esac
