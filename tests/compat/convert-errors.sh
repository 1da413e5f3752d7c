#!/bin/bash
# convert: usage errors, refused combinations and their messages/exit codes match qemu-img,
# and what is left on disk after an error matches too.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 4M
mkdir dir

n=0
for args in "" "s.raw" "nosuch.raw o.img" "-O foo s.raw o.img" "-f foo s.raw o.img" \
    "-f qcow2 s.raw o.img" "-m 0 s.raw o.img" "-m 17 s.raw o.img" "-m x s.raw o.img" \
    "-m 4k s.raw o.img" "-Z s.raw o.img" "--bogus s.raw o.img" "-S x s.raw o.img" \
    "-S 100 s.raw o.img" "-S 17M s.raw o.img" "-S -1 s.raw o.img" "-r x s.raw o.img" \
    "-r -1 s.raw o.img" "-c s.raw o.img" "-B b.raw s.raw o.img" "-F raw s.raw o.img" \
    "-l snap s.raw o.img" "-l snapshot.name=x s.raw o.img" \
    "--bitmaps s.raw o.img" "-t foo s.raw o.img" "-T foo s.raw o.img" \
    "-T foo nosuch.raw o.img" "-C -c s.raw o.img" "-C -S 4k s.raw o.img" \
    "--target-is-zero s.raw o.img" "--target-image-opts s.raw o.img" "-n s.raw o.img" \
    "-n -o preallocation=full s.raw o.img" "-o foo=1 s.raw o.img" \
    "-o preallocation=foo s.raw o.img" "-o help s.raw o.img" "-o help" "-O raw -o ?" \
    "-o help -O foo" "-O foo -c s.raw o.img" "-o foo=1 -c s.raw o.img" "-c -B x s.raw o.img" \
    "-m" "-f" "dir o.img" "s.raw s.raw" "s.raw ./s.raw"; do
    n=$((n + 1))
    rm -f o.img
    # shellcheck disable=SC2086
    run_as "q.e$n" "$QEMU_IMG" convert $args
    q_made=0; [ -e o.img ] && q_made=1
    rm -f o.img
    # shellcheck disable=SC2086
    run_as "d.e$n" "$DIMG" convert $args
    d_made=0; [ -e o.img ] && d_made=1
    sed -i 's/^dimg: /qemu-img: /; s/Try .dimg --help./Try '"'"'qemu-img --help'"'"'/' "d.e$n.err"
    same "e$n"
    [ "$q_made" = "$d_made" ] || fail "e$n ($args): output left behind: qemu-img $q_made, dimg $d_made"
done

# -n onto a target that is too small
truncate -s 1M small.raw
both small convert -n s.raw small.raw; same small
finish
