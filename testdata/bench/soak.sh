#!/usr/bin/env bash
# soak.sh [DURATION_S] [RATE] - bounded soak of users-core: mixed Digest and
# Bearer REGISTERs over UDP plus HTTP logins and refreshes, all on 127.0.0.1.
#
# Defaults: DURATION_S=600, RATE=600 REGISTERs/s in all (a light load: the
# highest clean Digest rate measured with register.sh is 11,000/s on the
# 2-CPU VM; pass a higher RATE for a harder soak):
#   Digest  RATE*0.7/s  shared run.sh (REGISTER -> 401 -> REGISTER+Digest -> 200)
#   Bearer  RATE*0.3/s  SIPp + register_bearer.xml (REGISTER+Bearer -> 200), with
#                       tokens of BEARER_USERS users logged in over HTTP first
#   HTTP    HTTP_RATE/s (default 5) alternating POST /auth/login and
#                       POST /auth/refresh, counting non-200 answers
# Prints ONE line on stdout:
#   soak duration= rate= digest_ok_per_s= digest_fail_pct= digest_p99_ms=
#        bearer_ok_per_s= bearer_fail_pct= bearer_p99_ms= http_ok= http_fail=
#        heap_start_mb= heap_end_mb= goroutines_start= goroutines_end=
#        rss_start_mb= rss_end_mb= reg_ok= reg_not_ok= verdict= out=
#
# BOUNDS (verdict=ok only when all hold, else verdict=FAIL and exit status 1):
#   - failures < 0.1 % each for Digest REGISTERs, Bearer REGISTERs and HTTP requests
MAX_FAIL_PCT=0.1
#   - heap_end <= heap_start + 64 MiB  (go_memstats_heap_inuse_bytes)
MAX_HEAP_GROWTH_MB=64
#   - goroutines_end <= goroutines_start + 50  (go_goroutines)
MAX_GOROUTINE_GROWTH=50
#   - users-core still alive at the end
# "start" = the /metrics sample WARMUP s into the load (default min(60, DURATION/6)).
# The heap has a steady state to reach first: sipgo keeps each answered UDP
# transaction (about 4-8 KB) for Timer J, 32 s, so at 600/s about 150 MiB
# are held once 32 s have passed (measured: a plateau near 190 MiB from
# 40 s on). The heap bound is about growth after that plateau, so keep
# WARMUP above 40 s: a run shorter than 4 minutes says little about leaks.
# "end" = the last sample taken while the load still runs (about 3 s before its end).
# /metrics is also sampled every SAMPLE_EVERY s (default 10) into timeline.csv.
#
# Setup as in register.sh: build ./cmd/users-core (or UC_BIN), take the 10,000 bench
# users from $BENCH_WORK/data/users.csv (written here if missing), import them once
# per BENCH_WORK with cheap Argon2id into $BENCH_WORK/users-core/pristine (the same
# marker register.sh uses, so either script reuses the other's import), copy that data
# dir, start `users-core serve` with HTTP and SIP UDP on kernel-chosen 127.0.0.1 ports
# (from --ready-file), stop it with SIGTERM at the end, on error or on Ctrl-C.
#
# The UDP pre-parse filter (sip.rate_per_source, default 2000 datagrams/s per source
# IP) would drop most of this load, which all comes from 127.0.0.1: the soak turns it
# off (USERS_CORE_SIP_RATE_PER_SOURCE=0) unless that variable is set. users-core also
# serves with the import's cheap Argon2id parameters (USERS_CORE_PASSWORD_ARGON2_*),
# so logins do not rehash every password with the default parameters.
#
# Env (optional): BENCH_WORK SHARED_BENCH DOMAIN GO UC_BIN UC_SERVE_ARGS USERS_CORE_*
#   IMPORT_ARGON2_* (as register.sh), BEARER_USERS (200), HTTP_RATE (5),
#   WARMUP, SAMPLE_EVERY, LAT (rtd: run.sh's cheaper latency source), RECV_TIMEOUT (5000)
# Exit status: 0 verdict=ok, 1 verdict=FAIL or setup failure, 2 bad usage.
set -uo pipefail

