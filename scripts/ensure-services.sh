#!/usr/bin/env bash
# Make sure RabbitMQ (and, when asked, PostgreSQL) answer on their local ports.
# Starts a locally installed but stopped broker; fails loudly when none can be reached.
set -euo pipefail

want_pg="${1:-}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 seconds=$2
  for _ in $(seq 1 $((seconds * 2))); do
    port_open "$port" && return 0
    sleep 0.5
  done
  return 1
}

if ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is installed but not running: starting it (rabbitmq-server -detached)"
    rabbitmq-server -detached || true
    if ! wait_port 5672 90; then
      echo "ERROR: RabbitMQ did not come up on 127.0.0.1:5672 within 90 s" >&2
      exit 1
    fi
    # The AMQP port opens before the broker finishes booting its apps.
    command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl await_startup >/dev/null 2>&1 || true
  else
    echo "ERROR: no RabbitMQ at 127.0.0.1:5672 and none installed here." >&2
    echo "       Install rabbitmq-server or set PAYPROC_AMQP_URL / PAYPROC_TEST_AMQP_URL." >&2
    exit 1
  fi
fi

if [ "$want_pg" = "postgres" ] && ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is installed but not running: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    wait_port 5432 60 || { echo "ERROR: PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
  else
    echo "ERROR: no PostgreSQL at 127.0.0.1:5432" >&2
    exit 1
  fi
fi
