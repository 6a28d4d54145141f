#!/usr/bin/env bash
# register_ws.sh RATE DURATION [ws|tcp|udp|tls|wss] - REGISTER load on users-core
# over WebSocket (default) or another transport, with the Go load generator
# sipload (SIPp has no WebSocket transport). Prints ONE line on stdout:
#
#   users-core-<transport> rate= ok_per_s= failed= fail_pct= p50_ms= p99_ms= server_cpu_pct=
#       gen_cpu_pct= other_cpu_pct= <the other fields of sipload's line> alive= uc_utime_s=
#       uc_stime_s= uc_threads= uc_rss_peak_mb= uc_log_warn_err= uc_build= bin_sha256= uc_log=
#
# One registration = REGISTER -> 401 -> REGISTER(Authorization: Digest, ALG) -> 200
# (AUTH=digest, the default), or REGISTER(Authorization: Bearer <jwt>) -> 200
# (AUTH=bearer: BEARER_USERS users log in over HTTP first). sipload starts
# registrations at RATE/s for DURATION s, open loop, spread over CONNS
# connections (a user always on the same one), users picked at random from
# the 10,000 bench users. Latency = first REGISTER sent -> 200 received.
#
# Setup is register.sh's: the same users.csv and the same one-time import
# (import.sh, cheap Argon2id: bench-only hashes) into
# $BENCH_WORK/users-core/pristine, a fresh copy of that data dir per run, a
# kernel-chosen port read from --ready-file, SIGTERM at the end.
#
# CPU, in percent of ONE core over sipload's run: server = users-core (from
# /proc/<pid>/stat), gen = sipload itself, other = everything else on the
# host (from /proc/stat minus both): a run with other_cpu_pct above ~10-20
# was disturbed by other work; repeat it.
#
# Env (all optional):
#   CONNS         connections (UDP: sockets); default 10 for ws/wss, 4 otherwise
#   AUTH          digest | bearer
#   ALG           MD5 (default) | SHA-256 | SHA-512-256 | first (what the 401 offers first)
#   PICK          random (default) | seq
#   EXPIRES       3600
#   TIMEOUT       5s per transaction (sipload -timeout)
#   MAX_OUT       most registrations in progress (sipload -max-outstanding; default max(100, 2*RATE))
#   BEARER_USERS  200 (AUTH=bearer: users logged in; tokens live 15 min, keep DURATION below ~800)
#   SIPLOAD_ARGS  extra sipload arguments
#   UC_SERVE_ARGS extra `users-core serve` arguments
#   UC_FRESH      1 (default): each run on a fresh copy of the imported data dir; 0: one kept data dir
#   UC_BIN, SIPLOAD_BIN   prebuilt binaries (no build)
#   BENCH_WORK, DOMAIN, N_USERS, GO, IMPORT_ARGON2_*   as register.sh
#   USERS_CORE_*  passed to users-core serve
# Exit status: 0 when the run completed (whatever its failure count), 1 on a
# build/import/start failure, 2 on bad usage.
set -uo pipefail
NAME=register_ws.sh

usage() { sed -n '2,4p' "$0" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
RATE="$1"; DURATION="$2"; TRANSPORT="${3:-ws}"
case "$RATE$DURATION" in *[!0-9]*|"") echo "$NAME: RATE and DURATION must be integers" >&2; exit 2;; esac
case "$TRANSPORT" in ws|wss) CONNS="${CONNS:-10}" ;; tcp|udp|tls) CONNS="${CONNS:-4}" ;;
  *) echo "$NAME: transport must be ws, tcp, udp, tls or wss" >&2; exit 2;; esac
AUTH="${AUTH:-digest}"
case "$AUTH" in digest|bearer) ;; *) echo "$NAME: AUTH must be digest or bearer" >&2; exit 2;; esac

# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_lib_init
STAMP="$(date +%Y%m%d-%H%M%S)"
command -v jq >/dev/null || { log "jq not found (apt-get install jq)"; exit 1; }
[ "$AUTH" = bearer ] && ! command -v curl >/dev/null && { log "curl not found"; exit 1; }

