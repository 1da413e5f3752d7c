#!/bin/bash
# dimg writing VHDX: convert -O vhdx (each subformat and block state), writes
# into qemu-img's images (convert -n), and images written by both tools in
# turn.  qemu-img must check them clean and read the same guest bytes; sparse
# regions stay unallocated (the file is no larger than qemu-img's).
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw src.raw 40M
for opts in "" "subformat=fixed" "subformat=fixed,block_state_zero=off" \
    "block_state_zero=off" "block_size=1M" "block_size=32M,log_size=2M"; do
    rm -f d.vhdx q.vhdx
    "$DIMG" convert -O vhdx ${opts:+-o "$opts"} src.raw d.vhdx || fail "[$opts] convert failed"
    "$QEMU_IMG" convert -O vhdx ${opts:+-o "$opts"} src.raw q.vhdx
    "$QEMU_IMG" check -q d.vhdx || fail "[$opts] qemu-img check fails"
    "$QEMU_IMG" compare -q src.raw d.vhdx || fail "[$opts] qemu-img reads other bytes"
    "$DIMG" compare -q src.raw d.vhdx || fail "[$opts] dimg reads other bytes"
    [ "$(stat -c %s d.vhdx)" -le "$(stat -c %s q.vhdx)" ] || fail "[$opts] file larger than qemu-img's"
    [ "$(stat -c %b d.vhdx)" -le $(($(stat -c %b q.vhdx) + 64)) ] ||
        fail "[$opts] more allocated than qemu-img's"
    both "info[$opts]" info --output=json d.vhdx; same "info[$opts]"
done

# convert -n over a qemu-img image with data: rewrites present blocks, adds
# new ones, zeroes ranges; the result must read as the source.
"$QEMU_IMG" create -q -f vhdx -o block_size=1M t.vhdx 40M
"$QEMU_IO" -f vhdx -c "write -P 0xaa 0 3M" -c "write -P 0xbb 20M 1M" -c "write -P 0xcc 39M 1M" \
    t.vhdx >/dev/null
"$DIMG" convert -n -O vhdx src.raw t.vhdx || fail "convert -n failed"
"$QEMU_IMG" check -q t.vhdx || fail "convert -n: qemu-img check fails"
"$QEMU_IMG" compare -q src.raw t.vhdx || fail "convert -n: qemu-img reads other bytes"

# Both tools write the same image in turn.
"$DIMG" create -q -f vhdx m.vhdx 24M
printf 'dimg was here' >p.raw
truncate -s 24M p.raw
"$DIMG" convert -n -O vhdx p.raw m.vhdx || fail "convert -n into dimg's image failed"
"$QEMU_IO" -f vhdx -c "write -P 0x55 9M 100k" m.vhdx >/dev/null
"$QEMU_IO" -f raw -c "write -P 0x55 9M 100k" p.raw >/dev/null
"$QEMU_IMG" check -q m.vhdx || fail "mixed: qemu-img check fails"
both mixed compare m.vhdx p.raw; same mixed
"$DIMG" convert -O vhdx m.vhdx m2.vhdx || fail "vhdx to vhdx failed"
"$QEMU_IMG" compare -q m2.vhdx p.raw || fail "vhdx to vhdx: other bytes"
"$DIMG" convert -O qcow2 m2.vhdx m.qcow2 || fail "vhdx to qcow2 failed"
"$QEMU_IMG" compare -q m.qcow2 p.raw || fail "vhdx to qcow2: other bytes"

# A mostly empty disk stays mostly empty.
truncate -s 1G sparse.raw
printf 'x' | dd of=sparse.raw bs=1 seek=500M conv=notrunc status=none
"$DIMG" convert -O vhdx sparse.raw s.vhdx || fail "sparse convert failed"
"$QEMU_IMG" convert -O vhdx sparse.raw qs.vhdx
[ "$(stat -c %s s.vhdx)" -le "$(stat -c %s qs.vhdx)" ] || fail "sparse: file larger than qemu-img's"
"$QEMU_IMG" compare -q sparse.raw s.vhdx || fail "sparse: other bytes"
finish
