#!/bin/bash
# resize --shrink on qcow2 (and the grows that have to zero or map the new
# area): same messages and exit codes as qemu-img, the image (and external
# data file) byte-identical to qemu-img's result on a copy, the same
# `info --output=json` apart from the allocated size, a clean check, and
# the same guest data up to the new end.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f raw base.raw 64M
"$QEMU_IO" -f raw -c "write -P 0x55 0 64M" base.raw >/dev/null

mkdir src
mk() { # name size create-options [qemu-io commands...]
    local name=$1 size=$2 opts=$3
    shift 3
    mkdir "src/$name"
    (cd "src/$name" && "$QEMU_IMG" create -q -f qcow2 ${opts:+-o "$opts"} img.qcow2 "$size") ||
        fail "setup $name"
    for c in "$@"; do
        (cd "src/$name" && "$QEMU_IO" -c "$c" img.qcow2 >/dev/null) || fail "setup $name: $c"
    done
}
layout=("write -P 1 0 1M" "write -P 2 511M 2M" "write -P 3 1000M 1M" "write -P 4 1500M 1M"
        "write -z 1600M 64k" "write -c -P 5 1700M 64k")
mk big 2G "" "${layout[@]}"
mk empty 2G ""
mk small 4M "cluster_size=512" "write -P 1 0 1M" "write -P 2 2M 1M" "write -P 3 3M 512k"
mk rc1 2G "refcount_bits=1" "${layout[@]}"
mk extl2 2G "extended_l2=on" "write -P 1 0 100k" "write -P 2 1000M 1M" "write -z 1500M 64k"
mk v2 2G "compat=0.10" "write -P 1 0 1M" "write -P 3 1000M 1M"
mk dfile 64M "data_file=data.raw" "write -P 7 0 40M"
mk dfraw 64M "data_file=data.raw,data_file_raw=on" "write -P 8 0 40M"
mkdir src/overlay
cp base.raw src/overlay/base.raw
(cd src/overlay && "$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw img.qcow2 4M &&
    "$QEMU_IO" -c "write -P 0x11 0 1M" -c "write -z 2M 64k" -c "write -z 3M 128k" \
        img.qcow2 >/dev/null) || fail "setup overlay"
mk snap 4M "" "write -P 0x11 0 1M"
(cd src/snap && "$QEMU_IMG" snapshot -c s1 img.qcow2 &&
    "$QEMU_IO" -c "write -P 0x22 512k 3M" img.qcow2 >/dev/null) || fail "setup snap"
mk snapv2 4M "compat=0.10" "write -P 0x11 0 1M"
(cd src/snapv2 && "$QEMU_IMG" snapshot -c s1 img.qcow2) || fail "setup snapv2"

info_json() { # dir
    (cd "$1" && "$QEMU_IMG" info --output=json img.qcow2) | grep -v '"actual-size"'
}

n=0
while IFS='|' read -r name args; do
    [ -n "$name" ] || continue
    n=$((n + 1))
    tag="s$n"
    before=$failures
    rm -rf q d
    cp -r "src/$name" q
    cp -r "src/$name" d
    eval "set -- $args"
    (cd q && run_as "../q.$tag" "$QEMU_IMG" resize "$@")
    (cd d && run_as "../d.$tag" "$DIMG" resize "$@")
    sed -i 's/^dimg: /qemu-img: /' "d.$tag.err"
    same "$tag"
    for f in q/*; do
        cmp -s "$f" "d/${f#q/}" || fail "$tag: ${f#q/} differs from qemu-img's"
    done
    if ! cmp -s "src/$name/img.qcow2" d/img.qcow2; then
        info_json q >"q.$tag.info" 2>&1
        info_json d >"d.$tag.info" 2>&1
        cmp -s "q.$tag.info" "d.$tag.info" || fail "$tag: info differs"
        (cd d && "$QEMU_IMG" check -q img.qcow2) || fail "$tag: check"
        (cd q && "$QEMU_IMG" map --output=json img.qcow2) >"q.$tag.map" 2>&1
        (cd d && "$QEMU_IMG" map --output=json img.qcow2) >"d.$tag.map" 2>&1
        cmp -s "q.$tag.map" "d.$tag.map" || fail "$tag: map differs"
        (cd d && "$QEMU_IMG" compare -q ../q/img.qcow2 img.qcow2) || fail "$tag: guest data"
    fi
    [ "$failures" = "$before" ] || echo "  (case $tag: $name: resize $args)" >&2
done <<'EOF'
big|img.qcow2 1200M
big|--shrink img.qcow2 1200M
big|--shrink img.qcow2 1600M
big|--shrink img.qcow2 1536M
big|--shrink img.qcow2 600M
big|--shrink img.qcow2 512M
big|--shrink img.qcow2 100M
big|--shrink img.qcow2 1M
big|--shrink img.qcow2 -- -1M
big|--shrink img.qcow2 -- -2047M
big|--shrink img.qcow2 -- -2G
big|--shrink img.qcow2 100000512
big|--shrink img.qcow2 1000000
big|--shrink img.qcow2 2G
big|--shrink -q img.qcow2 300M
big|--shrink --preallocation=full img.qcow2 1G
big|--shrink -f qcow2 img.qcow2 1G
big|--shrink --image-opts driver=qcow2,file.filename=img.qcow2 1G
empty|--shrink img.qcow2 1200M
empty|--shrink img.qcow2 1G
empty|--shrink img.qcow2 512
small|--shrink img.qcow2 2500k
small|--shrink img.qcow2 1M
small|--shrink img.qcow2 64k
small|--shrink img.qcow2 1536
rc1|--shrink img.qcow2 1200M
rc1|--shrink img.qcow2 1M
extl2|--shrink img.qcow2 1200M
extl2|--shrink img.qcow2 1001M
extl2|--shrink img.qcow2 32k
v2|--shrink img.qcow2 1200M
v2|--shrink img.qcow2 1M
dfile|--shrink img.qcow2 32M
dfile|--shrink img.qcow2 1000k
dfile|img.qcow2 128M
dfraw|--shrink img.qcow2 32M
dfraw|--shrink img.qcow2 1000k
dfraw|img.qcow2 128M
overlay|--shrink img.qcow2 1M
overlay|--shrink img.qcow2 3000k
overlay|--shrink img.qcow2 2M
overlay|img.qcow2 32M
overlay|img.qcow2 -- +1000k
snap|--shrink img.qcow2 1M
snap|--shrink img.qcow2 2M
snap|img.qcow2 8M
snapv2|--shrink img.qcow2 1M
snapv2|img.qcow2 8M
EOF
finish
