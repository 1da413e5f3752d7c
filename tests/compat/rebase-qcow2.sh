#!/bin/bash
# rebase on qcow2: -u rewrites the first cluster byte for byte as qemu-img
# does (every cluster size, both versions, data files, long names, removal);
# safe mode keeps the guest view unchanged across a three-level chain, and
# dimg's result maps like qemu-img's.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f raw base.raw 64M
for cs in 512 4k 64k; do
    for compat in 0.10 1.1; do
        "$QEMU_IMG" create -q -f qcow2 -o cluster_size=$cs,compat=$compat q.qcow2 64M
        cp q.qcow2 d.qcow2
        for step in "base.raw raw" "other/a/longer/name.qcow2 qcow2" "none"; do
            if [ "$step" = none ]; then set -- -b ""; else set -- -b ${step% *} -F ${step#* }; fi
            "$QEMU_IMG" rebase -u "$@" q.qcow2 || fail "qemu-img rebase $*"
            "$DIMG" rebase -u "$@" d.qcow2 || fail "dimg rebase $*"
            cmp -s q.qcow2 d.qcow2 || fail "cluster_size=$cs compat=$compat rebase -u $* differs"
        done
    done
done
"$QEMU_IMG" create -q -f qcow2 -o data_file=data.raw,lazy_refcounts=on q.qcow2 64M
cp q.qcow2 d.qcow2
"$QEMU_IMG" rebase -u -b base.raw -F raw q.qcow2
"$DIMG" rebase -u -b base.raw -F raw d.qcow2
cmp -s q.qcow2 d.qcow2 || fail "rebase -u with a data file differs"

# A name that cannot fit in a 512-byte cluster: the same error, image unchanged.
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=512 small.qcow2 64M
cp small.qcow2 small.orig
long=$(printf 'n%.0s' $(seq 1 600))
both long rebase -u -b "$long" -F raw small.qcow2
cmp -s small.qcow2 small.orig || fail "failed rebase changed the image"

# Safe mode across b1 <- mid <- top, onto b1 and onto nothing.
"$QEMU_IMG" create -q -f qcow2 b1.qcow2 64M
"$QEMU_IO" -c "write -P 1 0 8M" -c "write -P 7 40M 1M" b1.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b b1.qcow2 -F qcow2 mid.qcow2
"$QEMU_IO" -c "write -P 2 1M 2M" -c "write -z 5M 1M" -c "discard 40M 64k" mid.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
"$QEMU_IO" -c "write -P 3 2M 64k" -c "write -z 6M 512" top.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw top.qcow2 before.raw
for target in b1 none; do
    if [ $target = none ]; then set -- -b ""; else set -- -b b1.qcow2 -F qcow2; fi
    cp top.qcow2 tq.qcow2
    cp top.qcow2 td.qcow2
    "$QEMU_IMG" rebase "$@" tq.qcow2 || fail "qemu-img rebase $target"
    "$DIMG" rebase "$@" td.qcow2 || fail "dimg rebase $target"
    "$QEMU_IMG" check -q td.qcow2 || fail "rebase $target: qemu-img check"
    "$QEMU_IMG" compare -q before.raw td.qcow2 || fail "rebase $target changed the guest view"
    "$QEMU_IMG" map --output=json tq.qcow2 >map.q
    "$QEMU_IMG" map --output=json td.qcow2 >map.d
    cmp -s map.q map.d || fail "rebase $target: map differs from qemu-img's"
    "$QEMU_IMG" info --output=json tq.qcow2 | grep -v actual-size >info.q
    "$QEMU_IMG" info --output=json td.qcow2 | grep -v actual-size | sed 's/td.qcow2/tq.qcow2/' >info.d
    cmp -s info.q info.d || fail "rebase $target: info differs"
done
finish
