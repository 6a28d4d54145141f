#!/usr/bin/env bash
# scale.sh [start] [bindings] [conns] [latency] - users-core against the size
# of its data (all four parts when none is named). Prints ONE line on stdout:
#
#   scale <fields of the parts run> uc_build= bin_sha256= out=
#
#   start     start-to-ready time of `users-core serve` with SCALE_USERS users and
#             SCALE_BINDINGS bindings (exec -> --ready-file written), START_RUNS
#             runs after one warm-up start; target below 300 ms
#             fields: ready_users= ready_bindings= ready_ms_min= ready_ms_med= ready_ms_max=
#                     ready_runs= ready_target_ms=300 ready_ok= ready_ms_small_med=
#   bindings  memory per binding: the running server with SCALE_USERS users and 0
#             vs SCALE_BINDINGS bindings, after start and a forced GC: RSS and Go
#             heap (go_memstats_heap_inuse_bytes); and the database growth
#             fields: rss_b0_mb= rss_b_mb= heap_b0_mb= heap_b_mb= rss_bytes_per_binding=
#                     heap_bytes_per_binding= db_bytes_per_binding= bindings_active=
#   conns     memory per idle TCP and per idle WS connection: IDLE_CONNS
#             connections opened by sipload (one OPTIONS each, then idle) to a
#             fresh server each; RSS, heap+stack and goroutines delta / connections
#             fields: idle_conns= tcp_conns= tcp_rss_kb_per_conn= tcp_go_kb_per_conn=
#                     tcp_goroutines_per_conn= ws_conns= ws_rss_kb_per_conn= ws_go_kb_per_conn=
#                     ws_goroutines_per_conn=
#   latency   REGISTER latency with LAT_SMALL (1,000) vs LAT_BIG (1,000,000) users in
#             the database: Digest REGISTERs (ALG, MD5) at LAT_RATE/s over LAT_TRANSPORT
#             (tcp) for LAT_DURATION s after a WARMUP s warm-up, each REGISTER to a
#             uniformly random user of the ACTIVE SET (LAT_PICK); sizes alternated
#             LAT_REPS times; medians over the reps; target big <= 1.1 x small
#             LAT_PICK=active (default): both sizes register the same LAT_ACTIVE
#               (1,000) users, spread evenly over the user table (one in every
#               users/LAT_ACTIVE, a power of ten: user0500, user1500, ... user999500
#               of 1,000,000; all of them of 1,000), with the same seeds, so both
#               runs send the same sequence of user numbers: the same share of
#               credential-cache misses (each user's first REGISTER of the run) and
#               of binding inserts (first) vs refreshes (the others). What differs
#               is only the data: the depth of every index a miss and a binding
#               write descend, the size of the file. This is what "latency with
#               1,000,000 users vs 1,000" can fairly mean: at 200/s a million
#               phones would each register every 5,000 s; a deployment's active
#               phones per minute, not its user table, set the cache hits.
#             LAT_PICK=uniform (the first version of this part): random users of
#               ALL users of each size. With 1,000 users every REGISTER after the
#               first few seconds hits the credential cache and refreshes a binding;
#               with 1,000,000 nearly every one misses the cache (one SQLite read)
#               and inserts a new binding: the two sizes do different work per
#               REGISTER, so the ratio measures the cache-miss path, not the size.
#             USERS_CORE_CACHE_CREDENTIAL_ENTRIES=0 (either pick): no credential
#               cache on either size, every REGISTER reads the user from SQLite:
#               the size effect on the read path ("both cold").
#             fields: lat_pick= lat_active= lat_rate= lat_small_users= lat_big_users=
#                     small_p50_ms= small_p99_ms= big_p50_ms= big_p99_ms= p50_ratio=
#                     p99_ratio= lat_target_ratio=1.1 lat_ok= lat_fail_pct_max=
#                     lat_other_cpu_pct_max= big_ready_ms= lat_cred_cache=
#
# Data dirs are seeded once with the seed tool (users through
# identity.Service.ImportUsers, bindings through sip.Apply in UpdateBindings:
# what users-core itself writes; tiny Argon2id parameters, bench-only) and
# cached under $BENCH_WORK/users-core/scale/u<USERS>[_b<BINDINGS>]; seeded
# bindings expire after 24 h and are refreshed when older than 12 h. Every
# dir gets one warm-up start (signing keys, migrations of this build) before
# it is measured. Per-part details (every run's line) go to stderr and to
# $BENCH_WORK/users-core/scale/runs/<time>/.
#
# Env (all optional):
#   SCALE_USERS 100000  SCALE_BINDINGS 100000  START_RUNS 5
#   IDLE_CONNS 2000     IDLE_SETTLE 3 (s between the last connection and the measurement)
#   LAT_SMALL 1000  LAT_BIG 1000000  LAT_RATE 200  LAT_DURATION 30  WARMUP 5  LAT_REPS 2
#   LAT_TRANSPORT tcp (or udp, ws)  LAT_CONNS 4  ALG MD5  EXPIRES 60 (latency REGISTERs)
#   LAT_PICK active (or uniform)  LAT_ACTIVE 1000 (at most LAT_SMALL)
#   LAT_SETTLE 12 (s from ready to the warm-up: users-core's first maintenance
#     pass, 10 s after start, sweeps the expired bindings of earlier runs, a
#     number that differs between sizes and picks; inside the measured window
#     it stalled binding writes for ~200 ms)
#   UC_SERVE_ARGS  extra `users-core serve` arguments for every start
#   UC_BIN, SIPLOAD_BIN, SEED_BIN   prebuilt binaries; BENCH_WORK, DOMAIN, GO as register.sh
#   USERS_CORE_*   passed to users-core serve
# Exit status: 0 when the parts ran (the targets are reported, not enforced),
# 1 on a build/seed/start failure, 2 on bad usage.
set -uo pipefail
NAME=scale.sh

