#!/bin/bash
# Kill dimg commit with SIGKILL at many instants and require, every time:
# qemu-img check finds at worst leaks (exit 0 or 3) on base and top, the
# top's guest view is unchanged, and every base cluster holds its old data
# or the committed one.
#  - Emptying the top: strace kills dimg at each write, truncate or flush
#    of top.qcow2 in turn (the minimal rewrite and the discard way).
#  - Copying: kills at spread write syscalls on base.qcow2 (strace), and at
#    random instants of a rate-limited run.
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-4}
WRITES='pwrite64,pwritev,write,fallocate,ftruncate,fdatasync,fsync'

# base.qcow2 (data everywhere) <- top.qcow2 (data, zeros, compressed); $1: top options.
make_chain() {
    rm -rf orig && mkdir orig && (
        cd orig || exit 1
        "$QEMU_IMG" create -q -f qcow2 base.qcow2 "$2"
        "$QEMU_IO" -c "write -P 0x11 0 $2" base.qcow2 >/dev/null
        "$QEMU_IMG" create -q -f qcow2 ${1:+-o "$1"} -b base.qcow2 -F qcow2 top.qcow2 "$2"
        "$QEMU_IO" -c "write -P 0x22 64k 192k" -c "write -z 1M 128k" -c "discard 2M 64k" \
            -c "write -c -P 0x44 3M 64k" -c "write -P 0x55 4M $3" top.qcow2 >/dev/null
    ) || fail "make_chain $*"
    "$QEMU_IMG" convert -O raw orig/top.qcow2 view.raw
    "$QEMU_IMG" convert -O raw orig/base.qcow2 oldbase.raw
}

fresh() { rm -rf w && cp -a orig w; }

# After a kill: the top leaky at worst and reading as before.
verify_top() { # label
    check_leaky w/top.qcow2 "$1"
    "$QEMU_IMG" compare -q view.raw w/top.qcow2 || fail "$1: the top's guest view changed"
}

# And the base leaky at worst with each cluster old or new.
verify() { # label
    verify_top "$1"
    check_leaky w/base.qcow2 "$1"
    "$QEMU_IMG" convert -O raw w/base.qcow2 base.raw || { fail "$1: base unreadable"; return; }
    python3 - oldbase.raw view.raw base.raw <<'PY' || fail "$1: a base cluster is neither old nor new"
import sys
old, new, got = (open(p, 'rb') for p in sys.argv[1:4])
while True:
    o, n, g = old.read(65536), new.read(65536), got.read(65536)
    if not g:
        break
    if g != o and g != n:
        sys.exit(1)
PY
}

# Kill at the n-th call of one write-like syscall touching path (strace counts
# each syscall on its own, so the kills walk one syscall at a time).
kill_at() { # syscall n path args...
    local sc=$1 n=$2 path=$3; shift 3
    (cd w && strace -f -o /dev/null -P "$path" -e trace="$WRITES" \
        -e inject="$sc":signal=KILL:when="$n" "$DIMG" "$@" >/dev/null 2>&1) 2>/dev/null
}

# "syscall count" lines for an uninterrupted run.
count_writes() { # path args...
    local path=$1; shift
    (cd w && strace -f -o ../strace.out -P "$path" -e trace="$WRITES" "$DIMG" "$@" \
        >/dev/null 2>&1) 2>/dev/null
    sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' strace.out | sort | uniq -c | awk '{ print $2, $1 }'
}

if command -v strace >/dev/null 2>&1; then
    # Emptying: every write to the top, for the minimal rewrite (v3) and the discard way (v2).
    for opts in "" "compat=0.10"; do
        make_chain "$opts" 8M 1M
        fresh
        count_writes top.qcow2 commit top.qcow2 >counts
        [ "$(awk '{ n += $2 } END { print n + 0 }' counts)" -gt 3 ] ||
            fail "empty ($opts): hardly any writes to the top seen"
        # The base is complete before the top is written: only the top can suffer.
        while read -r sc total <&3; do
            for n in $(seq 1 "$total"); do
                fresh
                kill_at "$sc" "$n" top.qcow2 commit top.qcow2
                verify_top "empty ($opts) kill at $sc $n/$total"
            done
        done 3<counts
        verify "empty ($opts) after the last kill"
    done

    # Copying: writes to the base spread over the run.
    make_chain "" 16M 8M
    fresh
    count_writes base.qcow2 commit top.qcow2 >counts
    while read -r sc total <&3; do
        [ "$sc" = pwrite64 ] || [ "$sc" = fdatasync ] || continue
        for i in $(seq 1 "$ROUNDS"); do
            n=$(( (total * i + ROUNDS) / (ROUNDS + 1) ))
            fresh
            kill_at "$sc" "$n" base.qcow2 commit top.qcow2
            verify "copy kill at base $sc $n/$total"
        done
    done 3<counts
else
    echo "strace not installed: only the timed kills run"
fi

# Timed kills of a rate-limited run (about one second).
make_chain "" 32M 16M
delay_for() { python3 -c "import random; random.seed($1); print(round(random.uniform(0.0, 1.0), 3))"; }
for i in $(seq 1 "$ROUNDS"); do
    fresh
    (cd w && exec "$DIMG" commit -r 16M top.qcow2 >/dev/null 2>&1) &
    pid=$!
    sleep "$(delay_for "$i")"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    verify "timed kill round $i"
done
finish
