#!/usr/bin/env bash
# register_pg.sh RATE DURATION [NODES] - REGISTER+Digest load on users-core
# nodes sharing one PostgreSQL database, with the shared SIPp harness.
#
# Prints ONE line on stdout:
#
#   users-core-pg nodes= rate= ok_per_s= failed= fail_pct= p50_ms= p99_ms= server_cpu_pct=
#       node_cpu_pcts= pg_cpu_pct= sipp_cpu_pct= other_cpu_pct= kernel_cpu_pct= host_busy_pct=
#       ncpu= pinning= calls= ok= retrans= timeouts= unexpected= udp_rcvbuf_drops= lat_src=
#       p99_merged_ms= node_ok_per_s= node_p50_ms= node_p99_ms= window_s= pg_commits=
#       pg_rollbacks= pg_deadlocks= pg_wal_syncs= pg_wal_mb= pg_log_errors= pg_version= pg_fsync=
#       pg_synchronous_commit= pg_shared_buffers= pool_max_conns= alive= uc_rss_peak_mb=
#       uc_log_warn_err= uc_build= bin_sha256= out=
#
# One registration = REGISTER -> 401 -> REGISTER(Authorization: Digest MD5) -> 200.
# NODES (1, the default, or 2) `users-core serve` processes on 127.0.0.1 share
# one PostgreSQL database (--database-url postgres://...); each has its own
# data dir (holding only a copy of the bench data key), its own UDP port
# (kernel-chosen, from --ready-file) and its own USERS_CORE_NODE_ID
# (bench-node1, bench-node2). One node: the shared run.sh at RATE/s, as
# register.sh runs it. Two nodes: two run.sh at the same time, RATE/2 each,
# one per node, on disjoint halves of the 10,000 bench users (SIPp users
# files of user0000..user4999 and user5000..user9999); ok/s, calls, failures
# and retransmissions are summed, p99_ms is the larger of the two runs' p99
# (p99_merged_ms: over both runs' latencies together), p50_ms is over both.
#
# PostgreSQL: a throwaway cluster in $BENCH_WORK/users-core/pg (initdb once,
# as user postgres when run as root; reused later, also when still running),
# on 127.0.0.1 and a free port from PG_PORT (default: the first free one from
# 55700), default durability (fsync=on, synchronous_commit=on,
# full_page_writes=on), shared_buffers=PG_SHARED_BUFFERS (128MB). Database
# PG_DB (users_core_bench) is filled ONCE from the SQLite data dir import.sh
# makes (register.sh's import, 10,000 users) with `users-core store copy
# --from sqlite://... --to postgres://... --force`; refilled only when that
# import changes. Every run starts equal: TRUNCATE bindings, nonce_counts,
# auth_failures, auth_locks, then CHECKPOINT, before the nodes start.
#
# CPU, in percent of ONE core over the SIPp window (first SIPp start to the
# last SIPp exit), from /proc (utime+stime, plus cutime+cstime for exited
# children, as run.sh counts): node_cpu_pcts per users-core node (their sum:
# server_cpu_pct), pg_cpu_pct = this cluster's postmaster and every process
# under it (backends, walwriter, checkpointer, ...; another cluster on the
# host counts as other), sipp_cpu_pct = the sum of run.sh's figures, other =
# every other user process on the host, kernel = kernel threads, host_busy_pct
# = all busy CPU time (/proc/stat), out of ncpu x 100. Nothing is pinned
# (pinning=none): the scheduler shares the cores between the nodes,
# PostgreSQL and SIPp; SIPP_CPUS pins SIPp (run.sh) when set.
#
# Env (all optional):
#   PG_BIN            PostgreSQL's bin dir (default: the newest /usr/lib/postgresql/*/bin)
#   PG_PORT           the cluster's port when it is started (default: first free from 55700)
#   PG_SHARED_BUFFERS 128MB        PG_MAX_CONNECTIONS 100
#   PG_SETTINGS       extra "-c name=value" server options (applied when the cluster starts)
#   PG_DB             users_core_bench
#   PG_KEEP           1 = leave the cluster running at the end (a later run reuses it);
#                     by default a cluster this run started is stopped
#   POOL_MAX_CONNS    pgxpool connections per node (default: pgx's, max(4, CPUs))
#   LOCK_FILE         e.g. /tmp/bench.lock: before the load, wait (every 5 s, up to
#                     LOCK_WAIT=2400 s) until this file is gone, create it, delete it
#                     when the nodes have stopped (the host's benchmark lock)
#   UC_SERVE_ARGS     extra `users-core serve` arguments;  USERS_CORE_* go to every node
#   UC_BIN            a prebuilt users-core (no build)
#   BENCH_WORK, DOMAIN, N_USERS, GO, IMPORT_ARGON2_*   as register.sh
#   SHARED_BENCH      the shared harness (default <repo>/../shared/bench)
#   LAT, RECV_TIMEOUT, MAX_OPEN, SIPP_CPUS, ...        passed to run.sh (QUIET_MAX_PCT
#                     only with one node: two run.sh would wait for each other)
# Exit status: 0 when the runs completed (whatever their failure counts), 1 on
# a build/import/PostgreSQL/start failure, 2 on bad usage.
set -uo pipefail
NAME=register_pg.sh

