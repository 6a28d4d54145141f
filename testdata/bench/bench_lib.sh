# Sourced by register_ws.sh and scale.sh: build, start, probe and stop
# users-core and the bench's Go tools (sipload, seed). Not runnable alone.
#
# The sourcing script sets NAME (its name, for messages) and may set any of
# the env variables below; bench_lib_init sets the rest:
#   BENCH_WORK  ${TMPDIR:-/tmp}/users-core-bench   WORK=$BENCH_WORK, UCW=$WORK/users-core
#   DOMAIN      bench.local
#   GO          go
#   UC_BIN      a prebuilt users-core (no build); SIPLOAD_BIN, SEED_BIN likewise
# Everything is built from the checkout that holds this file (REPO), so the
# seed tool writes exactly what that users-core reads. When the checkout does
# not build (someone's work in progress), run the script from a clean
# worktree of HEAD instead.

bench_lib_init() {
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  REPO="$(cd "$HERE/../.." && pwd)"
  export BENCH_WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/users-core-bench}"
  WORK="$BENCH_WORK"
  UCW="$WORK/users-core"
  export DOMAIN="${DOMAIN:-bench.local}"
  GO="${GO:-go}"
  HZ="$(getconf CLK_TCK)"
  NCPU="$(getconf _NPROCESSORS_ONLN)"
  mkdir -p "$WORK/data" "$WORK/results" "$UCW/bin" "$UCW/runs"
  # a file descriptor nobody writes to: `read -t` on it sleeps without forking
  local fifo
  fifo="$(mktemp -u "$WORK/.sleep.XXXXXX")"
  mkfifo "$fifo" && exec {SLEEP_FD}<>"$fifo" && rm -f "$fifo"
  UC_PID=""
}

log() { echo "$NAME: $*" >&2; }

# nap SECONDS: sleep without a fork (fractions allowed)
nap() { read -r -t "$1" -u "$SLEEP_FD" _ 2>/dev/null || :; }

# now_ms: wall clock in milliseconds (microsecond precision), no fork
now_ms() { local t="${EPOCHREALTIME/[,.]/}"; echo "$((t / 1000)).$(printf '%03d' $((t % 1000)))"; }

# ---- build ----------------------------------------------------------------------
# bench_build_uc: builds $UCW/bin/users-core.<script> (or takes UC_BIN), sets
# BIN to it and BUILD to "<head>[+dirty-<md5>] bin_sha256=<prefix>".
bench_build_uc() {
  # its own name, so that a register.sh or soak.sh run never finds this
  # script's binary at its path (or the reverse)
  BIN="$UCW/bin/users-core.${NAME%.sh}"
  if [ -n "${UC_BIN:-}" ]; then
    [ -x "$UC_BIN" ] || { log "UC_BIN=$UC_BIN is not an executable"; return 1; }
    BIN="$UC_BIN"; BUILD="prebuilt"
    log "using prebuilt $BIN"
  else
    log "building users-core from $REPO"
    (cd "$REPO" && "$GO" build -o "$BIN.tmp$$" ./cmd/users-core && mv -f "$BIN.tmp$$" "$BIN") ||
      { log "go build ./cmd/users-core failed"; rm -f "$BIN.tmp$$"; return 1; }
    BUILD="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo nogit)"
    if [ -n "$(git -C "$REPO" status --porcelain -- . ':!testdata/bench' 2>/dev/null)" ]; then
      BUILD="$BUILD+dirty-$( { git -C "$REPO" diff HEAD; git -C "$REPO" ls-files -o --exclude-standard -z -- . ":!testdata/bench" | xargs -0 -r cat; } 2>/dev/null | md5sum | cut -c1-8)"
    fi
  fi
  BUILD="$BUILD bin_sha256=$(sha256sum "$BIN" | cut -c1-12)"
}

# bench_build_tool TOOL VAR: builds ./testdata/bench/TOOL into
# $UCW/bin/TOOL.<script> (unless $VAR names a prebuilt one) and sets VAR to
# its path.
bench_build_tool() {
  local tool="$1" var="$2" pre="${!2:-}"
  if [ -n "$pre" ]; then
    [ -x "$pre" ] || { log "$var=$pre is not an executable"; return 1; }
    return 0
  fi
  local out="$UCW/bin/$tool.${NAME%.sh}"
  (cd "$REPO" && "$GO" build -o "$out.tmp$$" "./testdata/bench/$tool" && mv -f "$out.tmp$$" "$out") ||
    { log "go build ./testdata/bench/$tool failed"; rm -f "$out.tmp$$"; return 1; }
  printf -v "$var" '%s' "$out"
}

# bench_users_csv: makes sure $CSV (SIPp's "user;password;" after a
# SEQUENTIAL line: the shared setup.sh's file) exists, as register.sh does.
bench_users_csv() {
  CSV="$WORK/data/users.csv"
  if [ -s "$CSV" ]; then
    log "reusing $CSV ($(($(wc -l < "$CSV") - 1)) users)"
  else
    log "writing $CSV (${N_USERS:-10000} users)"
    awk -v n="${N_USERS:-10000}" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "user%04d;secret-%04d;\n", i, i }' > "$CSV.tmp" &&
      mv "$CSV.tmp" "$CSV"
  fi
  NUSERS_CSV=$(($(wc -l < "$CSV") - 1))
}