PARTS="${*:-start bindings conns latency}"
for p in $PARTS; do
  case "$p" in start|bindings|conns|latency) ;; *) sed -n '2,4p' "$0" >&2; exit 2 ;; esac
done
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# shellcheck source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_lib_init
command -v jq >/dev/null || { log "jq not found (apt-get install jq)"; exit 1; }
command -v curl >/dev/null || { log "curl not found"; exit 1; }

SCALE_USERS="${SCALE_USERS:-100000}"; SCALE_BINDINGS="${SCALE_BINDINGS:-100000}"
START_RUNS="${START_RUNS:-5}"; IDLE_CONNS="${IDLE_CONNS:-2000}"
LAT_SMALL="${LAT_SMALL:-1000}"; LAT_BIG="${LAT_BIG:-1000000}"; LAT_RATE="${LAT_RATE:-200}"
LAT_DURATION="${LAT_DURATION:-30}"; WARMUP="${WARMUP:-5}"; LAT_REPS="${LAT_REPS:-2}"
LAT_TRANSPORT="${LAT_TRANSPORT:-tcp}"; LAT_CONNS="${LAT_CONNS:-4}"
LAT_PICK="${LAT_PICK:-active}"; LAT_ACTIVE="${LAT_ACTIVE:-1000}"; LAT_SETTLE="${LAT_SETTLE:-12}"
for v in SCALE_USERS SCALE_BINDINGS START_RUNS IDLE_CONNS LAT_SMALL LAT_BIG LAT_RATE LAT_DURATION WARMUP LAT_REPS LAT_CONNS LAT_ACTIVE LAT_SETTLE; do
  case "${!v}" in *[!0-9]*|"") log "$v must be an integer"; exit 2 ;; esac