usage() { sed -n '2,3p' "$0" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
RATE="$1"; DURATION="$2"; NODES="${3:-1}"
case "$RATE$DURATION" in *[!0-9]*|"") echo "$NAME: RATE and DURATION must be integers" >&2; exit 2;; esac
case "$NODES" in 1|2) ;; *) echo "$NAME: NODES must be 1 or 2" >&2; exit 2;; esac

# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_lib_init
STAMP="$(date +%Y%m%d-%H%M%S)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
[ -x "$SHARED_BENCH/run.sh" ] || { log "$SHARED_BENCH/run.sh not found (set SHARED_BENCH)"; exit 1; }
SHARED_BENCH="$(cd "$SHARED_BENCH" && pwd)"
command -v sipp >/dev/null || { log "sipp not found (apt-get install sip-tester)"; exit 1; }
command -v jq >/dev/null || { log "jq not found (apt-get install jq)"; exit 1; }

if [ -z "${PG_BIN:-}" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && PG_BIN="$d"
  done
fi
[ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/pg_ctl" ] || { log "PostgreSQL's pg_ctl not found (apt-get install postgresql, or set PG_BIN)"; exit 1; }
PSQL="$PG_BIN/psql"; [ -x "$PSQL" ] || PSQL="$(command -v psql)" || { log "psql not found"; exit 1; }
PGW="$UCW/pg"; PGDATA_DIR="$PGW/data"; PG_DB="${PG_DB:-users_core_bench}"
# as_pg CMD...: PostgreSQL's tools refuse to run as root: run them as postgres then
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---- cleanup: stop what this script started, by pid -------------------------------
NODE_PIDS=(); PG_STARTED=""; LOCKED=""
stop_nodes() {
  local i
  for i in "${!NODE_PIDS[@]}"; do
    UC_PID="${NODE_PIDS[$i]}"; uc_stop; NODE_PIDS[$i]=""
  done
}
unlock() {
  [ -n "$LOCKED" ] || return 0
  rm -f "$LOCK_FILE"; LOCKED=""
  log "released $LOCK_FILE"
}
stop_pg() {
  [ -n "$PG_STARTED" ] || return 0
  if [ "${PG_KEEP:-0}" = 1 ]; then
    log "PostgreSQL left running on port $PG_PORT_USED (PG_KEEP=1; stop: $PG_BIN/pg_ctl -D $PGDATA_DIR -m fast stop, as postgres)"
  else
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || log "pg_ctl stop failed"
  fi
  PG_STARTED=""
}
cleanup() { stop_nodes; unlock; stop_pg; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

bench_build_uc || exit 1
bench_users_csv
# shellcheck source=import.sh
. "$HERE/import.sh"
bench_import_users || exit 1

# ---- the PostgreSQL cluster ---------------------------------------------------------------
port_free() { ! ss -Hltn "sport = :$1" | grep -q . ; }
pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }
mkdir -p "$PGW"
[ "$(id -u)" -ne 0 ] || { id postgres >/dev/null 2>&1 || { log "no user postgres (the PostgreSQL package makes it)"; exit 1; }; chown postgres: "$PGW"; }
if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
  log "initdb $PGDATA_DIR"
  rm -rf "$PGDATA_DIR"
  as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C >"$PGW/initdb.log" 2>&1 ||
    { log "initdb failed:"; tail -5 "$PGW/initdb.log" >&2; exit 1; }
fi
PGLOG="$PGW/server.log"
if pg_running; then
  PG_PORT_USED="$(sed -n 4p "$PGDATA_DIR/postmaster.pid")"
  log "reusing the running PostgreSQL on 127.0.0.1:$PG_PORT_USED ($PGDATA_DIR; its settings are those it was started with)"
else
  p="${PG_PORT:-55700}"
  if [ -z "${PG_PORT:-}" ]; then while ! port_free "$p"; do p=$((p + 1)); [ "$p" -lt 55800 ] || { log "no free port in 55700-55799"; exit 1; }; done
  elif ! port_free "$p"; then log "PG_PORT $p is in use"; exit 1; fi
  PG_PORT_USED="$p"
  mkdir -p "$PGW/sock"; [ "$(id -u)" -ne 0 ] || chown postgres: "$PGW/sock"
  touch "$PGLOG"; [ "$(id -u)" -ne 0 ] || chown postgres: "$PGLOG"
  # default durability spelled out: every commit waits for its WAL flush
  PGOPTS="-c listen_addresses=127.0.0.1 -p $PG_PORT_USED -k $PGW/sock -c fsync=on -c synchronous_commit=on"
  PGOPTS="$PGOPTS -c full_page_writes=on -c shared_buffers=${PG_SHARED_BUFFERS:-128MB} -c max_connections=${PG_MAX_CONNECTIONS:-100}"
  PGOPTS="$PGOPTS ${PG_SETTINGS:-}"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT_USED ($PGOPTS)"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 -o "$PGOPTS" start >/dev/null ||
    { log "pg_ctl start failed:"; tail -5 "$PGLOG" >&2; exit 1; }
  PG_STARTED=1
fi
PG_POSTMASTER="$(sed -n 1p "$PGDATA_DIR/postmaster.pid")"
ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT_USED/postgres?sslmode=disable"
DB_URL="postgres://postgres@127.0.0.1:$PG_PORT_USED/$PG_DB?sslmode=disable"
psql_db() { "$PSQL" "$DB_URL" -XAtq -v ON_ERROR_STOP=1 "$@"; }
if [ "$("$PSQL" "$ADMIN_URL" -XAtq -c "SELECT count(*) FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
  "$PSQL" "$ADMIN_URL" -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" || { log "CREATE DATABASE $PG_DB failed"; exit 1; }
  rm -f "$PGW/filled-$PG_DB.txt"
fi

# ---- fill the database once from the imported SQLite data dir --------------------------------
WANT_FILL="$(head -1 "$PRISTINE/imported.txt") db=$PG_DB key=$(md5sum < "$PRISTINE/data.key" | cut -c1-8)"
if [ -f "$PGW/filled-$PG_DB.txt" ] && [ "$(head -1 "$PGW/filled-$PG_DB.txt")" = "$WANT_FILL" ]; then
  log "database $PG_DB already filled ($(sed -n 2p "$PGW/filled-$PG_DB.txt"))"
else
  # copy from a copy: opening the source may migrate it, and PRISTINE is register.sh's
  SRC="$PGW/src"; rm -rf "$SRC"; cp -a "$PRISTINE" "$SRC"
  log "filling $PG_DB: users-core store copy --from sqlite://$SRC/users.db --to ${DB_URL%%\?*} --force"
  if ! out="$("$BIN" store copy --from "sqlite://$SRC/users.db" --to "$DB_URL" --force 2>&1)"; then
    log "store copy failed: $out"; rm -rf "$SRC"; exit 1
  fi
  rm -rf "$SRC"
  log "$(grep -m1 '^copied' <<< "$out")"
  n="$(psql_db -c "SELECT count(*) FROM users")"
  [ "$n" -ge "$NUSERS_CSV" ] || { log "only $n users in $PG_DB after the copy, want $NUSERS_CSV"; exit 1; }
  { echo "$WANT_FILL"; echo "$n users, $(grep -m1 '^copied' <<< "$out")"; } > "$PGW/filled-$PG_DB.txt"
fi
cp "$PRISTINE/data.key" "$PGW/data.key"

# ---- users files: all, or two disjoint halves ---------------------------------------------------
if [ "$NODES" = 1 ]; then
  CSVS=("$CSV"); RATES=("$RATE")
else
  half=$((NUSERS_CSV / 2))
  for h in 1 2; do
    { echo SEQUENTIAL
      if [ "$h" = 1 ]; then sed -n "2,$((half + 1))p" "$CSV"; else sed -n "$((half + 2)),\$p" "$CSV"; fi
    } > "$PGW/users_half$h.csv"
  done
  CSVS=("$PGW/users_half1.csv" "$PGW/users_half2.csv")
  RATES=("$((RATE / 2))" "$((RATE - RATE / 2))")
fi

# ---- the host's benchmark lock ---------------------------------------------------------------------
if [ -n "${LOCK_FILE:-}" ]; then
  waited=0
  until ( set -C; echo helper > "$LOCK_FILE" ) 2>/dev/null; do
    [ "$waited" -lt "${LOCK_WAIT:-2400}" ] || { log "$LOCK_FILE still there after $waited s: giving up"; exit 1; }
    [ $((waited % 60)) = 0 ] && log "waiting for $LOCK_FILE ($(cat "$LOCK_FILE" 2>/dev/null))"
    sleep 5; waited=$((waited + 5))
  done
  LOCKED=1
  log "took $LOCK_FILE"
fi

# ---- every run starts equal: no bindings, no nonce counts, no lockouts, a fresh checkpoint ----------
psql_db -c "TRUNCATE bindings, nonce_counts, auth_failures, auth_locks" -c "CHECKPOINT" ||
  { log "cleaning $PG_DB failed"; exit 1; }

# ---- start the nodes ----------------------------------------------------------------------------------
RUN="$UCW/runs/${STAMP}_pg_n${NODES}_r${RATE}_d${DURATION}"
mkdir -p "$RUN"
NODE_URL="$DB_URL"; [ -n "${POOL_MAX_CONNS:-}" ] && NODE_URL="$NODE_URL&pool_max_conns=$POOL_MAX_CONNS"
export USERS_CORE_SIP_RATE_PER_SOURCE="${USERS_CORE_SIP_RATE_PER_SOURCE:-0}"
SERVE=(--database-url "$NODE_URL" --http off --sip-udp 127.0.0.1:0 --sip-tcp off --sip-ws off --sip-tls off --sip-wss off)
# shellcheck disable=SC2206
SERVE+=(${UC_SERVE_ARGS:-})
PORTS=(); LOGS=()
for i in $(seq 1 "$NODES"); do
  nd="$RUN/node$i"; mkdir -p "$nd/data"; cp "$PGW/data.key" "$nd/data/data.key"; chmod 600 "$nd/data/data.key"
  USERS_CORE_NODE_ID="${NODE_ID_PREFIX:-bench-node}$i" uc_start "$nd/data" "$nd" "${SERVE[@]}" || exit 1
  NODE_PIDS+=("$UC_PID"); LOGS+=("$UCLOG")
  a="$(uc_addr sip_udp)"; PORTS+=("${a##*:}")
  log "node $i: users-core pid $UC_PID on udp $a, ready in $UC_READY_MS ms (log $UCLOG)"
  UC_PID=""
done
PGLOG_OFF="$(stat -c %s "$PGLOG" 2>/dev/null || echo 0)"
pg_stats() {
  psql_db -F ' ' -c "SELECT d.xact_commit, d.xact_rollback, d.deadlocks, w.wal_sync, w.wal_bytes
    FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()"
}
read -r PGS0_COMMIT PGS0_RB PGS0_DL PGS0_SYNC PGS0_WALB < <(pg_stats)

# ---- CPU accounting (run.sh's method: /proc/<pid>/stat, exited children through cutime) ----------------
snapshot() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk '{
    l = $0; o = index(l, "("); c = 0
    for (i = length(l); i > o; i--) if (substr(l, i, 1) == ")") { c = i; break }
    if (!o || !c) next
    comm = substr(l, o + 1, c - o - 1); gsub(/[ \t]/, "_", comm)
    split(substr(l, c + 2), f, " ")
    print substr(l, 1, o - 2), f[2], f[12] + f[13] + f[14] + f[15], comm }'
}
descendants() {
  awk -v roots="$*" '{ kids[$2] = kids[$2] " " $1 }
    END { n = split(roots, q, " "); i = 1
          while (i <= n) { c = q[i++]; m = split(kids[c], more, " ")
                           for (j = 1; j <= m; j++) { q[++n] = more[j]; print more[j] } } }'
}
delta_ticks() {
  awk -v sel="$3" -v mode="${4:-in}" '
    BEGIN { n = split(sel, a, " "); for (i = 1; i <= n; i++) S[a[i]] = 1 }
    function want(p, pp) {
      if (mode == "in") return (p in S)
      if (p in S) return 0
      if (mode == "kernel") return (p == 2 || pp == 2)
      if (mode == "user") return !(p == 2 || pp == 2)
      return 1 }
    FNR == NR { t0[$1] = $3; pp0[$1] = $2; next }
    { seen[$1] = 1; if (want($1, $2)) d += $3 - (($1 in t0) ? t0[$1] : 0) }
    END { for (p in t0) if (!(p in seen) && want(p, pp0[p])) d -= t0[p]; print d + 0 }' "$1" "$2"
}

# ---- the load: one run.sh per node, at the same time ----------------------------------------------------
[ "$NODES" = 2 ] && [ -n "${QUIET_MAX_PCT:-}" ] && { log "QUIET_MAX_PCT ignored with two nodes"; unset QUIET_MAX_PCT; }
OUTS=(); RS_PIDS=()
for i in $(seq 1 "$NODES"); do
  k=$((i - 1))
  OUTS+=("$WORK/results/${STAMP}_users-core-pg_n${NODES}_node${i}_r${RATES[$k]}_d${DURATION}")
  TARGET_HOST=127.0.0.1 TRANSPORT=u1 USERS_CSV="${CSVS[$k]}" SERVER_PIDS="${NODE_PIDS[$k]}" OUT_DIR="${OUTS[$k]}" \
    "$SHARED_BENCH/run.sh" "${RATES[$k]}" "$DURATION" "${PORTS[$k]}" > "$RUN/run$i.txt" 2> "$RUN/run$i.err" &
  RS_PIDS+=($!)
done
# the window: every SIPp has started (run.sh writes sipp_cmd.txt just before
# starting it) .. every SIPp has exited (sipp_rc.txt); a run.sh that ends
# without starting SIPp stops the wait for it
wait_files() {  # wait_files NAME: until NAME exists in every OUT or its run.sh is gone
  local i all
  while :; do
    all=1
    for i in "${!OUTS[@]}"; do
      [ -e "${OUTS[$i]}/$1" ] || ! kill -0 "${RS_PIDS[$i]}" 2>/dev/null || all=""
    done
    [ -n "$all" ] && return 0
    nap 0.01
  done
}
wait_files sipp_cmd.txt
SNAP="$RUN/.snap"
C0="$(cpu_busy_ticks)"; T0="$EPOCHREALTIME"; snapshot > "$SNAP.0"
wait_files sipp_rc.txt
snapshot > "$SNAP.1"; T1="$EPOCHREALTIME"; C1="$(cpu_busy_ticks)"
for p in "${RS_PIDS[@]}"; do wait "$p"; done
LINES=()
for i in $(seq 1 "$NODES"); do
  l="$(grep '^rate=' "$RUN/run$i.txt" | tail -1)"
  [ -n "$l" ] || { log "run.sh for node $i printed no line: $(tail -3 "$RUN/run$i.err")"; l="error=run_sh"; }
  [ -s "$RUN/run$i.err" ] && sed "s/^/$NAME: node $i run.sh: /" "$RUN/run$i.err" | head -5 >&2
  LINES+=("$l")
done

# ---- the figures -------------------------------------------------------------------------------------------
WALL="$(awk -v a="$T0" -v b="$T1" 'BEGIN { w = b - a; if (w <= 0) w = 1e-9; printf "%.3f", w }')"
pct_of() { awk -v t="$1" -v hz="$HZ" -v w="$WALL" 'BEGIN { v = 100 * t / hz / w; printf "%.1f", (v < 0 ? 0 : v) }'; }
PGPIDS="$PG_POSTMASTER $(cat "$SNAP.0" "$SNAP.1" | descendants "$PG_POSTMASTER" | sort -u | tr '\n' ' ')"
MINE="$$ $(cat "$SNAP.0" "$SNAP.1" | descendants $$ | sort -u | tr '\n' ' ')"
NODE_CPUS=(); SERVER_T=0
for p in "${NODE_PIDS[@]}"; do
  t="$(delta_ticks "$SNAP.0" "$SNAP.1" "$p")"; SERVER_T=$((SERVER_T + t)); NODE_CPUS+=("$(pct_of "$t")")
done
SERVER_CPU="$(pct_of "$SERVER_T")"
PG_CPU="$(pct_of "$(delta_ticks "$SNAP.0" "$SNAP.1" "$PGPIDS")")"
OTHER_CPU="$(pct_of "$(delta_ticks "$SNAP.0" "$SNAP.1" "${NODE_PIDS[*]} $PGPIDS $MINE" user)")"
KERNEL_CPU="$(pct_of "$(delta_ticks "$SNAP.0" "$SNAP.1" "${NODE_PIDS[*]} $PGPIDS $MINE" kernel)")"
HOST_BUSY="$(pct_of "$((C1 - C0))")"
rm -f "$SNAP".*

# sums and maxima over the run.sh lines
agg() {  # agg KEY sum|max|list
  local out="" v l
  for l in "${LINES[@]}"; do v="$(field "$1" "$l")"; out="$out ${v:-na}"; done
  awk -v m="$2" -v s="$out" 'BEGIN { n = split(s, a, " "); r = 0; bad = 0; l = ""
      for (i = 1; i <= n; i++) { if (a[i] == "na") bad = 1; l = l (i > 1 ? "," : "") a[i]
        if (m == "sum") r += a[i]; else if (m == "max" && (i == 1 || a[i] + 0 > r)) r = a[i] + 0 }
      if (m == "list") print l; else if (bad) print "na"; else if (m == "max") print r; else print r }'
}
CALLS="$(agg calls sum)"; OK="$(agg ok sum)"; FAILED="$(agg failed sum)"
OK_PER_S="$(awk -v s="$(agg ok_per_s list)" 'BEGIN { n = split(s, a, ","); for (i = 1; i <= n; i++) { if (a[i] == "na") { print "na"; exit } t += a[i] } printf "%.1f", t }')"
FAIL_PCT="$(awk -v f="$FAILED" -v c="$CALLS" 'BEGIN { if (f == "na" || c == "na") print "na"; else printf "%.3f", (c > 0 ? 100 * f / c : 0) }')"
SIPP_CPU="$(awk -v s="$(agg sipp_cpu_pct list)" 'BEGIN { n = split(s, a, ","); for (i = 1; i <= n; i++) { if (a[i] == "na") { print "na"; exit } t += a[i] } printf "%.1f", t }')"
# latencies of both runs together (column 1 of each run's latency_ms.txt[.gz])
lat_all() {
  local o
  for o in "${OUTS[@]}"; do
    if [ -s "$o/latency_ms.txt.gz" ]; then zcat "$o/latency_ms.txt.gz"; elif [ -s "$o/latency_ms.txt" ]; then cat "$o/latency_ms.txt"; fi
  done | awk '{ print $1 }' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "na na 0"; exit }
      split("0.50 0.99", q, " "); for (i = 1; i <= 2; i++) { k = int(q[i] * NR + 0.999999); if (k < 1) k = 1; if (k > NR) k = NR; printf "%s ", v[k] }
      print NR }'
}
read -r P50_ALL P99_ALL NLAT < <(lat_all)
P99_MAX="$(agg p99_ms max)"

