#!/bin/bash
# compare on raw images: formats, cache modes, image options, objects, usage
# and open errors, and a running raw writer, as qemu-img reports them.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw s.raw 8M
cp --sparse=always s.raw a.raw
cp s.raw same.raw
cp s.raw b.raw
printf 'x' | dd of=b.raw bs=1 seek=4097 conv=notrunc status=none
mkdir dir

n=0
check() {
    n=$((n + 1))
    both "cmp$n" compare "$@"
    same "cmp$n"
}

# Formats, cache modes, image options, objects.
check -f raw -F raw s.raw a.raw
check -T none s.raw a.raw
check -T writeback -U s.raw a.raw
check --image-opts driver=raw,file.filename=s.raw driver=raw,file.filename=a.raw
check --object secret,id=sec0,data=x s.raw a.raw

# Errors.
check s.raw nonexistent.raw
check -p nonexistent.raw s.raw
check -q nonexistent.raw s.raw
check -p -s s.raw nonexistent.raw
check dir s.raw
check s.raw
check
check s.raw a.raw extra.raw
check -x s.raw a.raw
check --bogus s.raw a.raw
check -f
check -f qcow2 s.raw a.raw
check -F nosuchfmt s.raw a.raw
check -T bogus s.raw a.raw
check -p -T bogus s.raw a.raw
check --image-opts -f raw driver=raw,file.filename=s.raw driver=raw,file.filename=a.raw
check --image-opts -F raw driver=raw,file.filename=s.raw driver=raw,file.filename=a.raw

# A running raw writer shares everything: compare still opens the image.
"$QEMU_IO" -f raw -c 'sleep 100000' same.raw >/dev/null 2>&1 &
qio_pid=$!
stop_qio() { kill "$qio_pid" 2>/dev/null; wait "$qio_pid" 2>/dev/null; }
cleanup_fns="$cleanup_fns stop_qio"
ino=$(stat -c %i same.raw)
# /proc/locks shows the writer's bytes 100 and 101 as one range "100 101".
for _ in $(seq 50); do
    grep -Eq ":$ino 10[01] 101\$" /proc/locks 2>/dev/null && break
    sleep 0.1
done
grep -Eq ":$ino 10[01] 101\$" /proc/locks || fail "qemu-io did not take its write lock"
check s.raw same.raw
check same.raw b.raw
check -U same.raw s.raw
stop_qio

finish
