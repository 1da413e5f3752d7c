#!/bin/bash
# Images dimg writes (convert to qcow2 with every layout option, compressed
# output, writes into images qemu-io made) must pass qemu-img check and hold
# exactly the source's bytes per qemu-img compare.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw s.raw 24M
truncate -s 24000000 odd.raw
dd if=s.raw of=odd.raw bs=1M count=20 conv=notrunc status=none

verify() { # image source label
    "$QEMU_IMG" check -q "$1" || fail "$3: qemu-img check reports problems"
    "$QEMU_IMG" compare -q "$2" "$1" || fail "$3: content differs from the source"
}

for opts in "" "compat=0.10" "cluster_size=512" "cluster_size=4096,refcount_bits=1" \
    "cluster_size=2M" "extended_l2=on" "refcount_bits=64,cluster_size=1k" \
    "lazy_refcounts=on" "compression_type=zstd"; do
    for src in s.raw odd.raw; do
        rm -f o.qcow2
        "$DIMG" convert -O qcow2 ${opts:+-o "$opts"} "$src" o.qcow2 || fail "[$opts] convert failed"
        verify o.qcow2 "$src" "[$opts] $src"
    done
    rm -f c.qcow2
    "$DIMG" convert -c -O qcow2 ${opts:+-o "$opts"} s.raw c.qcow2 || fail "[$opts] convert -c failed"
    verify c.qcow2 s.raw "[$opts] -c"
done

# Compressed output really is compressed, and close to qemu-img's size.
yes "some compressible guest data" | head -c 8000000 >t.raw
truncate -s 16M t.raw
for ct in zlib zstd; do
    rm -f q.qcow2 d.qcow2
    "$QEMU_IMG" convert -c -O qcow2 -o compression_type=$ct t.raw q.qcow2
    "$DIMG" convert -c -O qcow2 -o compression_type=$ct t.raw d.qcow2 || fail "-c $ct failed"
    verify d.qcow2 t.raw "-c $ct"
    "$QEMU_IMG" check d.qcow2 | grep -Eq ' [1-9][0-9.]*% compressed clusters' ||
        fail "-c $ct: no compressed clusters in the output"
    qs=$(stat -c %s q.qcow2) ds=$(stat -c %s d.qcow2)
    [ "$ds" -le $((qs + qs / 50 + 65536)) ] || fail "-c $ct: output $ds bytes vs qemu-img's $qs"
    "$QEMU_IMG" info --output=json d.qcow2 | grep -q "\"compression-type\": \"$ct\"" ||
        fail "-c $ct: wrong compression type"
done

# dimg's deflate uses the whole 32 KiB window: data whose only repeats lie
# more than 4 KiB apart must still read back through qemu-img.
python3 -c "
import random
r = random.Random(7)
blk = bytes(r.getrandbits(8) for _ in range(300)) + bytes(4800)
open('far.raw', 'wb').write((blk * 2000)[:8 << 20])
"
rm -f far.qcow2
"$DIMG" convert -c -O qcow2 far.raw far.qcow2 || fail "-c far repeats failed"
verify far.qcow2 far.raw "-c with distances beyond 4 KiB"
"$QEMU_IMG" check far.qcow2 | grep -Eq ' [1-9][0-9.]*% compressed clusters' ||
    fail "far repeats: no compressed clusters"

# Writes into images qemu made: convert -n over existing data, compressed and zero clusters.
rm -f e.qcow2
"$QEMU_IMG" create -q -f qcow2 e.qcow2 24M
"$QEMU_IO" -c "write -P 0x77 0 24M" -c "write -c 4M 64k" -c "write -z 8M 1M" e.qcow2 >/dev/null
"$DIMG" convert -n -O qcow2 s.raw e.qcow2 || fail "convert -n onto a qemu image failed"
verify e.qcow2 s.raw "-n onto qemu's image"

# An overlay written by dimg reads through to its backing file where it has nothing.
rm -f b.qcow2 ov.qcow2
"$QEMU_IMG" convert -O qcow2 s.raw b.qcow2
"$DIMG" create -q -f qcow2 -b b.qcow2 -F qcow2 ov.qcow2
"$DIMG" convert -n -O qcow2 odd.raw ov.qcow2 || fail "convert -n onto an overlay failed"
"$QEMU_IMG" check -q ov.qcow2 || fail "overlay: check"
"$QEMU_IMG" convert -O raw ov.qcow2 ov.raw
cmp -s <(head -c 24000000 ov.raw) odd.raw || fail "overlay: guest data differs"
cmp -s <(tail -c +24000001 ov.raw) <(tail -c +24000001 s.raw) || fail "overlay: backing tail differs"
finish
