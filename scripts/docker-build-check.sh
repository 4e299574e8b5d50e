#!/usr/bin/env bash
# Performs the Dockerfile's build without a Docker engine and checks the result.
#
# Reads ./Dockerfile and, in a temporary directory, replays it:
#   - build stage: every COPY from the context (the working tree, honouring
#     .dockerignore) and every RUN step (npm ci, npm run build, npm prune
#     --omit=dev), in a directory standing for /app;
#   - runtime stage: every COPY --from=build, into a second directory, so the
#     server starts from exactly the files the image would hold.
# Then it checks that
#   - development dependencies are gone (vitest, typescript, tsx, ...) and the
#     production ones are there,
#   - `CMD` starts the server (MINT_LISTEN=127.0.0.1:0; the address is read from
#     the JSON "listening" line), with the runtime stage's ENV,
#   - the HEALTHCHECK command exits 0 against it (MINT_LISTEN = that address),
#   - SIGTERM makes the server exit 0.
#
# Usage: scripts/docker-build-check.sh        (KEEP=1 keeps the temp directory)
# Needs network access to the npm registry (npm ci). Prints one line per step;
# on failure the last line says what failed and the exit status is non-zero.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DOCKERFILE="$REPO/Dockerfile"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mint-docker-check.XXXXXX")
SERVER_PID=""
SERVER_LOG="$WORK/server.log"
T0=$(date +%s)

log() { printf 'docker-build-check: [%3ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() {
  printf 'docker-build-check: FAILED: %s\n' "$*" >&2
  exit 1
}
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = "1" ]; then
    echo "docker-build-check: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

[ -f "$DOCKERFILE" ] || die "no Dockerfile in $REPO"

# ---------------------------------------------------------------------------
# .dockerignore as GNU tar exclude patterns (anchored at the context root, as
# Docker matches them). Negations are not supported here.
EXCLUDES="$WORK/dockerignore.tar"
: >"$EXCLUDES"
if [ -f "$REPO/.dockerignore" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    line="$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's#^/##' -e 's#/$##')"
    [ -z "$line" ] && continue
    case "$line" in
      '!'*) die ".dockerignore negation '$line' is not supported by this check" ;;
    esac
    printf '%s\n' "$line" >>"$EXCLUDES"
  done <"$REPO/.dockerignore"
fi

# Copies context path $1 (relative) to $2 (a directory) with tar, honouring .dockerignore.
copy_from_context() {
  local src="$1" destdir="$2"
  [ -e "$REPO/$src" ] || die "COPY source '$src' does not exist in the context"
  mkdir -p "$destdir"
  tar -C "$REPO" --anchored --wildcards --exclude-from="$EXCLUDES" -cf - -- "$src" | tar -C "$destdir" -xf -
  [ -e "$destdir/$src" ] || die "COPY source '$src' is excluded by .dockerignore"
}

# Resolves a Dockerfile destination ($1) inside stage dir $2 (WORKDIR /app = $2).
dest_path() {
  local dest="$1" root="$2"
  case "$dest" in
    /app) printf '%s' "$root" ;;
    /app/*) printf '%s/%s' "$root" "${dest#/app/}" ;;
    /*) die "destination '$dest' is outside /app; this check maps only /app" ;;
    *) printf '%s/%s' "$root" "$dest" ;;
  esac
}

# COPY: Docker semantics for what this Dockerfile uses: a file to a file path or
# into a directory (dest ending in /), a directory's contents into a directory.
do_copy() {
  local from="$1" root="$2"
  shift 2
  local args=("$@")
  local n=${#args[@]}
  [ "$n" -ge 2 ] || die "COPY needs a source and a destination: ${args[*]}"
  local dest="${args[$((n - 1))]}"
  local target
  target=$(dest_path "$dest" "$root")
  local multi=0
  [ "$n" -gt 2 ] && multi=1
  if [ "$multi" = 1 ] && [[ "$dest" != */ ]]; then die "COPY with several sources needs a destination ending in /: ${args[*]}"; fi
  local i src
  for ((i = 0; i < n - 1; i++)); do
    src="${args[$i]}"
    local srcpath staged
    if [ -n "$from" ]; then
      local fromroot="$WORK/stage-$from"
      [ -d "$fromroot" ] || die "COPY --from=$from: no stage named $from before this one"
      case "$src" in
        /app/*) srcpath="$fromroot/${src#/app/}" ;;
        /app) srcpath="$fromroot" ;;
        /*) die "COPY --from source '$src' is outside /app" ;;
        *) srcpath="$fromroot/$src" ;;
      esac
      [ -e "$srcpath" ] || die "COPY --from=$from: '$src' does not exist in that stage"
    else
      staged="$WORK/context-copy"
      rm -rf "$staged"
      src="${src%/}"
      copy_from_context "$src" "$staged"
      srcpath="$staged/$src"
    fi
    if [ -d "$srcpath" ]; then
      mkdir -p "$target"
      cp -a "$srcpath/." "$target/"
    elif [[ "$dest" == */ ]] || [ "$dest" = "." ] || [ -d "$target" ]; then
      mkdir -p "$target"
      cp -a "$srcpath" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp -a "$srcpath" "$target"
    fi
  done
  rm -rf "$WORK/context-copy"
}

