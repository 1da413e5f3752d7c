#!/bin/bash
# convert -n onto existing targets full of garbage (holes and zeros must be zeroed),
# --target-is-zero, larger targets, and round trips between the two tools.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 8M
head -c 8388608 /dev/urandom >garbage
head -c 12582912 /dev/urandom >garbage12

n=0
for args in "" "-S 0" "-S 64k" "-W -m 4" "-p" "-O raw"; do
    n=$((n + 1))
    for who in q d; do
        cp garbage "$who.out"
        tool=$QEMU_IMG; [ $who = d ] && tool=$DIMG
        # shellcheck disable=SC2086
        run_as "$who.n$n" "$tool" convert -n $args s.raw "$who.out"
    done
    sed -i 's/^dimg: /qemu-img: /' "d.n$n.err"
    same "n$n"
    cmp -s s.raw d.out || fail "n$n ($args): target does not hold the source"
    cmp -s q.out d.out || fail "n$n ($args): targets differ"
    [ "$(stat -c %b d.out)" -le "$(stat -c %b q.out)" ] || fail "n$n ($args): allocation differs"
done

# A larger target: the tail past the source stays as it was.
for who in q d; do
    cp garbage12 "$who.big"
    tool=$QEMU_IMG; [ $who = d ] && tool=$DIMG
    "$tool" convert -n s.raw "$who.big" || fail "$who: convert -n onto larger target"
done
cmp -s q.big d.big || fail "larger target: results differ"

# --target-is-zero on a zeroed target: holes are left alone.
for who in q d; do
    rm -f "$who.tz"; truncate -s 8M "$who.tz"
    tool=$QEMU_IMG; [ $who = d ] && tool=$DIMG
    "$tool" convert -n --target-is-zero s.raw "$who.tz" || fail "$who: --target-is-zero"
done
cmp -s s.raw d.tz || fail "--target-is-zero: wrong content"
[ "$(stat -c %b d.tz)" -le "$(stat -c %b q.tz)" ] || fail "--target-is-zero: allocation differs"

# --target-image-opts
truncate -s 8M d.topts
both topts convert -n --target-image-opts s.raw driver=raw,file.filename=d.topts
same topts
cmp -s s.raw d.topts || fail "--target-image-opts: wrong content"

# Round trips: each tool reads what the other wrote.
"$QEMU_IMG" convert s.raw via-q.raw && "$DIMG" convert via-q.raw back-d.raw &&
    cmp -s s.raw back-d.raw || fail "qemu-img -> dimg round trip"
"$DIMG" convert s.raw via-d.raw && "$QEMU_IMG" convert via-d.raw back-q.raw &&
    cmp -s s.raw back-q.raw || fail "dimg -> qemu-img round trip"
"$QEMU_IMG" compare -q s.raw via-d.raw || fail "qemu-img compare of dimg output"
finish
