#!/bin/sh
# Set the passwords of the users that definitions.json creates (the file carries no password:
# its users cannot log in until this has run). Importing definitions resets these passwords,
# so run this after every import of a changed definitions file; running it again is harmless.
#
#   RABBITMQ_NODE                  node to talk to (default rabbit@rabbitmq-1)
#   RABBITMQ_CLUSTER_SIZE          wait until this many nodes are running (default 3)
#   RABBITMQ_ERLANG_COOKIE         the cluster's Erlang cookie (read by rabbitmqctl)
#   PAYPROC_WORKER_AMQP_PASSWORD   password of payproc-worker
#   PAYPROC_ADMIN_AMQP_PASSWORD    password of payproc-admin
#   PAYPROC_MONITORING_AMQP_PASSWORD  password of payproc-monitoring (KEDA, dashboards)
set -eu
node="${RABBITMQ_NODE:-rabbit@rabbitmq-1}"
size="${RABBITMQ_CLUSTER_SIZE:-3}"

rabbitmqctl -q -n "$node" await_startup
rabbitmqctl -q -n "$node" await_online_nodes "$size" --timeout 300

set_password() {
  user="$1"
  password="$2"
  if [ -z "$password" ]; then
    echo "set-passwords: the password of $user is empty" >&2
    exit 1
  fi
  rabbitmqctl -q -n "$node" change_password "$user" "$password"
  echo "set-passwords: $user updated"
}

set_password payproc-worker "${PAYPROC_WORKER_AMQP_PASSWORD:?set PAYPROC_WORKER_AMQP_PASSWORD}"
set_password payproc-admin "${PAYPROC_ADMIN_AMQP_PASSWORD:?set PAYPROC_ADMIN_AMQP_PASSWORD}"
set_password payproc-monitoring \
  "${PAYPROC_MONITORING_AMQP_PASSWORD:?set PAYPROC_MONITORING_AMQP_PASSWORD}"
