#!/bin/bash
# dimg writing VMDK: convert -O vmdk to every subformat (streamOptimized with
# and without -c), and into an overlay with a backing file.  qemu-img check
# must pass and qemu-img compare must find the guest data identical.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw src.raw 12M

for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    for c in "" -c; do
        rm -rf out && mkdir out
        if [ -n "$c" ] && [[ $sub == *Flat ]]; then
            # no grains to compress: both refuse
            expect_rc 1 "$DIMG" convert -c -O vmdk -o subformat=$sub src.raw out/t.vmdk
            continue
        fi
        # shellcheck disable=SC2086
        "$DIMG" convert $c -O vmdk -o subformat=$sub src.raw out/t.vmdk || { fail "$sub $c: dimg convert"; continue; }
        case $sub in *Sparse|stream*) "$QEMU_IMG" check -q out/t.vmdk || fail "$sub $c: qemu-img check" ;; esac
        "$QEMU_IMG" compare -q src.raw out/t.vmdk || fail "$sub $c: qemu-img compare"
    done
done

# Grains written compressed are smaller than the data (text compresses).
"$DIMG" convert -O vmdk -o subformat=streamOptimized src.raw s.vmdk
[ "$(stat -c %s s.vmdk)" -lt 4000000 ] || fail "streamOptimized: grains not compressed"
"$QEMU_IMG" info s.vmdk | grep -q 'compressed: true' || fail "streamOptimized: not flagged compressed"

# Writes into an overlay whose backing file has data: unwritten parts of a
# grain come from the backing file.
"$QEMU_IMG" create -q -f vmdk base.vmdk 12M
"$QEMU_IO" -f vmdk -c "write -P 0x61 0 2M" base.vmdk >/dev/null
"$QEMU_IMG" create -q -f vmdk -b base.vmdk -F vmdk top.vmdk
truncate -s 12M odd.raw
head -c 5000 /dev/urandom | dd of=odd.raw bs=1 seek=100000 conv=notrunc status=none
"$DIMG" convert -n -O vmdk odd.raw top.vmdk || fail "overlay: dimg convert -n"
"$QEMU_IMG" check -q top.vmdk || fail "overlay: qemu-img check"
"$QEMU_IMG" compare -q odd.raw top.vmdk || fail "overlay: qemu-img compare"

# zeroed_grain images and a backing chain written by dimg convert
"$QEMU_IMG" create -q -f vmdk -o zeroed_grain=on z.vmdk 12M
"$DIMG" convert -n -O vmdk src.raw z.vmdk || fail "zeroed: dimg convert -n"
"$QEMU_IMG" check -q z.vmdk || fail "zeroed: qemu-img check"
"$QEMU_IMG" compare -q src.raw z.vmdk || fail "zeroed: qemu-img compare"
finish
