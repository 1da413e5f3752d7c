#!/bin/bash
# Images written by qemu-io (data, zero writes, discards, compressed writes,
# backing chains, every cluster size) read by dimg: convert -O raw must give
# exactly qemu-img's bytes, and info must print what qemu-img prints.
. "$TEST_LIB"
requires qemu-img qemu-io

pattern_writes() {
    local img=$1 size=$2
    "$QEMU_IO" -f qcow2 \
        -c "write -P 0x11 0 300k" \
        -c "write -P 0x22 1M 64k" \
        -c "write -z 1100k 200k" \
        -c "write -P 0x33 $((size / 2 - 5000)) 10000" \
        -c "discard 128k 64k" \
        -c "write -P 0x44 $((size - 4096)) 4096" \
        "$img" >/dev/null || fail "qemu-io on $img"
}

n=0
for opts in "" "compat=0.10" "cluster_size=512" "cluster_size=4096,refcount_bits=1" \
    "cluster_size=2M" "extended_l2=on" "extended_l2=on,cluster_size=32k" \
    "compression_type=zstd" "lazy_refcounts=on" "refcount_bits=64"; do
    n=$((n + 1))
    rm -f t.qcow2
    "$QEMU_IMG" create -q -f qcow2 ${opts:+-o "$opts"} t.qcow2 8M
    pattern_writes t.qcow2 8388608
    # compressed clusters where the image can have them
    "$QEMU_IO" -f qcow2 -c "write -c -P 0x55 2M 64k" t.qcow2 >/dev/null 2>&1
    "$QEMU_IMG" convert -O raw t.qcow2 q.raw
    "$DIMG" convert -O raw t.qcow2 d.raw || fail "[$opts] dimg convert failed"
    cmp -s q.raw d.raw || fail "[$opts] guest bytes differ"
    both "info$n" info --output=json t.qcow2; same "info$n"
    both "infoh$n" info t.qcow2; same "infoh$n"
done

# A compressed image made by qemu-img convert -c, zlib and zstd.
head -c 3000000 /dev/urandom >r.bin
yes "compressible text line for the zlib and zstd paths" | head -c 5000000 >>r.bin
truncate -s 12M r.bin
for ct in zlib zstd; do
    rm -f c.qcow2
    "$QEMU_IMG" convert -c -O qcow2 -o compression_type=$ct -f raw r.bin c.qcow2
    "$DIMG" convert -O raw c.qcow2 d.raw || fail "[$ct] dimg convert failed"
    cmp -s r.bin d.raw || fail "[$ct] decompressed bytes differ"
done

# A chain: base shorter than the overlay, overlay with extended L2 and partial writes.
"$QEMU_IMG" create -q -f qcow2 b.qcow2 4M
"$QEMU_IO" -c "write -P 0x61 0 3M" b.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b b.qcow2 -F qcow2 m.qcow2 6M
"$QEMU_IO" -c "write -P 0x62 1M 64k" -c "write -z 2M 64k" m.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -o extended_l2=on -b m.qcow2 -F qcow2 o.qcow2 8M
"$QEMU_IO" -c "write -P 0x63 5000 3000" -c "write -P 0x64 1040k 6k" -c "write -z 2500k 8k" o.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw o.qcow2 q.raw
"$DIMG" convert -O raw o.qcow2 d.raw || fail "chain: dimg convert failed"
cmp -s q.raw d.raw || fail "chain: guest bytes differ"
both chain info --backing-chain --output=json o.qcow2; same chain
both chainh info --backing-chain o.qcow2; same chainh
finish