# A JSON exec-form array ($1) as a NUL-separated argv, via node.
json_argv() {
  node -e '
    const a = JSON.parse(process.argv[1]);
    if (!Array.isArray(a) || a.length === 0 || !a.every((s) => typeof s === "string")) process.exit(3);
    process.stdout.write(a.join("\0"));
  ' "$1" || die "expected the exec (JSON array) form, got: $1"
}

# ---------------------------------------------------------------------------
# Replay the Dockerfile. Continuation lines are joined; comments dropped.
STAGE=""
STAGE_ROOT=""
RUNTIME_STAGE=""
CMD_JSON=""
HEALTH_JSON=""
declare -a RUNTIME_ENV=()
saw_user=0
saw_expose=0

INSTRUCTIONS=$(awk '
  /^[[:space:]]*#/ { next }
  { sub(/\r$/, "") }
  /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, ""); buf = buf $0 " "; next }
  { line = buf $0; buf = ""; if (line ~ /[^[:space:]]/) print line }
' "$DOCKERFILE")

while IFS= read -r line; do
  read -r instr rest <<<"$line"
  instr=$(printf '%s' "$instr" | tr '[:lower:]' '[:upper:]')
  case "$instr" in
    FROM)
      read -r -a words <<<"$rest"
      if [ "${#words[@]}" -ge 3 ] && [ "$(printf '%s' "${words[1]}" | tr '[:lower:]' '[:upper:]')" = "AS" ]; then
        STAGE="${words[2]}"
      else
        die "every FROM needs 'AS <name>': FROM $rest"
      fi
      STAGE_ROOT="$WORK/stage-$STAGE"
      mkdir -p "$STAGE_ROOT"
      RUNTIME_STAGE="$STAGE"
      RUNTIME_ENV=()
      CMD_JSON=""
      HEALTH_JSON=""
      saw_user=0
      saw_expose=0
      log "stage $STAGE (${words[0]})"
      ;;
    WORKDIR)
      [ "$rest" = "/app" ] || die "this check maps WORKDIR /app only, got WORKDIR $rest"
      ;;
    COPY)
      read -r -a words <<<"$rest"
      from=""
      args=()
      for w in "${words[@]}"; do
        case "$w" in
          --from=*) from="${w#--from=}" ;;
          --chown=* | --chmod=* | --link) ;;
          --*) die "unsupported COPY flag $w" ;;
          *) args+=("$w") ;;
        esac
      done
      do_copy "$from" "$STAGE_ROOT" "${args[@]}"
      log "COPY ${words[*]}"
      ;;
    ADD) die "ADD is not supported by this check; use COPY" ;;
    RUN)
      [ "$STAGE" = "build" ] || die "RUN in stage '$STAGE': this check runs RUN steps of the build stage only"
      log "RUN $rest"
      rc=0
      (cd "$STAGE_ROOT" && env npm_config_update_notifier=false sh -ec "$rest") >"$WORK/run.log" 2>&1 || rc=$?
      if [ "$rc" -ne 0 ]; then
        tail -n 40 "$WORK/run.log" >&2
        die "RUN $rest (exit $rc)"
      fi
      ;;
    ENV)
      read -r -a words <<<"$rest"
      for w in "${words[@]}"; do
        [[ "$w" == *=* ]] || die "ENV needs key=value pairs: ENV $rest"
        RUNTIME_ENV+=("$w")
      done
      ;;
    USER)
      case "$rest" in root | 0 | root:* | 0:*) die "USER must not be root" ;; esac
      saw_user=1
      ;;
    EXPOSE) saw_expose=1 ;;
    HEALTHCHECK)
      [[ "$rest" == *CMD* ]] || die "HEALTHCHECK without CMD"
      HEALTH_JSON="${rest#*CMD }"
      ;;
    CMD) CMD_JSON="$rest" ;;
    STOPSIGNAL | LABEL | ARG | SHELL | ENTRYPOINT | VOLUME | ONBUILD)
      [ "$instr" != ENTRYPOINT ] || die "ENTRYPOINT is not supported by this check"
      ;;
    *) die "unknown instruction $instr" ;;
  esac
