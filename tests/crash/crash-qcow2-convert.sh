#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes qcow2 images
# (convert to a new image, compressed convert, convert -n over existing data)
# and require qemu-img check to find at worst leaks (exit 0 or 3, never 2),
# with every cluster of a -n target holding either its old or its new data.
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-8}
# Mostly data, so that the rate-limited copy lasts about 1.2 s and kills land mid-way.
truncate -s 32M src.raw
head -c 16M /dev/urandom | dd of=src.raw conv=notrunc status=none
yes "crash test text" | head -c 8M | dd of=src.raw bs=1M seek=20 conv=notrunc status=none

# Delay before the kill: spread over the run (the rate limit makes it last ~1.5 s).
delay_for() { python3 -c "import random; random.seed($1); print(round(random.uniform(0.0, 1.3), 3))"; }

run_and_kill() { # seed args...
    local seed=$1; shift
    "$DIMG" "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$(delay_for "$seed")"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}

for i in $(seq 1 "$ROUNDS"); do
    rm -f new.qcow2
    run_and_kill "$i" convert -t writeback -r 20M -O qcow2 src.raw new.qcow2
    [ -e new.qcow2 ] && [ "$(stat -c %s new.qcow2)" -gt 0 ] && check_leaky new.qcow2 "convert round $i"

    rm -f newc.qcow2
    run_and_kill "$((i + 100))" convert -t writeback -r 20M -c -O qcow2 -o cluster_size=4k src.raw newc.qcow2
    [ -e newc.qcow2 ] && [ "$(stat -c %s newc.qcow2)" -gt 0 ] && check_leaky newc.qcow2 "convert -c round $i"
done

# convert -n over an image full of old data: each cluster is old or new afterwards.
"$QEMU_IMG" create -q -f qcow2 old.qcow2 32M
"$QEMU_IO" -c "write -P 0xaa 0 32M" old.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw old.qcow2 old.raw
for i in $(seq 1 "$ROUNDS"); do
    cp old.qcow2 t.qcow2
    run_and_kill "$((i + 200))" convert -n -t writeback -r 20M -O qcow2 src.raw t.qcow2
    check_leaky t.qcow2 "convert -n round $i"
    "$QEMU_IMG" convert -O raw t.qcow2 t.raw 2>/dev/null || { fail "round $i: unreadable"; continue; }
    python3 - old.raw src.raw t.raw <<'PY' || fail "convert -n round $i: a cluster is neither old nor new"
import sys
old, new, got = (open(p, 'rb') for p in sys.argv[1:4])
cs = 65536
while True:
    o, n, g = old.read(cs), new.read(cs), got.read(cs)
    if not g:
        break
    if g != o and g != n:
        sys.exit(1)
PY
done
finish
