#!/usr/bin/env bash
# Runs the module's Go fuzz targets, FUZZTIME each (default 10m), at most
# JOBS (default 2) at a time with one fuzz worker each (-parallel 1).
#
#   testdata/fuzz/run.sh                           # every target, 10m each
#   FUZZTIME=30s testdata/fuzz/run.sh              # quick pass
#   testdata/fuzz/run.sh FuzzVerify sip:FuzzParseRegister   # a selection
#
# A selection names targets as Name or dir:Name (dir relative to the module
# root). Logs go to $LOGDIR (default a new directory under ${TMPDIR:-/tmp}).
# One summary line per target; exit status 1 if any target failed (a
# crasher is written by go test to <pkg>/testdata/fuzz/<Name>/<hash>, and
# its path is printed), 2 on a usage error.
set -uo pipefail

FUZZTIME=${FUZZTIME:-10m}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2

# seconds converts a Go duration made of h/m/s parts to whole seconds; an
# iteration count ("1000x") or anything else gets an hour.
seconds() {
	local d=$1 total=0 n
	if [[ ! $d =~ ^([0-9]+(h|m|s))+$ ]]; then
		echo 3600
		return
	fi
	while [[ $d =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
		n=$((10#${BASH_REMATCH[1]}))
		case ${BASH_REMATCH[2]} in
		h) total=$((total + n * 3600)) ;;
		m) total=$((total + n * 60)) ;;
		s) total=$((total + n)) ;;
		esac
		d=${BASH_REMATCH[3]}
	done
	echo "$total"
}
# Hard bound per target: the fuzz time plus room to build, run the seed
# corpus and minimize a crasher.
BOUND=$(($(seconds "$FUZZTIME") + 300))

# Every target as dir:Name.
mapfile -t ALL < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's|^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\(.*|\1:\2|; s|^\./[^/]*:func (Fuzz[A-Za-z0-9_]*)\(.*|.:\1|' | sort -u)

TARGETS=()
if [ $# -eq 0 ]; then
	TARGETS=("${ALL[@]}")
else
	for want in "$@"; do
		found=0
		for t in "${ALL[@]}"; do
			if [ "$t" = "$want" ] || [ "${t#*:}" = "$want" ]; then
				TARGETS+=("$t")
				found=1
			fi
		done
		if [ $found = 0 ]; then
			echo "run.sh: no fuzz target $want (have: ${ALL[*]})" >&2
			exit 2
		fi
	done
fi

LOGDIR=${LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/users-core-fuzz.XXXXXX")}
mkdir -p "$LOGDIR" || exit 2
echo "fuzzing ${#TARGETS[@]} target(s), $FUZZTIME each, $JOBS at a time; logs in $LOGDIR"

# run_one dir:Name: fuzzes one target and prints its summary line.
run_one() {
	local dir=${1%%:*} name=${1#*:}
	local log="$LOGDIR/${dir//\//_}.$name.log"
	local start end rc execs result crasher
	start=$(date +%s)
	timeout --kill-after=30 "$BOUND" \
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel 1 \
		-timeout "$((BOUND + 60))s" "./$dir" >"$log" 2>&1
	rc=$?
	end=$(date +%s)
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
	crasher=$(sed -nE 's/.*Failing input written to (.*)$/\1/p' "$log" | tail -1)
	if [ $rc = 0 ]; then
		result=PASS
	elif [ $rc = 124 ] || [ $rc = 137 ]; then
		result="TIMEOUT (killed after ${BOUND}s)"
	elif [ -n "$crasher" ]; then
		result="CRASHER $ROOT/$dir/$crasher"
	else
		result="FAIL (exit $rc)"
	fi
	printf '%-40s %6ss  execs=%-12s %s  log=%s\n' "$dir:$name" "$((end - start))" "${execs:-?}" "$result" "$log"
	[ $rc = 0 ]
}

failed=0
running=0
for t in "${TARGETS[@]}"; do
	if [ "$running" -ge "$JOBS" ]; then
		wait -n || failed=1
		running=$((running - 1))
	fi
	run_one "$t" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	wait -n || failed=1
	running=$((running - 1))
done

if [ $failed != 0 ]; then
	echo "FAIL: at least one target failed; see the lines above (crashers stay in <pkg>/testdata/fuzz/<Name>/ until moved or deleted)" >&2
	exit 1
fi
echo "ok: every target ran $FUZZTIME without a crasher"