# ---- stop, then the nodes' and PostgreSQL's logs ----------------------------------------------------------------
ALIVE=(); RSS=()
for p in "${NODE_PIDS[@]}"; do
  if kill -0 "$p" 2>/dev/null; then ALIVE+=(yes); RSS+=("$(awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$p/status")"); else ALIVE+=(no); RSS+=(na); fi
done
stop_nodes
unlock
read -r PGS1_COMMIT PGS1_RB PGS1_DL PGS1_SYNC PGS1_WALB < <(pg_stats)
WARNERR=()
for i in "${!LOGS[@]}"; do
  [ "${ALIVE[$i]}" = yes ] || log "node $((i + 1)) DIED during the run, see ${LOGS[$i]}"
  WARNERR+=("$(uc_warn_err "${LOGS[$i]}")")
done
tail -c +"$((PGLOG_OFF + 1))" "$PGLOG" > "$RUN/postgres.log" 2>/dev/null
PG_ERRORS="$(grep -c 'ERROR:\|FATAL:\|PANIC:' "$RUN/postgres.log")"
if [ "$PG_ERRORS" -gt 0 ]; then
  log "PostgreSQL log: $PG_ERRORS ERROR/FATAL lines during the run; most frequent:"
  grep -o '\(ERROR\|FATAL\|PANIC\):.*' "$RUN/postgres.log" | sort | uniq -c | sort -rn | head -5 | sed "s/^/$NAME:   /" >&2
