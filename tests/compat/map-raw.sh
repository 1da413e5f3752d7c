#!/bin/bash
# map on raw images: human and JSON output, merging, --start-offset/--max-length
# (suffixes, unaligned, past the end), empty and odd-sized images, option errors
# and a running raw writer, as qemu-img prints them.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw s.raw 16M
"$QEMU_IMG" create -q -f raw created.raw 10M   # qemu-img writes its first 4 KiB
"$QEMU_IMG" create -q -f raw zero0.raw 0
truncate -s 1000 odd-hole.raw                 # sizes that are not whole sectors
head -c 1000 /dev/urandom >odd-data.raw
truncate -s 100000 odd-tail.raw
head -c 100 /dev/urandom | dd of=odd-tail.raw bs=1 seek=99950 conv=notrunc status=none
# Alternating 4 KiB data/hole pattern, then a contiguous data run built from
# several writes (must merge into one entry).
truncate -s 1M frag.raw
for i in 0 2 4 6 8 10; do
    head -c 4096 /dev/urandom | dd of=frag.raw bs=4k seek=$i conv=notrunc status=none
done
for i in 64 65 66 67; do
    head -c 4096 /dev/urandom | dd of=frag.raw bs=4k seek=$i conv=notrunc status=none
done
mkdir dir

n=0
check() {
    n=$((n + 1))
    both "map$n" map "$@"
    same "map$n"
}

for img in s.raw created.raw zero0.raw odd-hole.raw odd-data.raw odd-tail.raw frag.raw; do
    check "$img"
    check --output=json "$img"
done

# Ranges: suffixes, unaligned starts and lengths, zero length, past the end.
for range in "--start-offset=777" "--start-offset=1048577 --max-length=1000" \
    "--max-length=1048577" "--start-offset=1M --max-length=1k" "-s 1.5M -l 3M" \
    "--start-offset=16777215" "--start-offset=16777216" "--start-offset=20000000" \
    "--max-length=0" "--start-offset=0x100000 --max-length=0x80000" \
    "--start-offset=16M --max-length=1" "--start-offset 512 --max-length 511" \
    "--max-length=8E" "--start-offset=9223372036854775807" \
    "--start-offset=4E --max-length=7E"; do
    # shellcheck disable=SC2086
    check $range s.raw
    # shellcheck disable=SC2086
    check --output=json $range s.raw
done
check --output=json --start-offset=1000 zero0.raw
check --output=json --start-offset=999 --max-length=100 odd-hole.raw
check --output=json --start-offset=5 --max-length=5000 odd-data.raw

# Bad values and options.
for bad in "--start-offset=-1" "--max-length=-5" "--start-offset=abc" "--max-length=1Z" \
    "--start-offset=99999999999999999999" "--start-offset=8E" "--max-length=9E" \
    "--start-offset=1.5" "--start-offset=" "--start-offset=1KiB" "-s" "--max-length"; do
    # shellcheck disable=SC2086
    check $bad s.raw
done
check
check s.raw s.raw
check nonexistent.raw
check dir
check -f qcow2 s.raw
check -f nosuchfmt s.raw
check --output=xml s.raw
check --output json s.raw
check -x s.raw
check --bogus s.raw
check -U s.raw
check -f raw --output=json s.raw
check --image-opts driver=raw,file.filename=s.raw
check --image-opts --output=json driver=raw,file.filename=frag.raw
check --image-opts -f raw driver=raw,file.filename=s.raw
check --object secret,id=sec0,data=x s.raw

# A running raw writer shares everything: map still opens the image.
"$QEMU_IO" -f raw -c 'sleep 100000' s.raw >/dev/null 2>&1 &
qio_pid=$!
stop_qio() { kill "$qio_pid" 2>/dev/null; wait "$qio_pid" 2>/dev/null; }
cleanup_fns="$cleanup_fns stop_qio"
ino=$(stat -c %i s.raw)
# /proc/locks shows the writer's bytes 100 and 101 as one range "100 101".
for _ in $(seq 50); do
    grep -Eq ":$ino 10[01] 101\$" /proc/locks 2>/dev/null && break
    sleep 0.1
done
grep -Eq ":$ino 10[01] 101\$" /proc/locks || fail "qemu-io did not take its write lock"
check s.raw
check --output=json -U s.raw
stop_qio

finish
