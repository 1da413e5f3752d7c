#!/bin/bash
# Kill dimg with SIGKILL at many instants while it changes persistent bitmaps
# (--add/--merge/--clear on an image whose bitmaps take many clusters) and
# while it writes guest data into an image with enabled bitmaps.  qemu-img
# check must find at worst leaks (exit 0 or 3), and qemu-img must still open
# the image: every bitmap is either consistent or flagged in-use, never
# corrupt.
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-8}

check_image() { # image label
    check_leaky "$@"
    # qemu-img loads every consistent bitmap (directory, tables, data) on open.
    "$QEMU_IMG" info "$1" >info.out 2>&1 || { fail "$2: qemu-img info failed"; head -5 info.out >&2; }
}

delay_for() { python3 -c "import random; random.seed($1); print(round(random.uniform(0.0, $2), 3))"; }

run_and_kill() { # seed max-delay args...
    local seed=$1 max=$2; shift 2
    "$DIMG" "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$(delay_for "$seed" "$max")"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}

# 512-byte clusters and 512-byte granularity: each bitmap of this 1 GiB image
# has 512 data clusters, so storing eight of them takes a while.  Their bits
# are made all ones by pointing every table entry at "all ones" (bit 0).
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=512 big.qcow2 1G
for b in one two b3 b4 b5 b6 b7 b8; do
    "$QEMU_IMG" bitmap --add -g 512 big.qcow2 $b
done
python3 - big.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
d = f.read(1 << 20)
hdr_len = struct.unpack_from('>I', d, 100)[0]
o = hdr_len
while True:
    t, l = struct.unpack_from('>II', d, o)
    if t == 0:
        sys.exit('no bitmaps extension')
    if t == 0x23852875:
        n, _, size, off = struct.unpack_from('>IIQQ', d, o + 8)
        break
    o += 8 + (l + 7) // 8 * 8
f.seek(off)
dirb = f.read(size)
p = 0
for _ in range(n):
    tab, tsize, flags, typ, gb, nsz, esz = struct.unpack_from('>QIIBBHI', dirb, p)
    f.seek(tab)
    f.write(struct.pack('>Q', 1) * tsize)
    p += (24 + esz + nsz + 7) // 8 * 8
PY
"$QEMU_IMG" check -q big.qcow2 || fail "could not prepare the image"
# time one full --add --merge --clear to spread the kills over it
start=$(date +%s%N)
cp big.qcow2 t.qcow2
"$DIMG" bitmap --add -g 512 --merge one --clear t.qcow2 three || fail "bitmap on big image failed"
took=$((($(date +%s%N) - start) / 1000000))
max=$(python3 -c "print(max(0.05, $took / 1000 * 1.1))")
check_image t.qcow2 "uninterrupted"

for i in $(seq 1 "$ROUNDS"); do
    cp big.qcow2 t.qcow2
    run_and_kill "$i" "$max" bitmap --add -g 512 --merge one t.qcow2 three
    check_image t.qcow2 "add+merge round $i"
    cp big.qcow2 t.qcow2
    run_and_kill "$((i + 50))" "$max" bitmap --clear --disable t.qcow2 one
    check_image t.qcow2 "clear round $i"
    cp big.qcow2 t.qcow2
    run_and_kill "$((i + 70))" "$max" bitmap --remove t.qcow2 two
    check_image t.qcow2 "remove round $i"
    cp big.qcow2 t.qcow2
    run_and_kill "$((i + 90))" "$max" bitmap --enable t.qcow2 two
    check_image t.qcow2 "remove round $i"
done

# Guest writes with enabled bitmaps: the bitmaps are in-use while dimg writes.
truncate -s 64M src.raw
head -c 32M /dev/urandom | dd of=src.raw conv=notrunc status=none
"$QEMU_IMG" create -q -f qcow2 w.qcow2 64M
"$QEMU_IMG" bitmap --add w.qcow2 on
"$QEMU_IMG" bitmap --add -g 512 --disable w.qcow2 off
for i in $(seq 1 "$ROUNDS"); do
    cp w.qcow2 t.qcow2
    run_and_kill "$((i + 100))" 1.5 convert -n -t writeback -r 40M -O qcow2 src.raw t.qcow2
    check_image t.qcow2 "convert -n round $i"
done
finish