cleanup() { uc_stop; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

bench_build_uc || exit 1
bench_build_tool sipload SIPLOAD_BIN || exit 1
bench_users_csv

# ---- import once per BENCH_WORK (register.sh's import) ---------------------------------
# shellcheck source=import.sh
. "$HERE/import.sh"
bench_import_users || exit 1

RUN="$UCW/runs/${STAMP}_ws_r${RATE}_d${DURATION}_${TRANSPORT}_${AUTH}"
mkdir -p "$RUN"
if [ "${UC_FRESH:-1}" = 1 ]; then
  DATA="$RUN/data"; cp -a "$PRISTINE" "$DATA"
else
  DATA="$UCW/data"; [ -d "$DATA" ] || cp -a "$PRISTINE" "$DATA"
fi

SERVE=(--http off --sip-udp off --sip-tcp off --sip-ws off --sip-tls off --sip-wss off)
case "$TRANSPORT" in
  tls|wss) bench_cert "$UCW" || exit 1; SERVE+=(--tls-cert "$CERT" --tls-key "$KEY") ;;
esac
SERVE+=("--sip-$TRANSPORT" 127.0.0.1:0)
[ "$AUTH" = bearer ] && SERVE+=(--http 127.0.0.1:0)
# shellcheck disable=SC2206
SERVE+=(${UC_SERVE_ARGS:-})
# All the load comes from 127.0.0.1: the per-source UDP filter and the
# per-IP connection cap (flood defences) would throttle the benchmark itself.
export USERS_CORE_SIP_RATE_PER_SOURCE="${USERS_CORE_SIP_RATE_PER_SOURCE:-0}"
export USERS_CORE_SIP_MAX_CONNS_PER_IP="${USERS_CORE_SIP_MAX_CONNS_PER_IP:-0}"
# Logins verify the import's cheap hashes; with the default parameters each
# first login would also rehash (~0.4 s of CPU). As soak.sh does.
export USERS_CORE_PASSWORD_ARGON2_MEMORY_COST="${USERS_CORE_PASSWORD_ARGON2_MEMORY_COST:-${IMPORT_ARGON2_MEMORY:-1024}}"
export USERS_CORE_PASSWORD_ARGON2_TIME_COST="${USERS_CORE_PASSWORD_ARGON2_TIME_COST:-${IMPORT_ARGON2_TIME:-1}}"
export USERS_CORE_PASSWORD_ARGON2_PARALLELISM="${USERS_CORE_PASSWORD_ARGON2_PARALLELISM:-${IMPORT_ARGON2_PARALLELISM:-1}}"
uc_start "$DATA" "$RUN" "${SERVE[@]}" || exit 1
TARGET="$(uc_addr "sip_$TRANSPORT")"
[ -n "$TARGET" ] || { log "no sip_$TRANSPORT address in $READY: $(cat "$READY")"; exit 1; }
log "users-core pid $UC_PID on $TRANSPORT $TARGET, ready in $UC_READY_MS ms (data $DATA, log $UCLOG)"

LOAD=(-target "$TARGET" -transport "$TRANSPORT" -rate "$RATE" -duration "${DURATION}s" -conns "$CONNS"
      -domain "$DOMAIN" -pick "${PICK:-random}" -expires "${EXPIRES:-3600}" -timeout "${TIMEOUT:-5s}"
      -label sipload -lat-file "$RUN/latency_ms.txt")
[ -n "${MAX_OUT:-}" ] && LOAD+=(-max-outstanding "$MAX_OUT")
if [ "$AUTH" = digest ]; then
  LOAD+=(-auth digest -alg "${ALG:-MD5}" -users "$NUSERS_CSV")