# ---- run users-core --------------------------------------------------------------------
# uc_start DATA RUNDIR [serve args...]: starts `users-core serve` on DATA with
# the ready file and log in RUNDIR, waits (up to UC_READY_TIMEOUT s, 60) for
# the ready file, sets UC_PID, READY, UCLOG and UC_READY_MS: from just
# before the exec to the ready file's modification time (users-core writes
# it once every listener is up), so the figure does not depend on how often
# this loop polls. Returns 1 when users-core exits or times out.
uc_start() {
  local data="$1" run="$2"; shift 2
  READY="$run/ready.json"; UCLOG="$run/users-core.log"
  rm -f "$READY"
  local cmd=("$BIN" serve --data-dir "$data" --domain "$DOMAIN" --ready-file "$READY" --log-format json "$@")
  printf '%q ' "${cmd[@]}" > "$run/serve_cmd.txt"; echo >> "$run/serve_cmd.txt"
  local t0 t1 deadline
  t0="$(now_ms)"
  "${cmd[@]}" </dev/null >>"$UCLOG" 2>&1 &
  UC_PID=$!
  deadline=$(( ${EPOCHSECONDS} + ${UC_READY_TIMEOUT:-60} ))
  while [ ! -s "$READY" ]; do
    if ! kill -0 "$UC_PID" 2>/dev/null; then
      log "users-core exited before ready, see $UCLOG"; tail -5 "$UCLOG" >&2; wait "$UC_PID" 2>/dev/null; UC_PID=""; return 1
    fi
    if [ "$EPOCHSECONDS" -ge "$deadline" ]; then
      log "users-core not ready after ${UC_READY_TIMEOUT:-60} s, see $UCLOG"; return 1
    fi
    nap 0.001
  done
  t1="$(stat -c %.6Y "$READY")"
  UC_READY_MS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b * 1000 - a }')"
}

# uc_addr KEY: the address KEY (sip_ws, sip_tcp, http, debug, ...) of the ready file
uc_addr() { jq -r --arg k "$1" '.[$k] // empty' "$READY" 2>/dev/null; }

# uc_stop: SIGTERM, up to 7 s, then SIGKILL; only the pid this script started.
uc_stop() {
  [ -n "${UC_PID:-}" ] || return 0
  if kill -0 "$UC_PID" 2>/dev/null; then
    kill -TERM "$UC_PID" 2>/dev/null
    local i
    for i in $(seq 1 70); do kill -0 "$UC_PID" 2>/dev/null || break; nap 0.1; done
    if kill -0 "$UC_PID" 2>/dev/null; then log "users-core pid $UC_PID alive 7 s after SIGTERM, SIGKILL"; kill -KILL "$UC_PID" 2>/dev/null; fi
  fi
  wait "$UC_PID" 2>/dev/null
  UC_PID=""
}

# ---- probes ---------------------------------------------------------------------------------
# proc_ticks PID: utime+stime of PID in clock ticks
proc_ticks() { awk '{ l = $0; sub(/^.*\) /, "", l); split(l, f, " "); print f[12] + f[13] }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# cpu_busy_ticks: busy ticks of all CPUs (user nice system irq softirq steal)
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# rss_kb PID: resident set size in KiB
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# uc_proc_fields: users-core's lifetime CPU, threads and peak RSS (register.sh's uc_* fields)
uc_proc_fields() {
  awk -v hz="$HZ" '{ l = $0; sub(/^.*\) /, "", l); split(l, f, " ")
      printf "uc_utime_s=%.1f uc_stime_s=%.1f uc_threads=%d", f[12] / hz, f[13] / hz, f[18] }' "/proc/$UC_PID/stat"
  awk '/^VmHWM:/ { printf " uc_rss_peak_mb=%d", $2 / 1024 }' "/proc/$UC_PID/status"
}
# uc_gc: a garbage collection in users-core, through the pprof debug
# listener (heap profile with gc=1), when it is on
uc_gc() {
  local d; d="$(uc_addr debug)"
  [ -n "$d" ] && curl -s --max-time 30 -o /dev/null "http://$d/debug/pprof/heap?gc=1"
  return 0
}
# uc_metric NAME: one value from users-core's /metrics (HTTP listener on), or "na"
uc_metric() {
  local h v; h="$(uc_addr http)"
  [ -n "$h" ] && v="$(curl -s --max-time 10 "http://$h/metrics" | awk -v n="$1" '$1 == n { print $2; exit }')"
  echo "${v:-na}"
}
# uc_warn_err LOG: number of warn/error lines in a users-core JSON log (the
# most frequent on stderr)
uc_warn_err() {
  local n; n="$(grep -c '"level":"\(warn\|error\|fatal\|panic\)"' "$1")"
  if [ "$n" -gt 0 ]; then
    log "users-core log: $n warn/error lines; most frequent:"
    grep '"level":"\(warn\|error\|fatal\|panic\)"' "$1" |
      sed 's/"time":"[^"]*",\{0,1\}//; s/"\(user\|aor\|source\|kid\|ip\|dst\|ref\)":"\{0,1\}[^",]*"\{0,1\},\{0,1\}//g' |
      sort | uniq -c | sort -rn | head -5 | sed "s/^/$NAME:   /" >&2
  fi
  echo "$n"
}
# field KEY LINE: the value of KEY= in a key=value line
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p; s/^$1=\([^[:space:]]*\).*/\1/p" <<< "$2" | head -1; }

# bench_cert DIR: a throwaway self-signed certificate for 127.0.0.1 (TLS, WSS)
bench_cert() {
  CERT="$1/cert.pem"; KEY="$1/key.pem"
  [ -s "$CERT" ] && [ -s "$KEY" ] && return 0
  command -v openssl >/dev/null || { log "openssl not found: no certificate for tls/wss"; return 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$KEY" -out "$CERT" 2>/dev/null || { log "openssl failed"; return 1; }
}
