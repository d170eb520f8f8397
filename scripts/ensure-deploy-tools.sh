#!/usr/bin/env bash
# Make sure the tools that validate the deploy files are installed: promtool (Debian's
# `prometheus`: alert rules and their unit tests, the scrape config), `haproxy -c` and
# `docker-compose config`. Installs the missing ones with apt-get when running as root (as CI
# does); otherwise says how. Without them tests/deploy runs structural checks instead and
# says so, except under CI=true, where a missing tool fails those tests.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "deploy validation tools missing: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi

echo "not installed: ${missing[*]}; install with: sudo apt-get install ${missing[*]}" >&2
case "${CI:-}" in
  1|true|TRUE|True|yes) exit 1 ;;
  *) echo "(tests/deploy will run structural checks instead)" >&2 ;;
esac
