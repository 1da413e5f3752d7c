#!/bin/bash
# Damaged VHD images: dimg must fail with qemu-img's message and exit code, or
# (where qemu-img still opens them) read the same guest bytes.
. "$TEST_LIB"
requires qemu-img qemu-io python3

# Damaged copies of a dynamic image with two allocated blocks (2 MiB each).
"$QEMU_IMG" create -q -f vpc b.vhd 10M
"$QEMU_IO" -f vpc -c "write -P 0xab 4k 4k" -c "write -P 0xcd 5M 4k" b.vhd >/dev/null
# edit FILE OFFSET HEX [ftr|hdr]: patch bytes, optionally fix the footer (both
# copies) or dynamic header checksum.
edit() {
    python3 - "$@" <<'PY'
import os, struct, sys
f, off, hx = sys.argv[1], int(sys.argv[2], 0), sys.argv[3]
fix = sys.argv[4] if len(sys.argv) > 4 else ''
size = os.path.getsize(f)
with open(f, 'r+b') as fh:
    fh.seek(off)
    fh.write(bytes.fromhex(hx))
    regions = {'ftr': [(0, 64, 512), (size - 512, 64, 512)], 'hdr': [(512, 36, 1024)]}
    for base, at, n in regions.get(fix, []):
        fh.seek(base)
        d = bytearray(fh.read(n))
        d[at:at + 4] = bytes(4)
        fh.seek(base + at)
        fh.write(struct.pack('>I', ~sum(d) & 0xffffffff))
PY
}
n=0
while read -r off hex fix cmp; do
    n=$((n + 1))
    cp b.vhd x.vhd
    edit x.vhd "$off" "$hex" $fix
    both "bad$n" info -f vpc x.vhd; same "bad$n"
    # Where qemu-img opens the damaged image, the guest bytes must agree too.
    if [ -n "${cmp:-}" ] && [ "$(cat "q.bad$n.rc")" = 0 ]; then
        "$QEMU_IMG" convert -f vpc -O raw x.vhd q.raw
        "$DIMG" convert -f vpc -O raw x.vhd d.raw || fail "bad$n: dimg convert failed"
        cmp -s q.raw d.raw || fail "bad$n: guest bytes differ"
    fi
done <<'LIST'
0x40 00000000
0x224 00000000 - cmp
0x3c 00000004 ftr cmp
0x3c 00000002 ftr cmp
0x220 00000000 hdr
0x220 00000300 hdr
0x220 40000000 hdr
0x21c 00000001 hdr
0x21c 7fffffff hdr
0x210 0000000100000000 hdr
0x210 ffffffffffffff00 hdr
0x604 7fffffff
0x604 00000001 - cmp
0x10 0000100000000000 ftr
0x10 ffffffffffffffff ftr
0x38 ffff10ff ftr cmp
0x38 00000000 ftr
0x1c 71656d32 ftr
0x30 0000000000100000 ftr
0x0 0000000000000000
LIST
# Truncated copies.
for len in 0 100 1000 2048 4197375; do
    n=$((n + 1))
    head -c "$len" b.vhd >x.vhd
    both "trunc$n" info -f vpc x.vhd; same "trunc$n"
done
# A fixed image whose footer is no longer the last sector.
"$QEMU_IMG" create -q -f vpc -o subformat=fixed f.vhd 1M
truncate -s +1 f.vhd
both fixedtail info -f vpc f.vhd; same fixedtail
finish