done
[ "$SCALE_BINDINGS" -le "$SCALE_USERS" ] || { log "SCALE_BINDINGS must not exceed SCALE_USERS"; exit 2; }
case "$LAT_TRANSPORT" in tcp|udp|ws) ;; *) log "LAT_TRANSPORT must be tcp, udp or ws"; exit 2 ;; esac
case "$LAT_PICK" in active|uniform) ;; *) log "LAT_PICK must be active or uniform"; exit 2 ;; esac
[ "$LAT_ACTIVE" -ge 1 ] && [ "$LAT_ACTIVE" -le "$LAT_SMALL" ] || { log "LAT_ACTIVE must be between 1 and LAT_SMALL"; exit 2; }

SCALE="$UCW/scale"
OUTDIR="$SCALE/runs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUTDIR"
export USERS_CORE_SIP_RATE_PER_SOURCE="${USERS_CORE_SIP_RATE_PER_SOURCE:-0}"
export USERS_CORE_SIP_MAX_CONNS_PER_IP="${USERS_CORE_SIP_MAX_CONNS_PER_IP:-0}"

SL_PID=""
cleanup() {
  if [ -n "$SL_PID" ]; then kill -TERM "$SL_PID" 2>/dev/null; wait "$SL_PID" 2>/dev/null; fi
  uc_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

bench_build_uc || exit 1
bench_build_tool sipload SIPLOAD_BIN || exit 1
bench_build_tool seed SEED_BIN || exit 1

# ---- seeded data dirs ----------------------------------------------------------------------
# scale_dir USERS BINDINGS: sets DIR to a data dir holding users
# user0000..user<USERS-1> (password secret-<nnnn>) and one unexpired binding
# for each of the first BINDINGS users, seeding or refreshing it as needed.
SEED_VERSION=1
scale_dir() {
  local n="$1" m="$2" want mark age
  DIR="$SCALE/u$n"; [ "$m" -gt 0 ] && DIR="${DIR}_b$m"
  mark="$DIR/seeded.txt"
  want="users=$n bindings=$m domain=$DOMAIN seed_v=$SEED_VERSION"
  if [ -f "$mark" ] && [ "$(head -1 "$mark")" = "$want" ]; then
    age=$(( EPOCHSECONDS - $(sed -n 's/^bindings_at=//p' "$mark" | head -1) ))
    if [ "$m" -eq 0 ] || [ "$age" -lt 43200 ]; then
      log "using $DIR ($want)"; return 0
    fi
    log "refreshing the $m bindings of $DIR (seeded ${age} s ago)"
  else
    rm -rf "$DIR"
    if [ "$m" -gt 0 ]; then
      # the users-only dir first (cached too, the bindings part needs it),
      # then a copy of it gets the bindings
      scale_dir "$n" 0 || return 1
      local base="$DIR"
      DIR="$SCALE/u${n}_b$m"; mark="$DIR/seeded.txt"
      log "copying $base to $DIR"
      cp -a "$base" "$DIR" || return 1
    else
      mkdir -p "$DIR"
      # the real binary creates the schema, the data key and its check
      "$BIN" user list --data-dir "$DIR" --domain "$DOMAIN" --log-format json > /dev/null 2> "$DIR/init.log" ||
        { log "users-core user list --data-dir $DIR failed: $(tail -2 "$DIR/init.log")"; return 1; }
    fi
    rm -f "$DIR/seeded.txt"
  fi
  log "seeding $DIR: $n users, $m bindings (1,000,000 users took 17 minutes on a busy 2-CPU VM)"
  local line
  line="$("$SEED_BIN" -data-dir "$DIR" -domain "$DOMAIN" -users "$n" -bindings "$m")" || { log "seed failed"; return 1; }
  log "$line"
  # one start: signing keys, nonce key, this build's migrations
  mkdir -p "$OUTDIR/warm"
  uc_start "$DIR" "$OUTDIR/warm" --http off --sip-udp off --sip-tcp 127.0.0.1:0 --sip-ws off || return 1
  uc_stop
  { echo "$want"; echo "bindings_at=$EPOCHSECONDS"; echo "$line"; } > "$mark"
}

# warm_start DIR: one start and stop of DIR (page cache, this build's migrations)
warm_start() {
  mkdir -p "$OUTDIR/warm"
  uc_start "$1" "$OUTDIR/warm" --http off --sip-udp off --sip-tcp 127.0.0.1:0 --sip-ws off || return 1
  uc_stop
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "na"; exit } if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "na") printf "%.3f", a / b; else print "na" }'; }
# uc_start with the HTTP listener (/metrics) and the pprof debug listener
# (a forced GC before each memory sample)
uc_start_probe() {
  local -x USERS_CORE_DEBUG_LISTEN=127.0.0.1:0
  uc_start "$@" --http 127.0.0.1:0
}
mem_sample() {  # "rss_kb heap_inuse stack_inuse goroutines" after a forced GC
  uc_gc; nap 0.5
  echo "$(rss_kb "$UC_PID") $(uc_metric go_memstats_heap_inuse_bytes) $(uc_metric go_memstats_stack_inuse_bytes) $(uc_metric go_goroutines)"
}
RESULT=""
add() { RESULT="$RESULT $*"; }

