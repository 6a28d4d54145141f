#!/usr/bin/env bash
# register.sh RATE DURATION [TRANSPORT] - REGISTER+Digest load on users-core
# (and optionally on the Kamailio reference) with the shared SIPp harness.
#
# One registration = REGISTER -> 401 -> REGISTER(Authorization: Digest) -> 200,
# driven by the shared run.sh at RATE/s for DURATION s over TRANSPORT (u1 =
# UDP, the default; t1 = one TCP connection). Prints ONE line on stdout:
#
#   users-core rate= ok_per_s= failed= fail_pct= p50_ms= p99_ms= server_cpu_pct=
#              sipp_cpu_pct= <the other fields of run.sh's line> alive= uc_utime_s=
#              uc_stime_s= uc_threads= uc_rss_peak_mb= uc_log_warn_err= uc_build= bin_sha256= uc_log=
#
# and with KAMAILIO=1 also "kamailio ..." (same fields) and
# "ratio ok_per_s users-core/kamailio=...". Everything else goes to stderr.
#
# Steps: build users-core from this checkout; get the 10,000 bench users
# (user0000..user9999, password secret-<nnnn>) from $BENCH_WORK/data/users.csv
# as made by the shared setup.sh, or write that file here in the same format;
# import them ONCE per $BENCH_WORK into $BENCH_WORK/users-core/pristine; copy
# that data dir for each run (so every run starts with no bindings, like a
# freshly started Kamailio); start `users-core serve` on 127.0.0.1 (free port
# chosen by the kernel, read from --ready-file), run run.sh with SERVER_PIDS =
# users-core, stop it with SIGTERM. Kamailio (KAMAILIO=1) runs after
# users-core has stopped, never at the same time.
#
# Argon2id: the import runs with cheap Argon2id parameters (below) so that
# 10,000 users import in seconds; the stored PHC hashes carry those
# parameters. That is fine for this bench: SIP Digest only reads the HA1
# values, it never touches Argon2. Do not copy that data dir anywhere real.
# The password policy minimum is lowered for the import too ("secret-0000"
# has 11 characters, the default minimum is 12).
#
# Env (all optional):
#   BENCH_WORK      data, runs and results (default ${TMPDIR:-/tmp}/users-core-bench,
#                   the shared scripts' default)
#   SHARED_BENCH    the shared harness (default <repo>/../shared/bench)
#   DOMAIN          bench.local (SIP domain = Digest realm = AOR domain)
#   N_USERS         10000 (only used when this script writes users.csv itself)
#   KAMAILIO        1 = also measure the Kamailio reference at the same rate
#   KAM_PORT        5070 (Kamailio's UDP+TCP port; must be free)
#   KAM_BIN         /usr/sbin/kamailio (start-kamailio.sh's KAMAILIO)
#   UC_SERVE_ARGS   extra `users-core serve` arguments, e.g. "--digest-algorithms MD5"
#   UC_FRESH        1 (default) = each run starts from a copy of the imported
#                   data dir; 0 = keep one data dir across runs (bindings stay)
#   IMPORT_ARGON2_MEMORY (1024 KiB) IMPORT_ARGON2_TIME (1) IMPORT_ARGON2_PARALLELISM (1)
#   GO              go binary (default go)
#   UC_BIN          use this users-core binary instead of building one
#   USERS_CORE_*    passed to `users-core serve` (e.g. USERS_CORE_LOG_LEVEL=warn)
#   LAT, SIPP_CPUS, QUIET_MAX_PCT, RECV_TIMEOUT, MAX_OPEN, ...  passed to run.sh
#   KAM_CPUS, CHILDREN, USRLOC_DBMODE, ...                      passed to start-kamailio.sh
# Exit status: 0 when the runs completed (whatever their failure counts),
# 1 on a build/import/start failure, 2 on bad usage.
set -uo pipefail

usage() { sed -n '2,7p' "$0" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
RATE="$1"; DURATION="$2"; TRANSPORT="${3:-u1}"
case "$RATE$DURATION" in *[!0-9]*|"") echo "register.sh: RATE and DURATION must be integers" >&2; exit 2;; esac
case "$TRANSPORT" in u1) LISTEN_FLAG=udp ;; t1) LISTEN_FLAG=tcp ;;
  *) echo "register.sh: TRANSPORT must be u1 (UDP) or t1 (TCP)" >&2; exit 2;; esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
