#!/bin/bash
# convert raw -> raw: bytes, allocation (stat %b), stdout/stderr/rc match qemu-img.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 8M
make_sample_raw s2.raw 5M
"$QEMU_IMG" create -q -f raw empty.raw 3M
"$QEMU_IMG" create -q -f raw zero.raw 0
printf 'odd sized' >odd.raw
truncate -s 1000 odd.raw
# a 2.5 MiB data extent (not a multiple of the 2 MiB chunk) with zero blocks inside
head -c 2621440 /dev/urandom >big.raw
dd if=/dev/zero of=big.raw bs=4k seek=100 count=3 conv=notrunc status=none
dd if=/dev/zero of=big.raw bs=64k seek=20 count=2 conv=notrunc status=none
dd if=/dev/zero of=big.raw bs=512 seek=7 count=1 conv=notrunc status=none

# Convert with both tools; compare messages, bytes and allocated blocks.
# Usage: conv TAG args... (the output file name is appended)
conv() {
    local tag=$1; shift
    rm -f q.out d.out
    run_as "q.$tag" "$QEMU_IMG" convert "$@" q.out
    run_as "d.$tag" "$DIMG" convert "$@" d.out
    sed -i 's/^dimg: /qemu-img: /; s/d\.out/q.out/g' "d.$tag.err"
    same "$tag"
    if [ -e q.out ] || [ -e d.out ]; then
        if [ ! -e q.out ] || [ ! -e d.out ]; then
            fail "$tag ($*): only one tool wrote the output"
            return
        fi
        cmp -s q.out d.out || fail "$tag ($*): output differs"
        local qb db
        qb=$(stat -c %b q.out)
        db=$(stat -c %b d.out)
        [ "$db" -le "$qb" ] || fail "$tag ($*): dimg allocated $db blocks, qemu-img $qb"
    fi
}

n=0
for args in "s.raw" "-f raw -O raw s.raw" "s2.raw" "empty.raw" "zero.raw" "odd.raw" "big.raw" \
    "-S 0 s.raw" "-S 0 big.raw" "-S 64k s.raw" "-S 64k big.raw" "-S 512 big.raw" "-S 1.5k big.raw" \
    "-S 16M s.raw" "s.raw s2.raw" "odd.raw s2.raw odd.raw" "empty.raw odd.raw zero.raw" \
    "-m 1 s.raw" "-m 16 s.raw" "-m 3 -W s.raw s2.raw" "-W big.raw" "-r 1G s.raw" \
    "-t writeback -T none s.raw" "-t none s.raw" "-U s2.raw" \
    "-q s2.raw" "--salvage s2.raw" "-C s2.raw" "-C -W big.raw" \
    "-o preallocation=full s2.raw" "-o preallocation=falloc odd.raw" "-o size=1M s2.raw" \
    "--image-opts driver=raw,file.filename=s2.raw" "--object secret,id=s0,data=x s2.raw"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    conv "c$n" $args
done

# -p: the same progress lines
for args in "s.raw" "s.raw empty.raw s2.raw" "-S 0 s2.raw" "empty.raw" "big.raw" "-p -q s.raw"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    conv "p$n" -p $args
done
finish