fi
SHOW="$(psql_db -F '|' -c "SELECT split_part(current_setting('server_version'), ' ', 1), current_setting('fsync'),
  current_setting('synchronous_commit'), current_setting('shared_buffers'), current_setting('full_page_writes')")"
IFS='|' read -r PGVER PGFSYNC PGSYNC PGSB PGFPW <<< "$SHOW"

join() { local IFS=,; echo "$*"; }
OUT="users-core-pg nodes=$NODES rate=$RATE ok_per_s=$OK_PER_S failed=$FAILED fail_pct=$FAIL_PCT p50_ms=$P50_ALL p99_ms=$P99_MAX"
OUT="$OUT server_cpu_pct=$SERVER_CPU node_cpu_pcts=$(join "${NODE_CPUS[@]}") pg_cpu_pct=$PG_CPU sipp_cpu_pct=$SIPP_CPU"
OUT="$OUT other_cpu_pct=$OTHER_CPU kernel_cpu_pct=$KERNEL_CPU host_busy_pct=$HOST_BUSY ncpu=$NCPU pinning=${SIPP_CPUS:+sipp:$SIPP_CPUS}${SIPP_CPUS:-none}"
OUT="$OUT calls=$CALLS ok=$OK retrans=$(agg retrans sum) timeouts=$(agg timeouts sum) unexpected=$(agg unexpected sum)"
OUT="$OUT udp_rcvbuf_drops=$(agg udp_rcvbuf_drops max) lat_src=$(field lat_src "${LINES[0]}") p99_merged_ms=$P99_ALL lat_samples=$NLAT"
OUT="$OUT node_rates=$(join "${RATES[@]}") node_ok_per_s=$(agg ok_per_s list) node_p50_ms=$(agg p50_ms list) node_p99_ms=$(agg p99_ms list) window_s=$WALL"
OUT="$OUT pg_commits=$((PGS1_COMMIT - PGS0_COMMIT)) pg_rollbacks=$((PGS1_RB - PGS0_RB)) pg_deadlocks=$((PGS1_DL - PGS0_DL))"
OUT="$OUT pg_wal_syncs=$((PGS1_SYNC - PGS0_SYNC)) pg_wal_mb=$(awk -v a="$PGS0_WALB" -v b="$PGS1_WALB" 'BEGIN { printf "%.1f", (b - a) / 1048576 }')"
OUT="$OUT pg_log_errors=$PG_ERRORS pg_version=$PGVER pg_fsync=$PGFSYNC pg_synchronous_commit=$PGSYNC pg_full_page_writes=$PGFPW pg_shared_buffers=$PGSB"
OUT="$OUT pool_max_conns=${POOL_MAX_CONNS:-default} alive=$(join "${ALIVE[@]}") uc_rss_peak_mb=$(join "${RSS[@]}")"
OUT="$OUT uc_log_warn_err=$(join "${WARNERR[@]}") uc_build=$BUILD out=$RUN"
echo "$OUT" > "$RUN/summary.txt"
echo "$(date -Is) $OUT" >> "$WORK/results/summary.log"
echo "$OUT"