[ -x "$SHARED_BENCH/run.sh" ] || { echo "register.sh: $SHARED_BENCH/run.sh not found (set SHARED_BENCH)" >&2; exit 1; }
SHARED_BENCH="$(cd "$SHARED_BENCH" && pwd)"
export BENCH_WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/users-core-bench}"
WORK="$BENCH_WORK"
export DOMAIN="${DOMAIN:-bench.local}"
N_USERS="${N_USERS:-10000}"
KAM_PORT="${KAM_PORT:-5070}"
KAM_BIN="${KAM_BIN:-/usr/sbin/kamailio}"
GO="${GO:-go}"
UCW="$WORK/users-core"
BIN="$UCW/bin/users-core"
CSV="$WORK/data/users.csv"          # SIPp injection file: SEQUENTIAL, then user;password;
STAMP="$(date +%Y%m%d-%H%M%S)"
mkdir -p "$WORK/data" "$WORK/results" "$UCW/bin" "$UCW/runs"

log() { echo "register.sh: $*" >&2; }
command -v sipp >/dev/null || { log "sipp not found (apt-get install sip-tester)"; exit 1; }

# ---- cleanup: stop what this script started, by pid ---------------------------
UC_PID=""; KAM_STARTED=""
stop_uc() {
  [ -n "$UC_PID" ] || return 0
  if kill -0 "$UC_PID" 2>/dev/null; then
    kill -TERM "$UC_PID" 2>/dev/null
    for _ in $(seq 1 70); do kill -0 "$UC_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$UC_PID" 2>/dev/null; then log "users-core pid $UC_PID alive 7 s after SIGTERM, SIGKILL"; kill -KILL "$UC_PID" 2>/dev/null; fi
  fi
  wait "$UC_PID" 2>/dev/null
  UC_PID=""
}
stop_kam() {
  [ -n "$KAM_STARTED" ] || return 0
  LISTEN_PORT="$KAM_PORT" "$SHARED_BENCH/stop-kamailio.sh" >&2
  KAM_STARTED=""
}
cleanup() { stop_uc; stop_kam; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# ---- build ----------------------------------------------------------------------
if [ -n "${UC_BIN:-}" ]; then
  [ -x "$UC_BIN" ] || { log "UC_BIN=$UC_BIN is not an executable"; exit 1; }
  BIN="$UC_BIN"; BUILD="prebuilt"
  log "using prebuilt $BIN"
else
  log "building users-core from $REPO"
  (cd "$REPO" && "$GO" build -o "$BIN" ./cmd/users-core) || { log "go build failed"; exit 1; }
  # which source: HEAD plus a digest of the uncommitted changes (the tree may be edited meanwhile)
  BUILD="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo nogit)"
  if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]; then
    BUILD="$BUILD+dirty-$( { git -C "$REPO" diff HEAD; git -C "$REPO" ls-files -o --exclude-standard -z -- . ":!testdata/bench" | xargs -0 -r cat; } 2>/dev/null | md5sum | cut -c1-8)"
  fi
fi
BUILD="$BUILD bin_sha256=$(sha256sum "$BIN" | cut -c1-12)"

# ---- users -----------------------------------------------------------------------
if [ -s "$CSV" ]; then
  log "reusing $CSV ($(($(wc -l < "$CSV") - 1)) users)"
elif [ "${KAMAILIO:-0}" = 1 ] && [ -x "$KAM_BIN" ]; then
  log "running $SHARED_BENCH/setup.sh (SKIP_INSTALL=1)"
  SKIP_INSTALL=1 N_USERS="$N_USERS" REALM="$DOMAIN" "$SHARED_BENCH/setup.sh" >&2 || { log "setup.sh failed"; exit 1; }
else
  # the same file setup.sh writes: SEQUENTIAL, then "user;password;" per line
  log "writing $CSV ($N_USERS users)"
  awk -v n="$N_USERS" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "user%04d;secret-%04d;\n", i, i }' > "$CSV.tmp" &&
    mv "$CSV.tmp" "$CSV"
fi
NUSERS_CSV=$(($(wc -l < "$CSV") - 1))

