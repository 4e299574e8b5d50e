#!/usr/bin/env bash
# Installs the Debian packages the tests need, only those that are missing:
#   protobuf-compiler       protoc
#   libprotobuf-dev         the well-known types (/usr/include/google/protobuf/*.proto);
#                           only a Recommends of protobuf-compiler, so named here
#   protobuf-compiler-grpc  /usr/bin/grpc_python_plugin
#   python3-grpcio          grpc for /usr/bin/python3
#   python3-protobuf        google.protobuf for /usr/bin/python3
#   softhsm2                the PKCS#11 token the settlement signer tests use
#                           (libsofthsm2.so, softhsm2-util)
#   opensc                  pkcs11-tool, to inspect a token by hand
#   prometheus              a real Prometheus server and promtool (2.42), for the
#                           metrics test and `promtool check rules` on ops/alerts.yml
#   nats-server             NATS with JetStream (`nats-server -js`), for the
#                           JetStream relay's tests
#   postgresql-client       psql, which the audit journal's tamper tests use as
#                           an attacker would (counted present when any
#                           version's psql is installed)
# Idempotent and quiet: prints nothing when all are present, one line per
# install otherwise. Runs `apt-get update` at most once, only if an install is
# needed. Needs root (or sudo) when something is missing.
set -euo pipefail

PACKAGES=(protobuf-compiler libprotobuf-dev protobuf-compiler-grpc python3-grpcio python3-protobuf softhsm2 opensc prometheus nats-server postgresql-client)

installed() {
  if [ "$1" = postgresql-client ] && command -v psql >/dev/null 2>&1; then return 0; fi
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: apt-get not found; install these Debian packages by hand: ${missing[*]}" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-system-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT

apt_install() {
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1
}

echo "install-system-deps: installing ${missing[*]}"
# Try without an update first (cheap when the package lists are fresh), then
# update once and retry.
if ! apt_install; then
  if ! "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-system-deps: apt-get update failed" >&2
    exit 1
  fi
  if ! apt_install; then
    cat "$log" >&2
    echo "install-system-deps: apt-get install failed for: ${missing[*]}" >&2
    exit 1
  fi
fi

for p in "${missing[@]}"; do
  if ! installed "$p"; then
    echo "install-system-deps: $p is still not installed" >&2
    exit 1
  fi
done