DURATION="${1:-600}"; RATE="${2:-600}"
case "$DURATION$RATE" in *[!0-9]*|"") echo "usage: soak.sh [DURATION_S] [RATE] (integers)" >&2; exit 2;; esac
[ "$DURATION" -ge 20 ] || { echo "soak.sh: DURATION_S must be at least 20" >&2; exit 2; }
[ "$RATE" -ge 2 ] || { echo "soak.sh: RATE must be at least 2" >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
[ -x "$SHARED_BENCH/run.sh" ] || { echo "soak.sh: $SHARED_BENCH/run.sh not found (set SHARED_BENCH)" >&2; exit 1; }
SHARED_BENCH="$(cd "$SHARED_BENCH" && pwd)"
export BENCH_WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/users-core-bench}"
WORK="$BENCH_WORK"
export DOMAIN="${DOMAIN:-bench.local}"
GO="${GO:-go}"
UCW="$WORK/users-core"
BIN="$UCW/bin/users-core"
CSV="$WORK/data/users.csv"
BEARER_USERS="${BEARER_USERS:-200}"
HTTP_RATE="${HTTP_RATE:-5}"
SAMPLE_EVERY="${SAMPLE_EVERY:-10}"
WARMUP="${WARMUP:-$(( DURATION / 6 < 60 ? DURATION / 6 : 60 ))}"
DIGEST_RATE=$(( (RATE * 7 + 5) / 10 ))
BEARER_RATE=$(( RATE - DIGEST_RATE ))
STAMP="$(date +%Y%m%d-%H%M%S)"
RUN="$UCW/soak/${STAMP}_d${DURATION}_r${RATE}"
mkdir -p "$WORK/data" "$WORK/results" "$UCW/bin" "$RUN"
log() { echo "soak.sh: $*" >&2; }
command -v sipp >/dev/null || { log "sipp not found (apt-get install sip-tester)"; exit 1; }
command -v curl >/dev/null || { log "curl not found"; exit 1; }
command -v jq >/dev/null || { log "jq not found"; exit 1; }

# ---- cleanup: stop what this script started, by pid --------------------------------
UC_PID=""; BG_PIDS=()
stop_pid() {  # pid [grace tenths]
  local p="$1" n="${2:-70}"
  kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 1 "$n"); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}
cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do stop_pid "$p" 20; done
  BG_PIDS=()
  [ -n "$UC_PID" ] && stop_pid "$UC_PID" 70
  UC_PID=""
  [ -n "${DATA:-}" ] && [ -d "$DATA" ] && rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# ---- build ---------------------------------------------------------------------------
if [ -n "${UC_BIN:-}" ]; then
  [ -x "$UC_BIN" ] || { log "UC_BIN=$UC_BIN is not an executable"; exit 1; }
  BIN="$UC_BIN"
else
  log "building users-core from $REPO"
  (cd "$REPO" && "$GO" build -o "$BIN" ./cmd/users-core) || { log "go build failed"; exit 1; }
fi

# ---- users and import (same files and marker as register.sh) ------------------------------
if [ ! -s "$CSV" ]; then
  log "writing $CSV (10000 users)"
  awk 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < 10000; i++) printf "user%04d;secret-%04d;\n", i, i }' > "$CSV.tmp" &&
    mv "$CSV.tmp" "$CSV"
fi
# shellcheck source=import.sh
. "$HERE/import.sh"
bench_import_users || exit 1
NUSERS=$(($(wc -l < "$CSV") - 1))
[ "$BEARER_USERS" -le "$NUSERS" ] || BEARER_USERS="$NUSERS"