# ---- import once per BENCH_WORK -----------------------------------------------------
# shellcheck source=import.sh
. "$HERE/import.sh"
bench_import_users || exit 1

# ---- one users-core run ---------------------------------------------------------------
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p; s/^$1=\([^[:space:]]*\).*/\1/p" <<< "$2" | head -1; }
# "LABEL rate= ok_per_s= failed= fail_pct= p50_ms= p99_ms= server_cpu_pct= sipp_cpu_pct=" then
# the rest of run.sh's fields in its order, then EXTRA
summary() {
  local label="$1" line="$2" extra="$3" k v head="" rest=""
  for k in rate ok_per_s failed fail_pct p50_ms p99_ms server_cpu_pct sipp_cpu_pct; do
    v="$(field "$k" "$line")"; head="$head $k=${v:-na}"
  done
  for kv in $line; do
    case "${kv%%=*}" in rate|ok_per_s|failed|fail_pct|p50_ms|p99_ms|server_cpu_pct|sipp_cpu_pct) ;; *) rest="$rest $kv" ;; esac
  done
  echo "$label$head$rest${extra:+ $extra}"
}

RUN="$UCW/runs/${STAMP}_r${RATE}_d${DURATION}_${TRANSPORT}"
mkdir -p "$RUN"
if [ "${UC_FRESH:-1}" = 1 ]; then
  DATA="$RUN/data"
  cp -a "$PRISTINE" "$DATA"
else
  DATA="$UCW/data"
  [ -d "$DATA" ] || cp -a "$PRISTINE" "$DATA"
fi
READY="$RUN/ready.json"; UCLOG="$RUN/users-core.log"
SERVE=("$BIN" serve --data-dir "$DATA" --domain "$DOMAIN" --http off --sip-tcp off --sip-ws off
       --sip-tls off --sip-wss off --ready-file "$READY" --log-format json)
if [ "$LISTEN_FLAG" = udp ]; then SERVE+=(--sip-udp 127.0.0.1:0); else SERVE+=(--sip-udp off --sip-tcp 127.0.0.1:0); fi
# shellcheck disable=SC2206
SERVE+=(${UC_SERVE_ARGS:-})
printf '%q ' "${SERVE[@]}" > "$RUN/serve_cmd.txt"; echo >> "$RUN/serve_cmd.txt"
# SIPp sends every registration from one address: the per-source UDP rate
# filter (a flood defence) would throttle the benchmark itself, so it is off
# unless the caller sets USERS_CORE_SIP_RATE_PER_SOURCE.
export USERS_CORE_SIP_RATE_PER_SOURCE="${USERS_CORE_SIP_RATE_PER_SOURCE:-0}"
"${SERVE[@]}" </dev/null >"$UCLOG" 2>&1 &
UC_PID=$!
PORT=""
for _ in $(seq 1 300); do        # up to 30 s
  kill -0 "$UC_PID" 2>/dev/null || { log "users-core exited before ready, see $UCLOG"; tail -5 "$UCLOG" >&2; UC_PID=""; exit 1; }
  if [ -s "$READY" ]; then
    PORT="$(grep -o "\"sip_$LISTEN_FLAG\": *\"127\.0\.0\.1:[0-9]*\"" "$READY" | grep -o '[0-9]*"$' | tr -d '"')"
    [ -n "$PORT" ] && break
  fi
  sleep 0.1
done
[ -n "$PORT" ] || { log "users-core not ready after 30 s (ready file: $(cat "$READY" 2>/dev/null))"; exit 1; }
log "users-core pid $UC_PID on $LISTEN_FLAG 127.0.0.1:$PORT (data $DATA, log $UCLOG)"

UC_LINE="$(TARGET_HOST=127.0.0.1 TRANSPORT="$TRANSPORT" USERS_CSV="$CSV" SERVER_PIDS="$UC_PID" \
  OUT_DIR="$WORK/results/${STAMP}_users-core_r${RATE}_d${DURATION}_${TRANSPORT}" \
  "$SHARED_BENCH/run.sh" "$RATE" "$DURATION" "$PORT")"
