#!/bin/sh
# build.sh — build the libFuzzer targets and run them.
#
# Usage: tests/fuzz/build.sh            the CI run: deterministic (see below)
#        tests/fuzz/build.sh SECONDS    exploration: a random seed, SECONDS per target
#
# Targets: fuzz_classify (event-type extraction and header values), fuzz_contract (JSON
# pointers and route contracts over hostile bodies) and fuzz_yaml (the config and
# routing-table readers). Built with clang -fsanitize=fuzzer,address,undefined
# into build-fuzz/ at the repo root. Each target first runs every committed seed in
# tests/fuzz/corpus_<name> (crash inputs found earlier are kept there as regression seeds),
# then mutates from them.
#
# The CI run is bounded and seeded: a fixed seed (-seed=1) and a fixed number of runs per
# target ($FUZZ_RUNS_CLASSIFY, $FUZZ_RUNS_CONTRACT, $FUZZ_RUNS_YAML), on a fresh copy of the
# committed seeds, so a commit is tested on (nearly: libFuzzer's scheduling is not bit-exact)
# the same inputs every time instead of a different random walk per CI run. Finding new bugs is what exploration is
# for: run it for minutes now and then, and commit each crash input it finds, with the fix,
# to the seeds, where every later run replays it.
#
# New inputs the fuzzer finds stay in build-fuzz (the repo is only read); crash inputs are
# written there as crash-<sha1> and the like. Exits non-zero if a target fails to build,
# crashes or breaks an invariant. Without clang (clang or clang-14; $CC overrides) it prints
# one line and exits 0, so that a machine without it still passes the rest of scripts/test.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-}
runs_classify=${FUZZ_RUNS_CLASSIFY:-300000}
runs_contract=${FUZZ_RUNS_CONTRACT:-200000}
runs_yaml=${FUZZ_RUNS_YAML:-30000}
out="$root/build-fuzz"
src="$root/gateway"

case $secs in
'') ;;
*[!0-9]*)
    echo "fuzz: SECONDS must be a whole number, got '$secs'" >&2
    exit 2
    ;;
esac

cc=${CC:-}
if [ -z "$cc" ]; then
    for c in clang clang-14; do
        if command -v "$c" >/dev/null 2>&1; then
            cc=$c
            break
        fi
    done
fi
if [ -z "$cc" ] || ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: skipped (clang not found; scripts/bootstrap installs it)"
    exit 0
fi

mkdir -p "$out"
cflags="-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined"
cflags="$cflags -fno-sanitize-recover=undefined"

# build NAME SOURCES... (the flags of the last pkg-config call are in $libs)
build() {
    name=$1
    shift
    echo "fuzz: building $name"
    # shellcheck disable=SC2086  # word splitting of the flag lists is intended
    "$cc" $cflags -I"$src" "$root/tests/fuzz/$name.c" "$@" $libs -o "$out/$name"
}

libs=$(pkg-config --cflags --libs libcjson)
build fuzz_classify "$src/classify.c" "$src/headers.c" "$src/uuid.c" "$src/str.c" \
    "$src/match.c" "$src/alloc.c"

build fuzz_contract "$src/contract.c" "$src/classify.c" "$src/str.c" "$src/match.c" \
    "$src/alloc.c" -lm

libs=$(pkg-config --cflags --libs yaml-0.1 libcjson)
build fuzz_yaml "$src/config.c" "$src/routes.c" "$src/yamldoc.c" "$src/router.c" "$src/url.c" \
    "$src/match.c" "$src/str.c" "$src/err.c" "$src/alloc.c" "$src/log.c" "$src/clock.c" \
    "$src/duration.c" "$src/contract.c" "$src/copy.c" "$src/headers.c" "$src/delivery.c" \
    "$src/uuid.c" -lm

failed=""
# run NAME MAX_LEN RUNS
run() {
    name=$1
    corpus="$out/corpus_${name#fuzz_}"
    if [ -n "$secs" ]; then
        how="-max_total_time=$secs"
        what="for ${secs}s (random seed)"
        mkdir -p "$corpus" # exploration keeps what earlier explorations found
    else
        how="-seed=1 -runs=$3"
        what="for $3 runs (seed 1)"
        rm -rf "$corpus"
        mkdir -p "$corpus"
    fi
    cp "$root/tests/fuzz/corpus_${name#fuzz_}"/* "$corpus/"
    echo "fuzz: running $name $what on $corpus"
    rc=0
    t0=$(date +%s)
    # shellcheck disable=SC2086  # $how is two flags in CI mode
    (cd "$out" && "./$name" $how -max_len="$2" -timeout=5 \
        -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$out/" "$corpus") \
        >"$out/$name.log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $name passed (${runs:-?} runs in $(($(date +%s) - t0))s)"
    else
        tail -n 80 "$out/$name.log"
        echo "fuzz: $name FAILED (exit $rc after ${runs:-?} runs; log $out/$name.log)" >&2
        failed="$failed $name"
    fi
}

run fuzz_classify 4096 "$runs_classify"
run fuzz_contract 4096 "$runs_contract"
run fuzz_yaml 65536 "$runs_yaml"

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
echo "fuzz: all targets passed"