# ---- start users-core ----------------------------------------------------------------------
DATA="$RUN/data"; cp -a "$PRISTINE" "$DATA"
READY="$RUN/ready.json"; UCLOG="$RUN/users-core.log"
export USERS_CORE_SIP_RATE_PER_SOURCE="${USERS_CORE_SIP_RATE_PER_SOURCE:-0}"
# serve with the import's Argon2id parameters: otherwise every first login of a user
# rehashes its password with the default (expensive) parameters, ~0.4 s each here
export USERS_CORE_PASSWORD_ARGON2_MEMORY_COST="${USERS_CORE_PASSWORD_ARGON2_MEMORY_COST:-${IMPORT_ARGON2_MEMORY:-1024}}"
export USERS_CORE_PASSWORD_ARGON2_TIME_COST="${USERS_CORE_PASSWORD_ARGON2_TIME_COST:-${IMPORT_ARGON2_TIME:-1}}"
export USERS_CORE_PASSWORD_ARGON2_PARALLELISM="${USERS_CORE_PASSWORD_ARGON2_PARALLELISM:-${IMPORT_ARGON2_PARALLELISM:-1}}"
export USERS_CORE_PASSWORD_MIN_LENGTH="${USERS_CORE_PASSWORD_MIN_LENGTH:-8}"
# shellcheck disable=SC2206
SERVE=("$BIN" serve --data-dir "$DATA" --domain "$DOMAIN" --http 127.0.0.1:0 --sip-udp 127.0.0.1:0
       --sip-tcp off --sip-ws off --sip-tls off --sip-wss off --ready-file "$READY" --log-format json
       ${UC_SERVE_ARGS:-})
printf '%q ' "${SERVE[@]}" > "$RUN/serve_cmd.txt"; echo >> "$RUN/serve_cmd.txt"
"${SERVE[@]}" </dev/null >"$UCLOG" 2>&1 &
UC_PID=$!
SIP_PORT=""; HTTP_PORT=""
for _ in $(seq 1 300); do
  kill -0 "$UC_PID" 2>/dev/null || { log "users-core exited before ready, see $UCLOG"; tail -5 "$UCLOG" >&2; UC_PID=""; exit 1; }
  if [ -s "$READY" ]; then
    SIP_PORT="$(jq -r '.sip_udp // empty' "$READY" 2>/dev/null | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p')"
    HTTP_PORT="$(jq -r '.http // empty' "$READY" 2>/dev/null | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p')"
    [ -n "$SIP_PORT" ] && [ -n "$HTTP_PORT" ] && break
  fi
  sleep 0.1
done
[ -n "$SIP_PORT" ] && [ -n "$HTTP_PORT" ] || { log "users-core not ready after 30 s (ready file: $(cat "$READY" 2>/dev/null))"; exit 1; }
API="http://127.0.0.1:$HTTP_PORT"
log "users-core pid $UC_PID sip udp 127.0.0.1:$SIP_PORT http $API (run dir $RUN)"

# ---- metrics helpers -------------------------------------------------------------------------
metric() {  # metric NAME FILE [LABEL-REGEX]: the sum of matching series
  awk -v n="$1" -v re="${3:-}" '$1 !~ /^#/ {
      name = $1; sub(/\{.*/, "", name)
      if (name == n && (re == "" || $1 ~ re)) { s += $NF; found = 1 } }
    END { if (found) printf "%.0f", s; else print "na" }' "$2"
}
sample() {  # sample FILE: fetch /metrics into FILE
  curl -s --max-time 5 -o "$1.tmp" "$API/metrics" && mv "$1.tmp" "$1"
}