alive=yes; kill -0 "$UC_PID" 2>/dev/null || alive=no
# users-core's own CPU over its whole life (start-up included: small), user vs
# kernel, its threads and peak RSS, read before it stops
UC_PROC="na"
if [ "$alive" = yes ]; then
  UC_PROC="$(awk -v hz="$(getconf CLK_TCK)" '{ l = $0; sub(/^.*\) /, "", l); split(l, f, " ")
      printf "uc_utime_s=%.1f uc_stime_s=%.1f uc_threads=%d", f[12] / hz, f[13] / hz, f[18] }' "/proc/$UC_PID/stat")"
  UC_PROC="$UC_PROC uc_rss_peak_mb=$(awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$UC_PID/status")"
fi
stop_uc
[ "$alive" = yes ] || log "users-core DIED during the run, see $UCLOG"
# warnings and errors in the users-core log (JSON lines), most frequent first
WARNERR="$(grep -c '"level":"\(warn\|error\|fatal\|panic\)"' "$UCLOG")"
if [ "$WARNERR" -gt 0 ]; then
  log "users-core log: $WARNERR warn/error lines; most frequent:"
  grep '"level":"\(warn\|error\|fatal\|panic\)"' "$UCLOG" |
    sed 's/"time":"[^"]*",\{0,1\}//; s/"\(user\|aor\|source\|kid\)":"[^"]*",\{0,1\}//g' |
    sort | uniq -c | sort -rn | head -5 | sed 's/^/register.sh:   /' >&2
fi
[ "${UC_FRESH:-1}" = 1 ] && rm -rf "$DATA"     # the copy is ~tens of MB; the log stays
UC_SUM="$(summary users-core "$UC_LINE" "alive=$alive $UC_PROC uc_log_warn_err=$WARNERR uc_build=$BUILD uc_log=$UCLOG")"
echo "$UC_SUM"

# ---- optional: Kamailio reference, same rate, after users-core stopped ---------------
[ "${KAMAILIO:-0}" = 1 ] || exit 0
if [ ! -x "$KAM_BIN" ] || ! ls /usr/lib/*/kamailio/modules/db_sqlite.so >/dev/null 2>&1; then
  log "kamailio is not installed (apt-get install kamailio kamailio-sqlite-modules, or $SHARED_BENCH/setup.sh without SKIP_INSTALL): Kamailio part skipped"
  exit 0
fi
if [ ! -s "$WORK/data/kamailio.sqlite" ]; then
  log "running $SHARED_BENCH/setup.sh (SKIP_INSTALL=1) for $WORK/data/kamailio.sqlite"
  SKIP_INSTALL=1 N_USERS="$NUSERS_CSV" REALM="$DOMAIN" "$SHARED_BENCH/setup.sh" >&2 || { log "setup.sh failed"; exit 1; }
fi
if ss -Hlun "sport = :$KAM_PORT" | grep -q . || ss -Hltn "sport = :$KAM_PORT" | grep -q .; then
  log "port $KAM_PORT is in use: Kamailio part skipped (set KAM_PORT)"; exit 0
fi
sleep "${PAUSE:-2}"
# start-kamailio.sh reads KAMAILIO as the binary's path: not our KAMAILIO=1
KAMAILIO="$KAM_BIN" LISTEN_IP=127.0.0.1 LISTEN_PORT="$KAM_PORT" "$SHARED_BENCH/start-kamailio.sh" >&2 || { log "start-kamailio.sh failed"; exit 1; }
KAM_STARTED=1
KAM_PID="$(cat "$WORK/run/kamailio-$KAM_PORT.pid")"
KAM_LINE="$(TARGET_HOST=127.0.0.1 TRANSPORT="$TRANSPORT" USERS_CSV="$CSV" SERVER_PIDS="$KAM_PID" \
  OUT_DIR="$WORK/results/${STAMP}_kamailio_r${RATE}_d${DURATION}_${TRANSPORT}" \
  "$SHARED_BENCH/run.sh" "$RATE" "$DURATION" "$KAM_PORT")"
KERR="$(grep -c 'ERROR' "$WORK/run/kamailio-$KAM_PORT.log")"
stop_kam
summary kamailio "$KAM_LINE" "kam_log_errors=$KERR"
a="$(field ok_per_s "$UC_LINE")"; b="$(field ok_per_s "$KAM_LINE")"
echo "ratio ok_per_s users-core/kamailio=$(awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "na" }')"
