#!/bin/bash
# make bench: quick local timing of dimg against the installed qemu-img.
#
# Usage: bench/bench.sh [path/to/dimg]          (make bench passes build/dimg)
# Environment:
#   BENCH_DIR   data and scratch directory (default /tmp/dimg-localbench)
#   BENCH_SIZE  test disk size in MiB (default 1024); the disk is built once,
#               deterministically, and rebuilt only when missing or its recipe changes
#   BENCH_RUNS  timed runs per tool for the heavy workloads (default 3)
#   BENCH_INFO_RUNS  timed runs per tool for info (default 21)
#
# Method: every workload runs the same arguments with both tools, alternating
# which goes first (q d, d q, ...); outputs are deleted and `sync` runs between
# runs; the table shows the median wall time of each tool, the ratio
# dimg/qemu-img (< 1 means dimg is faster) and the peak RSS (from
# /usr/bin/time -f %M, largest over the runs).  A subcommand that fails shows
# FAILED (with its first stderr line) instead of stopping the script.
#
# This is the quick local check.  The team's yardstick is the shared kit
# /work/shared/bench/run (see /work/shared/bench/README.md):
#     /work/shared/bench/run build/dimg --quick      # 256 MiB data set, ~5 min
#     /work/shared/bench/run build/dimg              # 2 GiB, ~20-25 min
#     /work/shared/bench/run build/dimg --only convert-raw,map --runs 5 --json r.json
# It covers qcow2/vmdk/vhdx/vdi/vpc workloads, checks each candidate result for
# correctness with qemu-img, primes free memory, reports CPU use and noise; use
# it for numbers that go into reviews.  This script does not run it.
set -u
DIMG=${1:-build/dimg}
case $DIMG in /*) ;; *) DIMG=$PWD/$DIMG ;; esac
QEMU_IMG=$(command -v qemu-img) || { echo "bench: qemu-img not installed (apt-get install qemu-utils)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
[ -x "$DIMG" ] || { echo "bench: $DIMG not found; run 'make' first" >&2; exit 2; }
BENCH_DIR=${BENCH_DIR:-/tmp/dimg-localbench}
SIZE_MIB=${BENCH_SIZE:-1024}
RUNS=${BENCH_RUNS:-3}
INFO_RUNS=${BENCH_INFO_RUNS:-21}
mkdir -p "$BENCH_DIR" || exit 2
DISK=$BENCH_DIR/disk-${SIZE_MIB}M.raw
COPY=$BENCH_DIR/copy-${SIZE_MIB}M.raw
W=$BENCH_DIR/work
RECIPE=1

# ---- the test disk: deterministic mix of random data, text, zeros, holes
build_disk() {
    echo "bench: building $DISK (${SIZE_MIB} MiB, once)" >&2
    python3 - "$DISK.tmp" "$SIZE_MIB" <<'PY' || exit 2
import random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
r = random.Random(20241125)
words = [b"".join(bytes([r.randrange(97, 123)]) for _ in range(r.randrange(2, 10)))
         for _ in range(2000)]
text = bytearray()
while len(text) < (4 << 20):     # 4 MiB of pseudo text, sliced at random offsets
    line = b" ".join(r.choice(words[: r.choice((50, 200, 2000))]) for _ in range(r.randrange(5, 15)))
    text += line + (b".\n" if r.random() < 0.3 else b", %d\n" % r.randrange(100000))
text = bytes(text)
with open(path, "wb") as f:
    f.truncate(size)
    off, tail = 0, size - size // 8          # last 1/8: never written (hole)
    while off < tail:
        n = min(4096 << r.randrange(0, 11), tail - off)  # 4 KiB .. 4 MiB extents
        kind = r.random()
        f.seek(off)
        if kind < 0.35:
            f.write(r.randbytes(n))                      # incompressible data
        elif kind < 0.60:
            s = r.randrange(0, len(text) - (4 << 20) + 1) if len(text) > n else 0
            chunk = (text * (n // len(text) + 1))[s:s + n] if n > len(text) else text[s:s + n]
            f.write(chunk)                               # text
        elif kind < 0.75:
            f.write(bytes(n))                            # explicit zeros (allocated)
        # else: hole
        off += n
PY
    mv "$DISK.tmp" "$DISK"
    echo "$RECIPE" >"$DISK.stamp"
}
if [ ! -f "$DISK" ] || [ "$(cat "$DISK.stamp" 2>/dev/null)" != "$RECIPE" ]; then
    rm -f "$COPY"
    build_disk
fi
if [ ! -f "$COPY" ]; then
    "$QEMU_IMG" convert -O raw "$DISK" "$COPY.tmp" && mv "$COPY.tmp" "$COPY" || exit 2
fi
rm -rf "$W"
mkdir -p "$W"
cd "$W" || exit 2
cat "$DISK" "$COPY" >/dev/null   # warm the page cache

# ---- timing
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# one TOOLTAG TOOL ARGS...: a single run; appends "seconds" to $TOOLTAG.times,
# peak KiB to $TOOLTAG.rss; on failure records the first stderr line.
one() {
    local tag=$1 tool=$2; shift 2
    rm -f out.raw
    sync
    local t0 t1 rc
    t0=$(date +%s%N)
    /usr/bin/time -o "$tag.timeout" -f %M "$tool" "$@" >"$tag.stdout" 2>"$tag.stderr"
    rc=$?
    t1=$(date +%s%N)
    if [ $rc -ne 0 ] && [ ! -s "$tag.failed" ]; then
        { echo "exit $rc: $(grep -v '^Command exited' "$tag.stderr" | head -1)"; } >"$tag.failed"
    fi
    echo "$(( (t1 - t0) / 1000 ))" | awk '{printf "%.3f\n", $1 / 1e6}' >>"$tag.times"
    tail -1 "$tag.timeout" >>"$tag.rss"
    rm -f out.raw
}

# workload NAME RUNS ARGS...
workload() {
    local name=$1 runs=$2; shift 2
    rm -f q.* d.*
    : >q.failed; : >d.failed
    local i
    for i in $(seq "$runs"); do
        if [ $((i % 2)) = 1 ]; then
            one q "$QEMU_IMG" "$@"; one d "$DIMG" "$@"
        else
            one d "$DIMG" "$@"; one q "$QEMU_IMG" "$@"
        fi
    done
    local qm dm qr dr ratio status
    qm=$(median <q.times); dm=$(median <d.times)
    qr=$(sort -n q.rss | tail -1); dr=$(sort -n d.rss | tail -1)
    if [ -s d.failed ]; then
        status="FAILED ($(cat d.failed))"
        ratio="FAILED"
        dm="-"
    elif [ -s q.failed ]; then
        status="qemu-img failed ($(cat q.failed))"
        ratio="-"
    else
        ratio=$(awk -v d="$dm" -v q="$qm" 'BEGIN {printf "%.2f", (q > 0 ? d / q : 0)}')
        status=ok
    fi
    printf '%-26s %9s %9s %7s %9s %9s  %s\n' "$name" "$dm" "$qm" "$ratio" \
        "$([ -s d.failed ] && echo - || awk -v k="$dr" 'BEGIN {printf "%.1f", k / 1024}')" \
        "$(awk -v k="$qr" 'BEGIN {printf "%.1f", k / 1024}')" "$status"
}

echo "dimg:     $DIMG"
echo "qemu-img: $QEMU_IMG ($("$QEMU_IMG" --version | head -1))"
echo "disk:     $DISK ($(du -m "$DISK" | cut -f1) MiB allocated of $SIZE_MIB MiB), runs: $RUNS (info: $INFO_RUNS)"
echo
printf '%-26s %9s %9s %7s %9s %9s  %s\n' workload "dimg s" "qemu s" ratio "dimg MiB" "qemu MiB" status
workload "info --output=json" "$INFO_RUNS" info --output=json "$DISK"
workload "map --output=json" "$RUNS" map --output=json "$DISK"
workload "measure -O raw" "$RUNS" measure -O raw "$DISK"
workload "compare raw raw" "$RUNS" compare "$DISK" "$COPY"
workload "convert raw->raw" "$RUNS" convert -O raw "$DISK" "$W/out.raw"
echo
echo "ratio = median dimg time / median qemu-img time: < 1 means dimg is faster."
echo "For the full, checked comparison run /work/shared/bench/run (see the comment at the top)."
rm -rf "$W"
exit 0