# ---- log in BEARER_USERS users: SIPp injection file of user;token; -----------------------------
TOKENS="$RUN/tokens.csv"
echo SEQUENTIAL > "$TOKENS"
login_fail=0
for i in $(seq 0 $((BEARER_USERS - 1))); do
  u="$(awk -F';' -v n=$((i + 2)) 'NR == n { print $1 ";" $2; exit }' "$CSV")"
  body="$(jq -cn --arg u "${u%%;*}" --arg p "${u#*;}" '{username: $u, password: $p}')"
  tok="$(curl -s --max-time 10 -H 'Content-Type: application/json' -d "$body" "$API/auth/login" | jq -r '.access_token // empty' 2>/dev/null)"
  if [ -n "$tok" ]; then echo "${u%%;*};$tok;" >> "$TOKENS"; else login_fail=$((login_fail + 1)); fi
done
NTOK=$(($(wc -l < "$TOKENS") - 1))
[ "$NTOK" -gt 0 ] || { log "no Bearer user could log in ($login_fail failures), see $UCLOG"; exit 1; }
[ "$login_fail" -eq 0 ] || log "$login_fail of $BEARER_USERS initial logins failed"
log "$NTOK users logged in for Bearer REGISTERs"

# ---- load: Bearer SIPp, HTTP loop, sampler in the background; Digest run.sh in the foreground ---
T0="$(date +%s)"
DEADLINE=$((T0 + DURATION))

BDIR="$RUN/bearer"; mkdir -p "$BDIR"
BMAX=$(( BEARER_RATE * 3 > 100 ? BEARER_RATE * 3 : 100 ))
(cd "$BDIR" && exec timeout --signal=TERM $((DURATION + 90)) sipp "127.0.0.1:$SIP_PORT" \
   -sf "$HERE/register_bearer.xml" -inf "$TOKENS" -key domain "$DOMAIN" -key expires 3600 \
   -t u1 -i 127.0.0.1 -r "$BEARER_RATE" -rp 1000 -m $((BEARER_RATE * DURATION)) -l "$BMAX" \
   -recv_timeout "${RECV_TIMEOUT:-5000}" -timeout "$((DURATION + 60))s" \
   -max_recv_loops 10000 -max_sched_loops 10000 -buff_size 4194304 \
   -nostdin -default_behaviors all,-bye \
   -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 100 -trace_err -error_file errors.log \
   > sipp_stdout.log 2>&1; echo $? > sipp_rc.txt) &
BG_PIDS+=($!); BEARER_JOB=$!

HTTP_OUT="$RUN/http.txt"
( interval="$(awk -v r="$HTTP_RATE" 'BEGIN { printf "%.3f", (r > 0 ? 1 / r : 1) }')"
  ok=0; fail=0; rt=""; i=0; max=$((DURATION * HTTP_RATE + 10))
  while [ "$(date +%s)" -lt "$DEADLINE" ] && [ "$i" -lt "$max" ]; do
    if [ -z "$rt" ]; then   # login a random bench user
      n=$((RANDOM % NUSERS))
      body="$(printf '{"username":"user%04d","password":"secret-%04d"}' "$n" "$n")"; route=login
    else                   # refresh the last refresh token (rotates it)
      body="$(jq -cn --arg t "$rt" '{refresh_token: $t}')"; route=refresh
    fi
    rm -f "$RUN/http_body.json"
    code="$(curl -s --max-time 5 -o "$RUN/http_body.json" -w '%{http_code}' \
            -H 'Content-Type: application/json' -d "$body" "$API/auth/$route")"
    if [ "$code" = 200 ]; then
      ok=$((ok + 1))
      rt="$(jq -r '.refresh_token // empty' "$RUN/http_body.json" 2>/dev/null)"
      [ "$route" = refresh ] && [ $((i % 4)) = 3 ] && rt=""   # log in again now and then
    else
      fail=$((fail + 1)); rt=""
      echo "$(date +%T) $route $code $(head -c 200 "$RUN/http_body.json" 2>/dev/null)" >> "$RUN/http_failures.log"
    fi
    echo "$ok $fail" > "$HTTP_OUT"
    i=$((i + 1))
    sleep "$interval"
  done
  echo "$ok $fail" > "$HTTP_OUT" ) &
BG_PIDS+=($!); HTTP_JOB=$!

TIMELINE="$RUN/timeline.csv"
echo "t_s,heap_inuse_mb,goroutines,rss_mb" > "$TIMELINE"
( end_at=$((DEADLINE - 3)); started=0; n=0
  while [ "$n" -lt $((DURATION + 10)) ]; do
    now="$(date +%s)"; [ "$now" -le "$end_at" ] || break
    f="$RUN/metrics_last.txt"
    if sample "$f"; then
      awk -v t=$((now - T0)) -v h="$(metric go_memstats_heap_inuse_bytes "$f")" -v g="$(metric go_goroutines "$f")" \
          -v r="$(metric process_resident_memory_bytes "$f")" 'BEGIN { printf "%d,%.1f,%s,%.1f\n", t, h / 1048576, g, r / 1048576 }' >> "$TIMELINE"
      if [ "$started" = 0 ] && [ $((now - T0)) -ge "$WARMUP" ]; then cp "$f" "$RUN/metrics_start.txt"; started=1; fi
      cp "$f" "$RUN/metrics_end.txt"
    fi
    n=$((n + 1))
    # next sample: every SAMPLE_EVERY s, but also at WARMUP and at the end
    next=$((now + SAMPLE_EVERY))
    [ "$started" = 0 ] && [ $((T0 + WARMUP)) -lt "$next" ] && next=$((T0 + WARMUP))
    [ "$next" -gt "$end_at" ] && [ "$now" -lt "$end_at" ] && next="$end_at"
    while [ "$(date +%s)" -lt "$next" ]; do sleep 0.2; done
  done ) &
BG_PIDS+=($!); SAMPLER_JOB=$!

log "load: digest ${DIGEST_RATE}/s + bearer ${BEARER_RATE}/s + http ${HTTP_RATE}/s for ${DURATION}s"
DIGEST_LINE="$(TARGET_HOST=127.0.0.1 TRANSPORT=u1 USERS_CSV="$CSV" SERVER_PIDS="$UC_PID" LAT="${LAT:-rtd}" \
  OUT_DIR="$WORK/results/${STAMP}_soak_digest_r${DIGEST_RATE}_d${DURATION}" \
  "$SHARED_BENCH/run.sh" "$DIGEST_RATE" "$DURATION" "$SIP_PORT")"
echo "$DIGEST_LINE" > "$RUN/digest_line.txt"

# let the background jobs finish on their own (each is bounded), then stop them
for j in "$SAMPLER_JOB" "$HTTP_JOB" "$BEARER_JOB"; do
  for _ in $(seq 1 900); do kill -0 "$j" 2>/dev/null || break; sleep 0.1; done   # <= 90 s each
  stop_pid "$j" 20
done
BG_PIDS=()
alive=yes; kill -0 "$UC_PID" 2>/dev/null || alive=no
[ "$alive" = yes ] && sample "$RUN/metrics_after.txt"   # after the load: counters
[ "$alive" = yes ] || log "users-core DIED during the soak, see $UCLOG"

# ---- results -----------------------------------------------------------------------------------
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p; s/^$1=\([^[:space:]]*\).*/\1/p" <<< "$2" | head -1; }
d_ok_s="$(field ok_per_s "$DIGEST_LINE")"; d_fail="$(field fail_pct "$DIGEST_LINE")"; d_p99="$(field p99_ms "$DIGEST_LINE")"
d_calls="$(field calls "$DIGEST_LINE")"; d_ok="$(field ok "$DIGEST_LINE")"

# Bearer: SIPp's cumulative counters in the last line of stat.csv, latency from the rtt file
b_ok=0; b_failed=0
if [ -s "$BDIR/stat.csv" ]; then
  read -r b_ok b_failed < <(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } }
      END { print $s + 0, $f + 0 }' "$BDIR/stat.csv")
