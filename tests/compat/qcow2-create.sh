#!/bin/bash
# create -f qcow2: the same "Formatting" line, messages and exit codes as
# qemu-img, and byte-identical image files, for every option combination.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f qcow2 base.qcow2 64M
"$QEMU_IMG" create -q -f raw base.raw 10M

n=0
while IFS= read -r args; do
    [ -z "$args" ] && continue
    n=$((n + 1))
    rm -f img.qcow2 q.qcow2 d.qcow2 img.data q.data d.data
    # shellcheck disable=SC2086
    run_as "q.c$n" "$QEMU_IMG" create -f qcow2 $args
    [ -e img.qcow2 ] && mv img.qcow2 q.qcow2
    [ -e img.data ] && mv img.data q.data
    # shellcheck disable=SC2086
    run_as "d.c$n" "$DIMG" create -f qcow2 $args
    # Check in place: the image may name a data file or backing file relative to itself.
    if [ -e img.qcow2 ] && [[ "$args" != *nonexist* ]]; then
        "$QEMU_IMG" check -q img.qcow2 || fail "c$n ($args): qemu-img check failed"
    fi
    [ -e img.qcow2 ] && mv img.qcow2 d.qcow2
    [ -e img.data ] && mv img.data d.data
    sed -i 's/^dimg: /qemu-img: /' "d.c$n.err"
    # qemu-img ends one message without a newline; dimg ends every line.
    [ -s "q.c$n.err" ] && [ -n "$(tail -c1 "q.c$n.err")" ] && echo >>"q.c$n.err"
    same "c$n"
    if [ -e q.qcow2 ] || [ -e d.qcow2 ]; then
        if ! cmp -s q.qcow2 d.qcow2; then
            fail "c$n ($args): image file differs from qemu-img's"
            cmp -l q.qcow2 d.qcow2 2>&1 | head -3 >&2
        fi
    fi
    if [ -e q.data ] || [ -e d.data ]; then
        [ "$(stat -c %s q.data 2>/dev/null)" = "$(stat -c %s d.data 2>/dev/null)" ] ||
            fail "c$n ($args): data file size differs"
    fi
done <<'LIST'
img.qcow2 1G
img.qcow2 1000
img.qcow2 0
-o compat=0.10 img.qcow2 1G
-o compat=v2 img.qcow2 1G
-o compat=v3 img.qcow2 1M
-o compat=1.1 img.qcow2 1M
-o compat=2.0 img.qcow2 1M
-o cluster_size=512 img.qcow2 64M
-o cluster_size=1k img.qcow2 1G
-o cluster_size=4k img.qcow2 1G
-o cluster_size=8k img.qcow2 1G
-o cluster_size=2M img.qcow2 100G
-o cluster_size=1000 img.qcow2 1M
-o cluster_size=4M img.qcow2 1M
-o cluster_size=256 img.qcow2 1M
-o refcount_bits=1 img.qcow2 1G
-o refcount_bits=8,cluster_size=4k img.qcow2 1G
-o refcount_bits=64 img.qcow2 1G
-o refcount_bits=3 img.qcow2 1M
-o refcount_bits=128 img.qcow2 1M
-o lazy_refcounts=on img.qcow2 1M
-o lazy_refcounts=maybe img.qcow2 1M
-o extended_l2=on img.qcow2 1G
-o extended_l2=on,cluster_size=4k img.qcow2 1G
-o compression_type=zstd img.qcow2 1G
-o compression_type=lz4 img.qcow2 1G
-o compat=0.10,lazy_refcounts=on img.qcow2 1M
-o compat=0.10,refcount_bits=8 img.qcow2 1M
-o compat=0.10,compression_type=zstd img.qcow2 1M
-o compat=0.10,extended_l2=on img.qcow2 1M
-o preallocation=foo img.qcow2 1M
-o preallocation=off img.qcow2 1M
-o preallocation=metadata img.qcow2 1G
-o preallocation=metadata,cluster_size=4k img.qcow2 64M
-o preallocation=metadata,extended_l2=on img.qcow2 64M
-o preallocation=metadata -b base.qcow2 -F qcow2 img.qcow2
-o data_file=img.data,data_file_raw=on img.qcow2 64M
-o data_file=img.data img.qcow2 64M
-o data_file_raw=on img.qcow2 1M
-o extended_l2=on,compression_type=zstd,lazy_refcounts=on,refcount_bits=32 img.qcow2 3G
-b base.qcow2 img.qcow2
-b base.qcow2 -F qcow2 img.qcow2
-b base.qcow2 -F qcow2 img.qcow2 1G
-b base.raw -F raw img.qcow2
-b base.qcow2 -F raw img.qcow2
-b nonexist.qcow2 -F qcow2 img.qcow2
-u -b nonexist.qcow2 -F qcow2 img.qcow2
-u -b nonexist.qcow2 -F qcow2 img.qcow2 1M
-b img.qcow2 -F qcow2 img.qcow2
-o backing_file=base.qcow2,backing_fmt=qcow2,compat=1.1,cluster_size=65536 img.qcow2 2G
-o size=2M img.qcow2
-o foo=bar img.qcow2 1M
-q img.qcow2 1M
LIST

# falloc/full lay the refcount table out differently in qemu-img: compare
# what matters, the check result, the file size and the blocks allocated.
for mode in falloc full; do
    rm -f q.qcow2 d.qcow2
    "$QEMU_IMG" create -q -f qcow2 -o preallocation=$mode q.qcow2 32M
    "$DIMG" create -q -f qcow2 -o preallocation=$mode d.qcow2 32M || fail "prealloc $mode"
    "$QEMU_IMG" check -q d.qcow2 || fail "prealloc $mode: check"
    [ "$(stat -c %s q.qcow2)" = "$(stat -c %s d.qcow2)" ] || fail "prealloc $mode: file size"
    # st_blocks counts ext4's extent tree blocks too, which depend on how
    # the file's extents happened to be laid out: a few KiB either way.
    qb=$(stat -c %b q.qcow2) db=$(stat -c %b d.qcow2)
    [ "$db" -ge $((qb - 64)) ] && [ "$db" -le $((qb + 256)) ] || fail "prealloc $mode: $db blocks vs $qb"
done

both help1 create -f qcow2 -o help; same help1
both help2 create -f qcow2 -o help x.qcow2; same help2
finish