# ---- (a) start to ready -------------------------------------------------------------------
if has start; then
  scale_dir "$SCALE_USERS" "$SCALE_BINDINGS" || exit 1
  D_START="$DIR"
  warm_start "$D_START" || exit 1
  : > "$OUTDIR/ready_ms.txt"
  for i in $(seq 1 "$START_RUNS"); do
    mkdir -p "$OUTDIR/start$i"
    # every listener a deployment has, each on a kernel-chosen port
    uc_start "$D_START" "$OUTDIR/start$i" --http 127.0.0.1:0 --sip-udp 127.0.0.1:0 --sip-tcp 127.0.0.1:0 \
      --sip-ws 127.0.0.1:0 ${UC_SERVE_ARGS:-} || exit 1
    echo "$UC_READY_MS" >> "$OUTDIR/ready_ms.txt"
    log "start $i: ready in $UC_READY_MS ms ($SCALE_USERS users, $SCALE_BINDINGS bindings)"
    uc_stop
    nap 0.3
  done
  # the same on a small data dir, for comparison
  scale_dir "$LAT_SMALL" 0 || exit 1
  warm_start "$DIR" || exit 1
  : > "$OUTDIR/ready_ms_small.txt"
  for i in $(seq 1 "$START_RUNS"); do
    mkdir -p "$OUTDIR/start_small$i"
    uc_start "$DIR" "$OUTDIR/start_small$i" --http 127.0.0.1:0 --sip-udp 127.0.0.1:0 --sip-tcp 127.0.0.1:0 \
      --sip-ws 127.0.0.1:0 ${UC_SERVE_ARGS:-} || exit 1
    echo "$UC_READY_MS" >> "$OUTDIR/ready_ms_small.txt"
    uc_stop
    nap 0.3
  done
  rmin="$(sort -g "$OUTDIR/ready_ms.txt" | head -1)"; rmax="$(sort -g "$OUTDIR/ready_ms.txt" | tail -1)"
  rmed="$(median < "$OUTDIR/ready_ms.txt")"
  rok=no; awk -v m="$rmed" 'BEGIN { exit !(m < 300) }' && rok=yes
  add "ready_users=$SCALE_USERS ready_bindings=$SCALE_BINDINGS ready_ms_min=$rmin ready_ms_med=$rmed ready_ms_max=$rmax" \
      "ready_runs=$START_RUNS ready_target_ms=300 ready_ok=$rok ready_ms_small_med=$(median < "$OUTDIR/ready_ms_small.txt") ready_small_users=$LAT_SMALL"
  log "start: $RESULT"
fi