fi
b_total=$((BEARER_RATE * DURATION))
b_ok_s="$(awk -v o="$b_ok" -v d="$DURATION" 'BEGIN { printf "%.1f", o / d }')"
b_fail="$(awk -v o="$b_ok" -v t="$b_total" 'BEGIN { printf "%.3f", (t > 0 ? 100 * (t - o) / t : 100) }')"
RTT="$(ls "$BDIR"/*_rtt.csv 2>/dev/null | head -1)"
b_p99="na"
# rtt file: Date_ms;response_time_ms;rtd_no
[ -n "$RTT" ] && b_p99="$(awk -F';' 'NR > 1 && $2 ~ /^[0-9.]+$/ { print $2 }' "$RTT" | sort -n |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "na"; else { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.0f", a[i] } }')"

read -r h_ok h_fail < <(cat "$HTTP_OUT" 2>/dev/null || echo "0 0")
h_ok="${h_ok:-0}"; h_fail="${h_fail:-0}"

mb() { awk -v b="$1" 'BEGIN { if (b == "na" || b == "") print "na"; else printf "%.1f", b / 1048576 }'; }
S="$RUN/metrics_start.txt"; E="$RUN/metrics_end.txt"; A="$RUN/metrics_after.txt"
if [ -s "$S" ] && [ -s "$E" ]; then
  heap_s="$(mb "$(metric go_memstats_heap_inuse_bytes "$S")")"; heap_e="$(mb "$(metric go_memstats_heap_inuse_bytes "$E")")"
  gor_s="$(metric go_goroutines "$S")"; gor_e="$(metric go_goroutines "$E")"
  rss_s="$(mb "$(metric process_resident_memory_bytes "$S")")"; rss_e="$(mb "$(metric process_resident_memory_bytes "$E")")"
