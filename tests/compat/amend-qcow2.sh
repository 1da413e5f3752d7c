#!/bin/bash
# amend on qcow2: every option qemu-img amend knows, both directions of each
# change, the refusals and their messages, -o help, and the common flags.
# Each case runs qemu-img and dimg on identical copies of a directory (image
# plus data file) and requires the same stdout, stderr and exit code, the
# same image bytes, the same `info --output=json` (the host file's allocated
# size aside: qemu writes some metadata in 4 KiB slices), the same check
# result, and guest data equal to the original when the size was kept.
# Cases run with -t unsafe (no flushes: the disk is slow and shared) unless
# they give a cache mode or are marked "=", which run as written.
. "$TEST_LIB"
requires qemu-img qemu-io

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

"$QEMU_IMG" create -q -f raw base.raw 64M
"$QEMU_IO" -f raw -c "write -P 0x55 0 64M" base.raw >/dev/null

mk plain 64M ""
mk data 4M "" "write -P 0x11 0 1M" "write -z 64k 128k" "write -z -u 512k 64k" "write -z 2M 64k"
mk v2 4M "compat=0.10" "write -P 0x22 0 1M"
mk lazy 4M "lazy_refcounts=on" "write -P 0x33 0 512k"
mk rc8 4M "refcount_bits=8" "write -P 0x44 64k 1M"
mk small 4M "cluster_size=512" "write -P 1 0 1M" "write -P 2 2M 1M" "write -P 3 3M 512k" \
    "discard 0 256k"
mk big 2G "" "write -P 1 0 1M" "write -P 2 511M 2M" "write -P 3 1000M 1M" "write -z 1600M 64k"
mk extl2 4M "extended_l2=on" "write -P 5 0 100k"
mk zstd 4M "compression_type=zstd" "write -P 6 0 64k"
mk zstdc 4M "compression_type=zstd" "write -c -P 6 0 64k"
mk dfile 4M "data_file=data.raw" "write -P 7 0 1M"
mk dfraw 4M "data_file=data.raw,data_file_raw=on" "write -P 8 0 1M"
mkdir src/overlay
cp base.raw src/overlay/base.raw
(cd src/overlay && "$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw img.qcow2 4M &&
    "$QEMU_IO" -c "write -P 0x11 0 1M" -c "write -z 64k 128k" -c "write -z -u 512k 64k" \
        -c "write -z 2M 64k" -c "write -z 3M 128k" img.qcow2 >/dev/null) || fail "setup overlay"
mk snap 4M "" "write -P 0x11 0 1M"
(cd src/snap && "$QEMU_IMG" snapshot -c s1 img.qcow2 &&
    "$QEMU_IO" -c "write -P 0x22 512k 1M" -c "write -z 3M 64k" img.qcow2 >/dev/null) ||
    fail "setup snap"
mk snapv2 4M "compat=0.10" "write -P 0x11 0 1M"
(cd src/snapv2 && "$QEMU_IMG" snapshot -c s1 img.qcow2 &&
    "$QEMU_IO" -c "write -P 0x22 512k 1M" img.qcow2 >/dev/null) || fail "setup snapv2"

info_json() { # dir -> info without the allocated size
    (cd "$1" && "$QEMU_IMG" info --output=json img.qcow2) | grep -v '"actual-size"'
}