# ---- (b) memory per binding ---------------------------------------------------------------
if has bindings; then
  declare -A MEM
  for m in 0 "$SCALE_BINDINGS"; do
    scale_dir "$SCALE_USERS" "$m" || exit 1
    warm_start "$DIR" || exit 1
    mkdir -p "$OUTDIR/mem_b$m"
    uc_start_probe "$DIR" "$OUTDIR/mem_b$m" --sip-udp 127.0.0.1:0 --sip-tcp 127.0.0.1:0 --sip-ws 127.0.0.1:0 ${UC_SERVE_ARGS:-} || exit 1
    nap 2
    read -r rss heap _ _ < <(mem_sample)
    MEM[rss$m]="$rss"; MEM[heap$m]="$heap"
    MEM[active$m]="$(uc_metric users_core_sip_bindings_active)"
    MEM[db$m]="$(du -sb "$DIR/users.db" | cut -f1)"
    log "bindings=$m: rss_kb=$rss heap_inuse=$heap bindings_active=${MEM[active$m]} db_bytes=${MEM[db$m]}"
    uc_stop
  done
  b="$SCALE_BINDINGS"
  add "$(awk -v r0="${MEM[rss0]}" -v r1="${MEM[rss$b]}" -v h0="${MEM[heap0]}" -v h1="${MEM[heap$b]}" -v d0="${MEM[db0]}" -v d1="${MEM[db$b]}" -v n="$b" \
    'BEGIN { printf "rss_b0_mb=%.1f rss_b_mb=%.1f heap_b0_mb=%.1f heap_b_mb=%.1f rss_bytes_per_binding=%.0f heap_bytes_per_binding=%.0f db_bytes_per_binding=%.0f",
             r0 / 1024, r1 / 1024, h0 / 1048576, h1 / 1048576, (r1 - r0) * 1024 / n, (h1 - h0) / n, (d1 - d0) / n }')" \
      "bindings_active=${MEM[active$b]} mem_bindings=$b"
fi

# ---- (c) memory per idle connection ---------------------------------------------------------
if has conns; then
  scale_dir "$LAT_SMALL" 0 || exit 1
  warm_start "$DIR" || exit 1
  add "idle_conns=$IDLE_CONNS"
  for t in tcp ws; do
    mkdir -p "$OUTDIR/idle_$t"
    uc_start_probe "$DIR" "$OUTDIR/idle_$t" --sip-udp off --sip-tcp 127.0.0.1:0 --sip-ws 127.0.0.1:0 ${UC_SERVE_ARGS:-} || exit 1
    nap 1
    read -r r0 h0 s0 g0 < <(mem_sample)
    rf="$OUTDIR/idle_$t/sipload.ready"
    "$SIPLOAD_BIN" -idle "$IDLE_CONNS" -transport "$t" -target "$(uc_addr "sip_$t")" -domain "$DOMAIN" \
      -hold 600s -ready-file "$rf" > "$OUTDIR/idle_$t/sipload.txt" 2> "$OUTDIR/idle_$t/sipload.err" &
    SL_PID=$!
    for _ in $(seq 1 1200); do [ -s "$rf" ] && break; kill -0 "$SL_PID" 2>/dev/null || break; nap 0.1; done
    [ -s "$rf" ] || { log "sipload -idle did not get ready: $(tail -3 "$OUTDIR/idle_$t/sipload.err")"; exit 1; }
    nap "${IDLE_SETTLE:-3}"
    read -r r1 h1 s1 g1 < <(mem_sample)
    kill -TERM "$SL_PID" 2>/dev/null; wait "$SL_PID" 2>/dev/null; SL_PID=""
    sl="$(cat "$OUTDIR/idle_$t/sipload.txt")"; log "$t idle: $sl"
    n="$(field options_ok "$sl")"; [ "${n:-0}" -gt 0 ] || { log "no idle $t connection answered OPTIONS"; exit 1; }
    [ "$n" -eq "$IDLE_CONNS" ] || log "only $n of $IDLE_CONNS idle $t connections answered OPTIONS: per-connection figures use $n"
    log "$t: rss_kb $r0 -> $r1, heap $h0 -> $h1, stack $s0 -> $s1, goroutines $g0 -> $g1"
    add "$(awk -v t="$t" -v n="$n" -v r0="$r0" -v r1="$r1" -v h0="$h0" -v h1="$h1" -v s0="$s0" -v s1="$s1" -v g0="$g0" -v g1="$g1" \
      'BEGIN { printf "%s_conns=%d %s_rss_kb_per_conn=%.1f %s_go_kb_per_conn=%.1f %s_goroutines_per_conn=%.2f",
               t, n, t, (r1 - r0) / n, t, ((h1 + s1) - (h0 + s0)) / 1024 / n, t, (g1 - g0) / n }')"
    uc_stop
  done