done <<<"$INSTRUCTIONS"

if [ -z "$RUNTIME_STAGE" ] || [ "$RUNTIME_STAGE" = "build" ] || [ ! -d "$WORK/stage-build" ]; then
  die "the Dockerfile needs a stage named build and a later runtime stage"
fi
RT="$WORK/stage-$RUNTIME_STAGE"
[ "$saw_user" = 1 ] || die "the runtime stage has no USER (must not run as root)"
[ "$saw_expose" = 1 ] || die "the runtime stage has no EXPOSE"
[ -n "$CMD_JSON" ] || die "the runtime stage has no CMD"
[ -n "$HEALTH_JSON" ] || die "the runtime stage has no HEALTHCHECK"
printf '%s\n' "${RUNTIME_ENV[@]}" | grep -qx 'MINT_LISTEN=0.0.0.0:50051' || die "the runtime stage must set ENV MINT_LISTEN=0.0.0.0:50051"

# ---------------------------------------------------------------------------
# Production dependencies only.
# (@types/node stays: protobufjs, under @grpc/grpc-js, depends on it.)
for dev in vitest typescript tsx ts-proto fast-check @bufbuild/buf @types/pg; do
  [ ! -e "$RT/node_modules/$dev" ] || die "dev dependency $dev is in the runtime node_modules (npm prune --omit=dev did not run?)"
done
for prod in @grpc/grpc-js @bufbuild/protobuf pino async-mutex; do
  [ -e "$RT/node_modules/$prod" ] || die "production dependency $prod is missing from the runtime node_modules"
done
[ ! -e "$RT/src" ] || die "the runtime stage holds src/ (only dist/ should be copied)"
log "runtime holds production dependencies only (node_modules $(du -sh "$RT/node_modules" | cut -f1))"

# ---------------------------------------------------------------------------
# The offline audit verifier is in the runtime file set and runs there, where
# there is no tsx and no TypeScript: `npm run audit:verify` without a URL is a
# usage error (exit 2, every module loaded), and with an unreachable database
# the pg driver answers (exit 2, "cannot read the audit journal").
[ -f "$RT/dist/src/cli/audit-verify.js" ] || die "dist/src/cli/audit-verify.js is not in the runtime file set"
rc=0
(cd "$RT" && env "${RUNTIME_ENV[@]}" npm_config_update_notifier=false npm run --silent audit:verify) >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q '^usage: node dist/src/cli/audit-verify.js' "$WORK/verify.log" ||
  { cat "$WORK/verify.log" >&2; die "npm run audit:verify without a URL in the runtime file set exited $rc (expected 2 and the usage line)"; }
