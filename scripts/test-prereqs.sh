#!/usr/bin/env bash
# What the tests need besides node_modules: PostgreSQL, Redis and NATS (JetStream) on 127.0.0.1
# (started if down) and the Debian packages of the cross-language test
# (installed if missing). Idempotent; quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "test-prereqs: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test-prereqs: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
fi
bash scripts/install-system-deps.sh
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  # The JetStream relay's tests: Debian's nats-server with JetStream.
  echo "test-prereqs: starting nats-server -js"
  mkdir -p /var/lib/nats /var/log/nats
  nohup nats-server -js -a 127.0.0.1 -p 4222 -sd /var/lib/nats >/var/log/nats/ci.log 2>&1 &
  for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 1; done
  (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null
fi