n=0
while IFS='|' read -r name args; do
    [ -n "$name" ] || continue
    n=$((n + 1))
    tag="a$n"
    before=$failures
    rm -rf q d
    cp -r "src/$name" q
    cp -r "src/$name" d
    case "$args" in
    =*) args=${args#=} ;;
    *-t\ *) ;;
    *) args="-t unsafe $args" ;;
    esac
    eval "set -- $args"
    (cd q && run_as "../q.$tag" "$QEMU_IMG" amend "$@")
    (cd d && run_as "../d.$tag" "$DIMG" amend "$@")
    sed -i 's/^dimg: /qemu-img: /' "d.$tag.err"
    same "$tag"
    for f in q/*; do
        cmp -s "$f" "d/${f#q/}" || fail "$tag: ${f#q/} differs from qemu-img's"
    done
    # Unchanged images (refusals) need no further look.
    if cmp -s "src/$name/img.qcow2" d/img.qcow2; then
        [ "$failures" = "$before" ] || echo "  (case $tag: $name: amend $args)" >&2
        continue
    fi
    info_json q >"q.$tag.info" 2>&1
    info_json d >"d.$tag.info" 2>&1
    cmp -s "q.$tag.info" "d.$tag.info" || fail "$tag: info differs"
    (cd q && "$QEMU_IMG" check img.qcow2) >"q.$tag.check" 2>&1
    echo "rc=$?" >>"q.$tag.check"
    (cd d && "$QEMU_IMG" check img.qcow2) >"d.$tag.check" 2>&1
    echo "rc=$?" >>"d.$tag.check"
    cmp -s "q.$tag.check" "d.$tag.check" || fail "$tag: check differs"
    if [[ "$args" != *size=* && "$args" != *data_file=* ]]; then
        (cd d && "$QEMU_IMG" compare -q "../src/$name/img.qcow2" img.qcow2) ||
            fail "$tag: guest data changed"
    fi
    [ "$failures" = "$before" ] || echo "  (case $tag: $name: amend $args)" >&2
done <<'EOF'
plain|=-o compat=0.10 img.qcow2
plain|-o compat=v2 img.qcow2
plain|-o compat=1.1 img.qcow2
plain|-o lazy_refcounts=on img.qcow2
plain|-o lazy_refcounts img.qcow2
plain|-o lazy_refcounts=off img.qcow2
plain|-o refcount_bits=8 img.qcow2
plain|-o refcount_bits=64 img.qcow2
plain|-o refcount_bits=1 img.qcow2
plain|-o refcount_bits=0x8 img.qcow2
plain|-o size=128M img.qcow2
plain|-o size=32M img.qcow2
plain|-o size=0 img.qcow2
plain|-o size=1000 img.qcow2
plain|-o compat=2 img.qcow2
plain|-o compat img.qcow2
plain|-o foo=bar img.qcow2
plain|-o cluster_size=4k img.qcow2
plain|-o extended_l2=on img.qcow2
plain|-o encrypt.format=luks img.qcow2
plain|-o encryption=on img.qcow2
plain|-o encrypt.keyslot=1 img.qcow2
plain|-o size=abc img.qcow2
plain|-o lazy_refcounts=xx img.qcow2
plain|-o refcount_bits=3 img.qcow2
plain|-o refcount_bits=-8 img.qcow2
plain|-o refcount_bits=abc img.qcow2
plain|-o refcount_bits=08 img.qcow2
plain|-o data_file=foo img.qcow2
plain|-o data_file= img.qcow2
plain|-o data_file_raw=on img.qcow2
plain|-o data_file_raw=off img.qcow2
plain|-o backing_file=x img.qcow2
plain|-o backing_fmt=raw img.qcow2
plain|-o refcount_bits=3,compat=2 img.qcow2
plain|-o foo=bar,size=abc img.qcow2
plain|-o lazy_refcounts=xx,lazy_refcounts=on img.qcow2
plain|-o lazy_refcounts=on,lazy_refcounts=off img.qcow2
plain|-o compat=2,encrypt.keyslot=1 img.qcow2
plain|-o data_file=x,refcount_bits=3 img.qcow2
plain|-o backing_file=x,refcount_bits=3 img.qcow2
plain|-o refcount_bits=8,backing_file=x img.qcow2
plain|-o lazy_refcounts=on,size=1000 img.qcow2
plain|-o compat=0.10,lazy_refcounts=on img.qcow2
plain|-o compat=0.10,refcount_bits=8 img.qcow2
plain|-o compat=0.10 -o compat=1.1 img.qcow2
plain|-o lazy_refcounts=on, img.qcow2
plain|-o 'compat=1.1,,x' img.qcow2
plain|-o help img.qcow2
plain|-o compat=1.1,help img.qcow2
plain|-f qcow2 -o help
plain|-f qcow2 -o lazy_refcounts=on img.qcow2
plain|-f raw -o lazy_refcounts=on img.qcow2
plain|-q -o lazy_refcounts=on img.qcow2
plain|-p -o lazy_refcounts=on img.qcow2
plain|-p -o compat=0.10 img.qcow2
plain|-p -o foo=bar img.qcow2
plain|-p -o compat=2 img.qcow2
plain|--force -o lazy_refcounts=on img.qcow2
plain|-t unsafe -o refcount_bits=8 img.qcow2
plain|-t bogus -o lazy_refcounts=on img.qcow2
plain|--object secret,id=sec0,data=x -o lazy_refcounts=on img.qcow2
plain|--image-opts -o lazy_refcounts=on driver=qcow2,file.filename=img.qcow2
plain|--image-opts -o compat=0.10 file.filename=img.qcow2
plain|-o lazy_refcounts=on nonexist.qcow2
data|=-o compat=0.10 img.qcow2
data|-o compat=0.10,size=8M img.qcow2
data|=-o refcount_bits=8 img.qcow2
data|-o refcount_bits=1 img.qcow2
data|-o refcount_bits=2 img.qcow2
data|=-o size=1M img.qcow2
data|-o size=2500k img.qcow2
data|-o size=16M img.qcow2
v2|=-o compat=1.1 img.qcow2
v2|-o lazy_refcounts=on img.qcow2
v2|-o refcount_bits=8 img.qcow2
v2|-o refcount_bits=16 img.qcow2
v2|-o compat=1.1,refcount_bits=8,lazy_refcounts=on,size=128M img.qcow2
v2|-o refcount_bits=8,size=128M img.qcow2
v2|-o compat=1.1,backing_file=x img.qcow2
v2|-o compat=1.1,size=1000 img.qcow2
v2|-o size=8M img.qcow2
v2|-o data_file_raw=off img.qcow2
lazy|-o compat=0.10 img.qcow2
lazy|-o compat=0.10,lazy_refcounts=on img.qcow2
lazy|-o lazy_refcounts=off img.qcow2
lazy|-o compat=0.10,lazy_refcounts=off img.qcow2
rc8|-o compat=0.10 img.qcow2
rc8|-o compat=0.10,refcount_bits=16 img.qcow2
rc8|-o size=128M,compat=0.10 img.qcow2
rc8|-o refcount_bits=16 img.qcow2
rc8|-o refcount_bits=1 img.qcow2
rc8|-o compat=0.10,lazy_refcounts=on img.qcow2
small|-o refcount_bits=8 img.qcow2
small|-o refcount_bits=64 img.qcow2
small|-o refcount_bits=1 img.qcow2
small|-o compat=0.10 img.qcow2
big|-o refcount_bits=8 img.qcow2
big|-o compat=0.10 img.qcow2
big|-o size=1200M img.qcow2
big|-o size=512M img.qcow2
extl2|-o compat=0.10 img.qcow2
extl2|-o size=128M,compat=0.10 img.qcow2
extl2|-o refcount_bits=8 img.qcow2
extl2|-o size=1M img.qcow2
zstd|-o compat=0.10 img.qcow2
zstdc|-o compat=0.10 img.qcow2
zstdc|-o refcount_bits=8 img.qcow2
dfile|-o compat=0.10 img.qcow2
dfile|-o data_file=new.raw img.qcow2
dfile|-o data_file= img.qcow2
dfile|-o data_file_raw=on img.qcow2
dfile|-o data_file_raw=off img.qcow2
dfile|-o data_file=new.raw,backing_file=x img.qcow2
dfile|-o refcount_bits=8 img.qcow2
dfile|-o size=1M img.qcow2
dfile|-o size=8M img.qcow2
dfraw|-o data_file_raw=off img.qcow2
dfraw|-o data_file_raw=on img.qcow2
dfraw|-o size=1M img.qcow2
dfraw|-o size=8M img.qcow2
overlay|-o compat=0.10 img.qcow2
overlay|-o backing_file=base.raw img.qcow2
overlay|-o backing_fmt=raw img.qcow2
overlay|-o backing_file=base.raw,backing_fmt=raw img.qcow2
overlay|-o backing_file=other.raw,backing_fmt=raw img.qcow2
overlay|-o refcount_bits=8 img.qcow2
overlay|-o size=1M img.qcow2
overlay|-o size=3000k img.qcow2
overlay|-o size=8M img.qcow2
snap|=-o compat=0.10 img.qcow2
snap|-o refcount_bits=8 img.qcow2
snap|-o refcount_bits=1 img.qcow2
snap|-o size=1M img.qcow2
snapv2|-o compat=1.1 img.qcow2
snapv2|-o size=2M img.qcow2
snapv2|-o compat=1.1,size=1M img.qcow2
snapv2|-o size=1M,lazy_refcounts=on img.qcow2
EOF
finish