rc=0
(cd "$RT" && env "${RUNTIME_ENV[@]}" node dist/src/cli/audit-verify.js postgres://nobody@127.0.0.1:1/none) >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q '^cannot read the audit journal' "$WORK/verify.log" ||
  { cat "$WORK/verify.log" >&2; die "node dist/src/cli/audit-verify.js against a closed port exited $rc (expected 2, cannot read)"; }
log "offline audit verifier: dist/src/cli/audit-verify.js runs from the runtime file set (npm run audit:verify)"

# ---------------------------------------------------------------------------
# Start CMD from the runtime file set, as the container would.
mapfile -d '' -t CMD_ARGV < <(json_argv "$CMD_JSON")
mapfile -d '' -t HEALTH_ARGV < <(json_argv "$HEALTH_JSON")
[ "${#CMD_ARGV[@]}" -gt 0 ] || die "CMD must be a JSON array (exec form), got: $CMD_JSON"
[ "${#HEALTH_ARGV[@]}" -gt 0 ] || die "HEALTHCHECK CMD must be a JSON array (exec form), got: $HEALTH_JSON"

# The image runs as a non-root user over root-owned files: when this check runs
# as root, run the server and the health check as nobody to prove they need no
# write access and no root.
declare -a AS_USER=()
WHO="uid $(id -u)"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  chmod 755 "$WORK"
  AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  WHO="uid 65534 (nobody)"
fi

# ---------------------------------------------------------------------------
# Started as the image is (MINT_LISTEN=0.0.0.0:50051) without credentials, the
# server must refuse to start: exit 2 and one line saying how to mount them.
rc=0
(cd "$RT" && exec env "${RUNTIME_ENV[@]}" "${AS_USER[@]}" timeout 20 "${CMD_ARGV[@]}") >"$WORK/bare.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || { cat "$WORK/bare.log" >&2; die "started without credentials on 0.0.0.0 the server exited $rc (expected 2)"; }
[ "$(wc -l <"$WORK/bare.log")" = 1 ] || { cat "$WORK/bare.log" >&2; die "the refusal is not one line"; }
grep -q 'MINT_LISTEN=0.0.0.0:50051 is reachable from other hosts' "$WORK/bare.log" && grep -q 'docker run -v' "$WORK/bare.log" ||
  die "the refusal does not say how to mount the certificates and auth file: $(cat "$WORK/bare.log")"
log "without credentials: exit 2, one line: $(cut -c1-100 "$WORK/bare.log")..."

# ---------------------------------------------------------------------------
# Started the way the `docker run` line of docs/security.md does: certificates and the
# auth file mounted read-only under /secrets (here: a directory made now with
# openssl), listening on every interface (port 0 here, so runs never collide).
SECRETS="$WORK/secrets"
mkdir -p "$SECRETS"
(
  cd "$SECRETS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj /CN=check-ca -days 2
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=mint-server
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 2 -extfile server.ext -out server.crt
  cp ca.crt client-ca.crt
  printf 'principals:\n  - name: check\n    roles: [reader]\n    scopes: ["*"]\n    token_sha256: ["%s"]\n' "$(printf check-token | sha256sum | cut -d' ' -f1)" >auth.yaml
  chmod 644 ./*
) >"$WORK/secrets.log" 2>&1 || { cat "$WORK/secrets.log" >&2; die "could not make test certificates with openssl"; }
chmod 755 "$SECRETS"
SECRET_ENV=(MINT_TLS_CERT="$SECRETS/server.crt" MINT_TLS_KEY="$SECRETS/server.key" MINT_TLS_CLIENT_CA="$SECRETS/client-ca.crt" MINT_AUTH_FILE="$SECRETS/auth.yaml")

(
  cd "$RT"
  exec env "${RUNTIME_ENV[@]}" MINT_LISTEN=0.0.0.0:0 MINT_LOG_LEVEL=info "${SECRET_ENV[@]}" "${AS_USER[@]}" "${CMD_ARGV[@]}"
) >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
log "started ${CMD_ARGV[*]} as $WHO (pid $SERVER_PID)"

ADDRESS=""
for _ in $(seq 1 200); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$SERVER_LOG" >&2
    die "the server exited before listening"
  fi
  ADDRESS=$(node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
    for (const l of lines) {
      try { const j = JSON.parse(l); if (j.msg === "listening" && typeof j.address === "string") { process.stdout.write(j.address); break; } } catch {}
    }
  ' "$SERVER_LOG")
  [ -n "$ADDRESS" ] && break
  sleep 0.1
done
[ -n "$ADDRESS" ] || {
  cat "$SERVER_LOG" >&2
  die "no JSON \"listening\" line with an address within 20 s"
}
log "listening on $ADDRESS"

# ---------------------------------------------------------------------------
# The HEALTHCHECK command against it.
if ! (cd "$RT" && env "${RUNTIME_ENV[@]}" MINT_LISTEN="$ADDRESS" "${SECRET_ENV[@]}" "${AS_USER[@]}" "${HEALTH_ARGV[@]}") >"$WORK/health.log" 2>&1; then
  cat "$WORK/health.log" >&2
  die "HEALTHCHECK ${HEALTH_ARGV[*]} did not exit 0"
fi
log "HEALTHCHECK ${HEALTH_ARGV[*]}: SERVING"

# ---------------------------------------------------------------------------
# SIGTERM: drain and exit 0.
kill -TERM "$SERVER_PID"
status=0
for _ in $(seq 1 150); do
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  die "the server did not exit within 15 s of SIGTERM"
fi
wait "$SERVER_PID" || status=$?
SERVER_PID=""
if [ "$status" -ne 0 ]; then
  tail -n 20 "$SERVER_LOG" >&2
  die "the server exited $status after SIGTERM (expected 0)"
fi
log "SIGTERM: exited 0"
log "OK"
