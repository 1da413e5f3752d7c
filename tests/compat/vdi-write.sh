#!/bin/bash
# vdi images written by dimg: convert -O vdi (dynamic, static, -S 0) must give
# qemu-img's bytes (the random UUIDs aside), and writes into existing images
# (convert -n) must allocate blocks in qemu's order.
. "$(dirname "$0")/vdi-common.inc"
. "$TEST_LIB"
requires qemu-img qemu-io

# Bytes 0x188..0x1a7 hold the creation and modification UUIDs (random).
same_bytes() {
    local tag=$1 a=$2 b=$3
    [ "$(stat -c %s "$a")" = "$(stat -c %s "$b")" ] || fail "$tag: file sizes differ"
    local diffs
    diffs=$(cmp -l "$a" "$b" 2>/dev/null | awk '$1 < 393 || $1 > 424' | wc -l)
    [ "$diffs" -eq 0 ] || fail "$tag: $diffs bytes differ outside the UUIDs"
}

make_sample_raw s.raw 20M
n=0
for opts in "" "-o static=on" "-S 0" "-o static=on -S 0"; do
    n=$((n + 1))
    rm -f q.vdi d.vdi
    # shellcheck disable=SC2086
    "$QEMU_IMG" convert -f raw -O vdi $opts s.raw q.vdi
    # shellcheck disable=SC2086
    "$DIMG" convert -f raw -O vdi $opts s.raw d.vdi || fail "[$opts] dimg convert failed"
    same_bytes "[$opts]" q.vdi d.vdi
    both "ck$n" check d.vdi; same "ck$n"
    both "cmp$n" compare s.raw d.vdi; same "cmp$n"
done

# From a qcow2 with scattered clusters: allocation follows the write order.
"$QEMU_IMG" create -q -f qcow2 src.qcow2 7M
"$QEMU_IO" -c "write -P 0x11 5M 4k" -c "write -P 0x22 0 1k" -c "write -P 0x33 6M 1M" \
    -c "write -z 2M 64k" src.qcow2 >/dev/null
"$QEMU_IMG" convert -O vdi src.qcow2 q.vdi
"$DIMG" convert -O vdi src.qcow2 d.vdi || fail "qcow2: dimg convert failed"
same_bytes qcow2 q.vdi d.vdi

# Into existing images (-n): allocated blocks are rewritten in place, new
# ones appended after those qemu-io allocated out of order.
for opts in "" "static=on"; do
    rm -f q.vdi d.vdi
    "$QEMU_IMG" create -q -f vdi ${opts:+-o "$opts"} q.vdi 20M
    "$QEMU_IO" -f vdi -c "write -P 0x44 9M 4k" -c "write -P 0x55 100k 1k" q.vdi >/dev/null
    cp q.vdi d.vdi
    "$QEMU_IMG" convert -n -f raw -O vdi s.raw q.vdi
    "$DIMG" convert -n -f raw -O vdi s.raw d.vdi || fail "[-n $opts] dimg convert failed"
    same_bytes "[-n $opts]" q.vdi d.vdi
    both "nck$opts" check d.vdi; same "nck$opts"
    both "nmap$opts" map --output=json d.vdi; same "nmap$opts"
done

# dd into a new vdi.
both dd dd -O vdi if=s.raw of=dd.vdi bs=64k count=50; same dd
"$QEMU_IMG" convert -O raw dd.vdi dd.raw
cmp -s dd.raw <(head -c 3276800 s.raw) || fail "dd: guest bytes differ"
finish