fi

# ---- (d) REGISTER latency, small vs big user table ---------------------------------------------
# active_set N: sets PICK_ARGS, the sipload arguments that make its user
# numbers 0..LAT_ACTIVE-1 name LAT_ACTIVE users spread evenly over the N
# seeded ones (user%04d, secret-%04d): user i*S+S/2 for the largest power of
# ten S <= N/LAT_ACTIVE, written as a format (S=1000: user%d500 gives
# user0500, user1500, ...). sipload then picks among them exactly as among
# LAT_ACTIVE consecutive users, so every size gets the same sequence.
active_set() {
  local n="$1" s=1 k=0 off fmt base=0
  while [ $((s * 10 * LAT_ACTIVE)) -le "$n" ]; do s=$((s * 10)); k=$((k + 1)); done
  # k >= 4 starts at i=1 (below): the last user, LAT_ACTIVE*S+S/2, must exist
  while [ "$k" -ge 4 ] && [ $((LAT_ACTIVE * s + s / 2)) -ge "$n" ]; do s=$((s / 10)); k=$((k - 1)); done
  off=$((s / 2))
  if [ "$k" -eq 0 ]; then
    PICK_ARGS=(-users "$LAT_ACTIVE"); return 0
  fi
  if [ "$k" -le 3 ]; then
    # i*S+off in %04d: i zero-padded to 4-k digits, then off in k digits
    fmt="%0$((4 - k))d$(printf "%0${k}d" "$off")"
  else
    # i=0 would print a leading zero that user%04d does not: start at i=1
    fmt="%d$(printf "%0${k}d" "$off")"; base=1
  fi
  PICK_ARGS=(-users "$LAT_ACTIVE" -user-base "$base" -user-fmt "user$fmt" -pass-fmt "secret-$fmt")
}

