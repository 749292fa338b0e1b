#!/bin/sh
# build.sh — build the classify fuzz target with libFuzzer and run it for a while.
#
# Usage: tests/fuzz/build.sh [SECONDS]   (default 10). Needs clang (clang-14 on
# Debian 12). Builds into build-fuzz/ at the repo root; new inputs found go to
# build-fuzz/corpus_classify, the committed seeds in tests/fuzz/corpus_classify
# are only read. Exits non-zero if the fuzzer finds a crash or an invariant breaks.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
out="$root/build-fuzz"
cc=${CC:-clang}

mkdir -p "$out/corpus_classify"
"$cc" -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$root/gateway" \
    "$root/tests/fuzz/fuzz_classify.c" \
    "$root/gateway/classify.c" "$root/gateway/headers.c" "$root/gateway/uuid.c" \
    "$root/gateway/str.c" "$root/gateway/match.c" "$root/gateway/alloc.c" \
    $(pkg-config --cflags --libs libcjson) \
    -o "$out/fuzz_classify"

cd "$out"
exec ./fuzz_classify -max_total_time="$secs" -max_len=4096 -timeout=5 \
    -artifact_prefix="$out/" \
    "$out/corpus_classify" "$root/tests/fuzz/corpus_classify"
