#!/bin/bash
# check on VMDK, as qemu-img 7.2: clean images of every subformat (human and
# JSON), grain table entries pointing at or past the end of the extent file
# (error, exit 1; one inside the file is fine), a grain table beyond the end
# (reads as unallocated), and -r, which VMDK does not support (exit 63).
. "$TEST_LIB"
requires qemu-img qemu-io python3

n=0
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    "$QEMU_IMG" create -q -f vmdk -o subformat=$sub c-$sub.vmdk 3G
    if [ $sub != streamOptimized ]; then
        "$QEMU_IO" -f vmdk -c "write -P 1 0 128k" -c "write -P 2 2100M 64k" c-$sub.vmdk >/dev/null
    fi
    for out in human json; do
        n=$((n + 1))
        both "c$n" check --output=$out c-$sub.vmdk
        same "c$n"
    done
done
"$QEMU_IMG" create -q -f raw src.raw 8M
"$QEMU_IO" -f raw -c "write -P 5 1M 3M" src.raw >/dev/null
"$QEMU_IMG" convert -O vmdk -o subformat=streamOptimized src.raw s.vmdk
both s1 check s.vmdk
same s1

# Grain table entry 1 of the first table (guest sector 128) set to a sector
# number; the file of a fresh 64M image written as below is 512 sectors long.
corrupt() { # file gte-sector [gd]
    "$QEMU_IMG" create -q -f vmdk "$1" 64M
    "$QEMU_IO" -f vmdk -c "write -P 1 0 128k" -c "write -P 2 10M 64k" "$1" >/dev/null
    python3 - "$@" <<'PY'
import struct, sys
path, value = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    h = f.read(512)
    gd = struct.unpack_from("<Q", h, 56)[0]
    f.seek(gd * 512)
    gt = struct.unpack("<I", f.read(4))[0]
    if len(sys.argv) > 3:
        f.seek(gd * 512)
        f.write(struct.pack("<I", value))
    else:
        f.seek(gt * 512 + 4)
        f.write(struct.pack("<I", value))
PY
}
for v in 400 511 512 100000; do
    corrupt g$v.vmdk $v
    cp g$v.vmdk g$v.orig
    for args in "check" "check --output=json" "check -r all" "check -r leaks"; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        both "g$n" $args g$v.vmdk
        same "g$n"
    done
    cmp -s g$v.vmdk g$v.orig || fail "check changed g$v.vmdk"
done
corrupt d.vmdk 1000000 gd
both d1 check d.vmdk
same d1
finish