if has latency; then
  scale_dir "$LAT_SMALL" 0 || exit 1; D_SMALL="$DIR"
  scale_dir "$LAT_BIG" 0 || exit 1; D_BIG="$DIR"
  : > "$OUTDIR/lat_small.txt"; : > "$OUTDIR/lat_big.txt"
  failmax=0; othermax=0; : > "$OUTDIR/big_ready_ms.txt"
  for rep in $(seq 1 "$LAT_REPS"); do
    for size in small big; do
      if [ "$size" = small ]; then D="$D_SMALL"; N="$LAT_SMALL"; else D="$D_BIG"; N="$LAT_BIG"; fi
      run="$OUTDIR/lat_${size}_$rep"; mkdir -p "$run"
      uc_start "$D" "$run" --http off --sip-udp off --sip-tcp off --sip-ws off "--sip-$LAT_TRANSPORT" 127.0.0.1:0 ${UC_SERVE_ARGS:-} || exit 1
      [ "$size" = big ] && echo "$UC_READY_MS" >> "$OUTDIR/big_ready_ms.txt"
      nap "$LAT_SETTLE"
      if [ "$LAT_PICK" = active ]; then active_set "$N"; else PICK_ARGS=(-users "$N"); fi
      LOAD=(-target "$(uc_addr "sip_$LAT_TRANSPORT")" -transport "$LAT_TRANSPORT" -conns "$LAT_CONNS" -rate "$LAT_RATE"
            "${PICK_ARGS[@]}" -pick random -domain "$DOMAIN" -auth digest -alg "${ALG:-MD5}" -expires "${EXPIRES:-60}")
      echo "${PICK_ARGS[*]}" > "$run/pick.txt"
      if [ "$WARMUP" -gt 0 ]; then
        "$SIPLOAD_BIN" "${LOAD[@]}" -duration "${WARMUP}s" -seed "$((rep * 100 + 7))" -label warmup > "$run/warmup.txt" 2>&1
      fi
      S0="$(proc_ticks "$UC_PID")"; C0="$(cpu_busy_ticks)"; T0="$EPOCHREALTIME"
      line="$("$SIPLOAD_BIN" "${LOAD[@]}" -duration "${LAT_DURATION}s" -seed "$rep" -lat-file "$run/latency_ms.txt" 2> "$run/sipload.err")"
      T1="$EPOCHREALTIME"; C1="$(cpu_busy_ticks)"; S1="$(proc_ticks "$UC_PID")"
      read -r scpu ocpu < <(awk -v s="$((S1 - S0))" -v c="$((C1 - C0))" -v hz="$HZ" -v a="$T0" -v b="$T1" -v g="$(field gen_cpu_pct "$line")" \
        'BEGIN { w = b - a; if (w <= 0) w = 1e-9; sv = 100 * s / hz / w; o = 100 * c / hz / w - sv - g; if (o < 0) o = 0; printf "%.1f %.1f\n", sv, o }')
      uc_stop
      echo "$line server_cpu_pct=$scpu other_cpu_pct=$ocpu" > "$run/sipload.txt"
      log "latency $size ($N users) rep $rep: $(field p50_ms "$line") / $(field p99_ms "$line") ms p50/p99, fail_pct=$(field fail_pct "$line") server_cpu_pct=$scpu other_cpu_pct=$ocpu"
      echo "$(field p50_ms "$line") $(field p99_ms "$line")" >> "$OUTDIR/lat_$size.txt"
      failmax="$(awk -v a="$failmax" -v b="$(field fail_pct "$line")" 'BEGIN { print (b + 0 > a + 0 ? b + 0 : a) }')"
      othermax="$(awk -v a="$othermax" -v b="$ocpu" 'BEGIN { print (b + 0 > a + 0 ? b + 0 : a) }')"
    done
  done
  sp50="$(awk '{ print $1 }' "$OUTDIR/lat_small.txt" | median)"; sp99="$(awk '{ print $2 }' "$OUTDIR/lat_small.txt" | median)"
  bp50="$(awk '{ print $1 }' "$OUTDIR/lat_big.txt" | median)"; bp99="$(awk '{ print $2 }' "$OUTDIR/lat_big.txt" | median)"
  r50="$(ratio "$bp50" "$sp50")"; r99="$(ratio "$bp99" "$sp99")"
  lok=no; awk -v a="$r50" -v b="$r99" 'BEGIN { exit !(a != "na" && b != "na" && a <= 1.1 && b <= 1.1) }' && lok=yes
  lat_active="$LAT_ACTIVE"; [ "$LAT_PICK" = uniform ] && lat_active=all
  add "lat_pick=$LAT_PICK lat_active=$lat_active lat_cred_cache=${USERS_CORE_CACHE_CREDENTIAL_ENTRIES:-default}" \
      "lat_rate=$LAT_RATE lat_transport=$LAT_TRANSPORT lat_small_users=$LAT_SMALL lat_big_users=$LAT_BIG" \
      "small_p50_ms=$sp50 small_p99_ms=$sp99 big_p50_ms=$bp50 big_p99_ms=$bp99 p50_ratio=$r50 p99_ratio=$r99" \
      "lat_target_ratio=1.1 lat_ok=$lok lat_reps=$LAT_REPS lat_fail_pct_max=$failmax lat_other_cpu_pct_max=$othermax" \
      "big_ready_ms=$(median < "$OUTDIR/big_ready_ms.txt")"
fi

OUT="scale${RESULT} ncpu=$NCPU load1=$(cut -d' ' -f1 /proc/loadavg) uc_build=$BUILD out=$OUTDIR"
echo "$OUT" > "$OUTDIR/summary.txt"
echo "$(date -Is) $OUT" >> "$WORK/results/summary.log"
echo "$OUT"
