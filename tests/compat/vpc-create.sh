#!/bin/bash
# vpc create: messages, exit codes and the image bytes (CHS-rounded sizes,
# footer copy, dynamic header, BAT) must match qemu-img's, apart from the
# timestamp, the UUID and the footer checksum that covers them.
. "$TEST_LIB"
requires qemu-img python3

# Zero the time/UUID-dependent footer fields (both footer copies), print the rest's hash.
masked() {
    python3 - "$1" <<'PY'
import hashlib, os, sys
# Large fixed images are sparse: hash the first and last 8 MiB only.
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], 'rb') as f:
    head = bytearray(f.read(8 << 20))
    f.seek(max(size - (8 << 20), len(head)))
    tail = bytearray(f.read())
for d in (head, tail):
    for base in {0, max(len(d) - 512, 0)}:
        if d[base:base + 8] == b'conectix':
            d[base + 24:base + 28] = bytes(4)   # timestamp
            d[base + 64:base + 84] = bytes(20)  # checksum + UUID
print(size, hashlib.sha256(head + tail).hexdigest())
PY
}

# Both tools create; the outputs and the masked images must be equal.
check_create() {
    local tag=$1; shift
    rm -f q.vhd d.vhd
    run_as "q.$tag" "$QEMU_IMG" create -f vpc "$@" q.vhd
    run_as "d.$tag" "$DIMG" create -f vpc "$@" d.vhd
    sed -i 's/^dimg: /qemu-img: /; s/d\.vhd/q.vhd/g' "d.$tag.err" "d.$tag.out"
    same "$tag"
    if [ -e q.vhd ] || [ -e d.vhd ]; then
        [ "$(masked q.vhd 2>&1)" = "$(masked d.vhd 2>&1)" ] || fail "$tag: image bytes differ ($*)"
    fi
}

n=0
for size in 0 1000 1M 100M 4G 127G 130G 2040G 2041G 2190433320961 267386881 1065353217; do
    n=$((n + 1))
    check_create "dyn$n" "$size"
done
for size in 0 1000000 10M 2041G; do
    n=$((n + 1))
    check_create "fix$n" -o subformat=fixed "$size"
    n=$((n + 1))
    check_create "force$n" -o force_size=on "$size"
    n=$((n + 1))
    check_create "fforce$n" -o subformat=fixed,force_size=on "$size"
done
# Random sizes around the geometry thresholds.
for i in $(seq 1 4); do
    n=$((n + 1))
    check_create "rnd$n" $(( (RANDOM * 32768 + RANDOM) * (RANDOM % 300 + 1) ))
done
# Options and errors (some leave an empty file, as qemu-img does).
for o in subformat=dynamic subformat=foo force_size=foo force_size=true \
    preallocation=full preallocation=metadata \
    preallocation=bogus "subformat=foo,preallocation=metadata" "subformat=fixed,nocow=on" \
    "subformat=fixed,preallocation=full" \
    backing_file=x.img; do
    n=$((n + 1))
    check_create "opt$n" -o "$o" 3M
done
check_create optbig1 -o subformat=foo 2041G
check_create optbig2 -o preallocation=metadata,subformat=foo 2041G
both help create -f vpc -o help; same help
both helpf create -f vpc -o help q.vhd 1M; same helpf
finish