else
  # ---- log in BEARER_USERS users: "user;token;" lines ----------------------------------
  API="http://$(uc_addr http)"; TOKENS="$RUN/tokens.csv"; echo SEQUENTIAL > "$TOKENS"
  nb="${BEARER_USERS:-200}"; [ "$nb" -le "$NUSERS_CSV" ] || nb="$NUSERS_CSV"
  log "logging in $nb users over $API/auth/login"
  got=0
  while IFS=';' read -r u p _; do
    tok="$(curl -s --max-time 10 -H 'Content-Type: application/json' \
      -d "$(jq -cn --arg u "$u" --arg p "$p" '{username: $u, password: $p}')" "$API/auth/login" |
      jq -r '.access_token // empty' 2>/dev/null)"
    [ -n "$tok" ] && { echo "$u;$tok;" >> "$TOKENS"; got=$((got + 1)); }
  done < <(sed -n "2,$((nb + 1))p" "$CSV")
  [ "$got" -gt 0 ] || { log "no login succeeded, see $UCLOG"; exit 1; }
  [ "$got" -eq "$nb" ] || log "only $got of $nb logins succeeded"
  LOAD+=(-auth bearer -tokens "$TOKENS")
fi
# shellcheck disable=SC2206
LOAD+=(${SIPLOAD_ARGS:-})
printf '%q ' "$SIPLOAD_BIN" "${LOAD[@]}" > "$RUN/sipload_cmd.txt"; echo >> "$RUN/sipload_cmd.txt"

S0="$(proc_ticks "$UC_PID")"; C0="$(cpu_busy_ticks)"; T0="$EPOCHREALTIME"
"$SIPLOAD_BIN" "${LOAD[@]}" > "$RUN/sipload.txt" 2> "$RUN/sipload.err"
SL_RC=$?
T1="$EPOCHREALTIME"; C1="$(cpu_busy_ticks)"; S1="$(proc_ticks "$UC_PID")"
LINE="$(grep '^sipload ' "$RUN/sipload.txt" | tail -1)"
LINE="${LINE#sipload }"
[ -n "$LINE" ] || { log "sipload failed (rc $SL_RC): $(tail -3 "$RUN/sipload.err")"; LINE="error=sipload_rc_$SL_RC"; }
[ -s "$RUN/sipload.err" ] && sed "s/^/$NAME: /" "$RUN/sipload.err" | head -5 >&2

alive=yes; kill -0 "$UC_PID" 2>/dev/null || alive=no
UC_PROC=na; [ "$alive" = yes ] && UC_PROC="$(uc_proc_fields)"
read -r SERVER_CPU GEN_CPU OTHER_CPU < <(awk -v s="$((S1 - S0))" -v c="$((C1 - C0))" -v hz="$HZ" \
  -v w="$(awk -v a="$T0" -v b="$T1" 'BEGIN { print b - a }')" -v g="$(field gen_cpu_pct "$LINE")" \
  'BEGIN { if (w <= 0) w = 1e-9; sv = 100 * s / hz / w; tot = 100 * c / hz / w; g += 0
           o = tot - sv - g; if (o < 0) o = 0; printf "%.1f %.1f %.1f\n", sv, g, o }')
uc_stop
[ "$alive" = yes ] || log "users-core DIED during the run, see $UCLOG"
WARNERR="$(uc_warn_err "$UCLOG")"
[ "${UC_FRESH:-1}" = 1 ] && rm -rf "$DATA"
[ -s "$RUN/latency_ms.txt" ] && [ "$(stat -c %s "$RUN/latency_ms.txt")" -gt 200000 ] && gzip -f "$RUN/latency_ms.txt"

HEAD="rate=$RATE"
for k in ok_per_s failed fail_pct p50_ms p99_ms; do v="$(field "$k" "$LINE")"; HEAD="$HEAD $k=${v:-na}"; done
HEAD="$HEAD server_cpu_pct=$SERVER_CPU gen_cpu_pct=$GEN_CPU other_cpu_pct=$OTHER_CPU ncpu=$NCPU"
REST=""
for kv in $LINE; do
  case "${kv%%=*}" in rate|ok_per_s|failed|fail_pct|p50_ms|p99_ms|gen_cpu_pct) ;; *) REST="$REST $kv" ;; esac
done
OUT="users-core-$TRANSPORT $HEAD$REST alive=$alive $UC_PROC uc_log_warn_err=$WARNERR uc_build=$BUILD uc_log=$UCLOG"
echo "$(date -Is) $OUT" >> "$WORK/results/summary.log"
echo "$OUT"
