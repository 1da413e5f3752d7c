#!/bin/bash
# Internal snapshots made by qemu-img: snapshot -l and info (human, JSON,
# backing chain) list them exactly as qemu-img does, in several time zones.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f qcow2 b.qcow2 64M
"$QEMU_IMG" create -q -f qcow2 s.qcow2 64M
"$QEMU_IO" -c "write -P 1 0 1M" s.qcow2 >/dev/null
for name in first "with space" 1234567890123456 12345678901234567 a-very-long-snapshot-name-here; do
    "$QEMU_IMG" snapshot -c "$name" s.qcow2 || fail "qemu-img snapshot -c $name"
    "$QEMU_IO" -c "write -P 2 0 64k" s.qcow2 >/dev/null
done
"$QEMU_IMG" snapshot -d first s.qcow2
"$QEMU_IMG" create -q -f qcow2 -b b.qcow2 -F qcow2 o.qcow2
"$QEMU_IMG" snapshot -c s1 o.qcow2

n=0
for tz in UTC Asia/Tokyo America/New_York; do
    for args in "snapshot -l s.qcow2" "snapshot -l -U s.qcow2" "info s.qcow2" "info --output=json s.qcow2" \
        "info o.qcow2" "info --output=json o.qcow2" "info --backing-chain --output=json o.qcow2" \
        "snapshot -l b.qcow2"; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        TZ=$tz both "l$n" $args
        same "l$n"
    done
done
# The data dimg reads is the active layer's, not a snapshot's.
"$QEMU_IMG" convert -O raw s.qcow2 q.raw
"$DIMG" convert -O raw s.qcow2 d.raw
cmp -s q.raw d.raw || fail "active layer differs"
finish
