#!/bin/bash
# compare on raw images: results, mismatch offsets (first differing sector),
# size differences with zero and non-zero tails, strict mode, -q and -p output,
# all byte for byte as qemu-img prints them.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 16M
cp --sparse=always s.raw a.raw     # same content, explicit zeros turned into holes
cp s.raw same.raw
"$QEMU_IMG" create -q -f raw zero0.raw 0
truncate -s 1000 odd.raw           # 1000 bytes: qemu counts it as 1024
head -c 1000 /dev/urandom >odd-data.raw
truncate -s 1024 odd-pad.raw
dd if=odd-data.raw of=odd-pad.raw conv=notrunc status=none
mkdir dir

# One byte changed at offset $2 of a copy of s.raw.
poke() {
    cp s.raw "$1"
    printf '\125' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

n=0
check() {
    n=$((n + 1))
    both "cmp$n" compare "$@"
    same "cmp$n"
}

# Identical, in every mode.
for opts in "" "-p" "-s" "-q -p"; do
    # shellcheck disable=SC2086
    check $opts s.raw same.raw
    # shellcheck disable=SC2086
    check $opts s.raw a.raw
done

# Differences at the first byte, unaligned middles (in data, in holes, in
# explicit zeros), and the last byte.
for off in 0 1 777 1600000 2100000 3000000 16777215; do
    poke b.raw "$off"
    check s.raw b.raw
    check -p b.raw a.raw
done
poke b.raw 5242881
check -s s.raw b.raw
check -q s.raw b.raw

# Different sizes: a zero tail (hole, then explicit zeros), then non-zero tails.
cp s.raw big.raw
truncate -s 20M big.raw
check s.raw big.raw
check big.raw s.raw
check -p big.raw s.raw
check -s s.raw big.raw
check -s -p big.raw s.raw
dd if=/dev/zero of=big.raw bs=1M seek=17 count=1 conv=notrunc status=none
check s.raw big.raw
for off in $((16 * 1048576)) $((17 * 1048576 + 777)) $((20 * 1048576 - 1)); do
    cp s.raw big.raw
    truncate -s 20M big.raw
    printf 'x' | dd of=big.raw bs=1 seek="$off" conv=notrunc status=none
    check s.raw big.raw
    check -p big.raw s.raw
done
# A difference in the common part is reported before the size warning.
poke b.raw 4096
truncate -s 20M b.raw
check s.raw b.raw
check -s s.raw b.raw

# Strict mode compares block status: data vs hole with equal content.
head -c 1M /dev/urandom >f1.raw
cp f1.raw f2.raw
fallocate -p -o 524288 -l 524288 f2.raw 2>/dev/null || dd if=/dev/zero of=f2.raw bs=512k seek=1 count=1 conv=notrunc status=none
head -c 524288 f1.raw >f3.raw
truncate -s 1M f3.raw
check f1.raw f2.raw
check -s f1.raw f2.raw
check -s f3.raw f2.raw
check -s -p f2.raw f3.raw

# Progress over many runs of varied sizes (qemu-img sums in single precision).
truncate -s 30M prog.raw
RANDOM=7
off=0
while [ "$off" -lt 30000 ]; do # KiB
    len=$(((RANDOM % 64 + 1) * 16))
    head -c $((len * 1024)) /dev/urandom | dd of=prog.raw bs=1k seek="$off" conv=notrunc status=none
    off=$((off + len + (RANDOM % 3) * 512))
done
cp prog.raw prog2.raw
check -p prog.raw prog2.raw
truncate -s 31M prog2.raw
check -p prog2.raw prog.raw

# Empty and odd-sized images.
check zero0.raw zero0.raw
check -p zero0.raw zero0.raw
check zero0.raw s.raw
check -s zero0.raw s.raw
check odd.raw zero0.raw
check odd-data.raw odd-pad.raw
check -s odd-data.raw odd-pad.raw
check odd.raw odd-pad.raw

finish