else
  heap_s=na; heap_e=na; gor_s=na; gor_e=na; rss_s=na; rss_e=na
fi
reg_ok=na; reg_not=na
if [ -s "$A" ]; then
  reg_ok="$(metric users_core_sip_register_total "$A" 'result="ok"')"
  reg_all="$(metric users_core_sip_register_total "$A")"
  reg_chal="$(metric users_core_sip_register_total "$A" 'result="challenge"')"
  reg_not=$(( ${reg_all/na/0} - ${reg_ok/na/0} - ${reg_chal/na/0} ))
  # per result, for the log
  grep '^users_core_sip_register_total' "$A" | sed 's/^/soak.sh:   /' >&2
fi

verdict=ok; why=""
chk() { awk "BEGIN { exit !($1) }" || { verdict=FAIL; why="$why $2"; }; }
[ "$alive" = yes ] || { verdict=FAIL; why="$why users-core-died"; }
if [ -n "$d_fail" ]; then chk "$d_fail < $MAX_FAIL_PCT" "digest_fail_pct>=$MAX_FAIL_PCT"; else verdict=FAIL; why="$why no-digest-result"; fi
chk "$b_fail < $MAX_FAIL_PCT" "bearer_fail_pct>=$MAX_FAIL_PCT"
chk "($h_ok + $h_fail) > 0 && 100 * $h_fail / ($h_ok + $h_fail) < $MAX_FAIL_PCT" "http_fail_pct>=$MAX_FAIL_PCT"
if [ "$heap_s" != na ] && [ "$heap_e" != na ] && [ "$gor_s" != na ] && [ "$gor_e" != na ]; then
  chk "$heap_e <= $heap_s + $MAX_HEAP_GROWTH_MB" "heap_growth>${MAX_HEAP_GROWTH_MB}MiB"
  chk "$gor_e <= $gor_s + $MAX_GOROUTINE_GROWTH" "goroutine_growth>$MAX_GOROUTINE_GROWTH"
else
  verdict=FAIL; why="$why no-metrics-samples"
fi
[ -n "$why" ] && log "FAIL:$why"
WARNERR="$(grep -c '"level":"\(warn\|error\|fatal\|panic\)"' "$UCLOG")"
[ "$WARNERR" -gt 0 ] && log "users-core log: $WARNERR warn/error lines ($UCLOG)"
log "digest: $DIGEST_LINE"
log "bearer: ok=$b_ok failed=$b_failed of $b_total (sipp rc $(cat "$BDIR/sipp_rc.txt" 2>/dev/null || echo '?'), $BDIR); timeline $TIMELINE"

echo "soak duration=$DURATION rate=$RATE digest_rate=$DIGEST_RATE bearer_rate=$BEARER_RATE" \
  "digest_ok_per_s=${d_ok_s:-na} digest_fail_pct=${d_fail:-na} digest_p99_ms=${d_p99:-na} digest_ok=${d_ok:-na}/${d_calls:-na}" \
  "bearer_ok_per_s=$b_ok_s bearer_fail_pct=$b_fail bearer_p99_ms=$b_p99 bearer_ok=$b_ok/$b_total" \
  "http_ok=$h_ok http_fail=$h_fail heap_start_mb=$heap_s heap_end_mb=$heap_e goroutines_start=$gor_s goroutines_end=$gor_e" \
  "rss_start_mb=$rss_s rss_end_mb=$rss_e reg_ok=$reg_ok reg_not_ok=$reg_not uc_log_warn_err=$WARNERR verdict=$verdict out=$RUN"
[ "$verdict" = ok ]
