#!/bin/bash
# Kill dimg rebase (safe mode) with SIGKILL at many instants: qemu-img check
# must find at worst leaks (exit 0 or 3) and the image must read exactly as
# before every time, whether the kill lands while differing ranges are
# copied in or while the header is rewritten.
#  - strace kills dimg at spread calls of each write-like syscall on the image
#    (every one of them near the end, where the backing file name changes);
#  - timed kills of a run over a large image.
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-4}
WRITES='pwrite64,pwritev,write,fallocate,ftruncate,fdatasync,fsync'

# old.qcow2 <- top.qcow2, and new.qcow2 that differs from old almost everywhere.
make_images() { # size
    rm -rf orig && mkdir orig && (
        cd orig || exit 1
        "$QEMU_IMG" create -q -f qcow2 old.qcow2 "$1"
        "$QEMU_IO" -c "write -P 0x11 0 $1" old.qcow2 >/dev/null
        "$QEMU_IMG" create -q -f qcow2 new.qcow2 "$1"
        "$QEMU_IO" -c "write -P 0x99 0 $1" -c "write -P 0x11 1M 1M" new.qcow2 >/dev/null
        "$QEMU_IMG" create -q -f qcow2 -b old.qcow2 -F qcow2 top.qcow2 "$1"
        "$QEMU_IO" -c "write -P 0x22 64k 192k" -c "write -z 3M 128k" \
            -c "write -P 0x33 5M 1M" top.qcow2 >/dev/null
    ) || fail "make_images $1"
    "$QEMU_IMG" convert -O raw orig/top.qcow2 view.raw
}

fresh() { rm -rf w && cp -a orig w; }

verify() { # label
    check_leaky w/top.qcow2 "$1"
    "$QEMU_IMG" compare -q view.raw w/top.qcow2 || fail "$1: the guest view changed"
}

REBASE=(rebase -b new.qcow2 -F qcow2 top.qcow2)

if command -v strace >/dev/null 2>&1; then
    make_images 8M
    fresh
    (cd w && strace -f -o ../strace.out -P top.qcow2 -e trace="$WRITES" "$DIMG" "${REBASE[@]}" \
        >/dev/null 2>&1) 2>/dev/null
    sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' strace.out | sort | uniq -c |
        awk '{ print $2, $1 }' >counts
    [ "$(awk '{ n += $2 } END { print n + 0 }' counts)" -gt 3 ] || fail "hardly any writes seen"
    while read -r sc total <&3; do
        # Spread over the run, and every one of the last four (the header rewrite).
        ns=$( (for i in $(seq 1 "$ROUNDS"); do echo $(( (total * i + ROUNDS) / (ROUNDS + 1) )); done
               seq $((total > 4 ? total - 3 : 1)) "$total") | sort -nu)
        for n in $ns; do
            fresh
            (cd w && strace -f -o /dev/null -P top.qcow2 -e trace="$WRITES" \
                -e inject="$sc":signal=KILL:when="$n" "$DIMG" "${REBASE[@]}" \
                >/dev/null 2>&1) 2>/dev/null
            verify "kill at $sc $n/$total"
        done
    done 3<counts
else
    echo "strace not installed: only the timed kills run"
fi

# Timed kills: a larger image that takes dimg around a second.
make_images 256M
delay_for() { python3 -c "import random; random.seed($1); print(round(random.uniform(0.0, 0.8), 3))"; }
for i in $(seq 1 "$ROUNDS"); do
    fresh
    (cd w && exec "$DIMG" "${REBASE[@]}" >/dev/null 2>&1) &
    pid=$!
    sleep "$(delay_for "$i")"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    verify "timed kill round $i"
done
finish
