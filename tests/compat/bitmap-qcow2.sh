#!/bin/bash
# bitmap on qcow2: every action (and several in one call) run by dimg and by
# qemu-img on identical copies gives the same messages and exit code and a
# byte-identical image, which qemu-img check finds clean.  Bitmaps made by
# qemu-img are listed by dimg info; the bits guest writes set through dimg
# (commit) read back through qemu-nbd the same as after qemu-img's writes;
# in-use (crashed) bitmaps and damaged directories are reported as qemu-img
# reports them.
. "$TEST_LIB"
requires qemu-img qemu-io qemu-nbd

# Run "bitmap ARGS" with IMG replaced by d.qcow2 (dimg) and q.qcow2 (qemu-img).
bm_both() {
    local tag=$1; shift
    run_as "q.$tag" "$QEMU_IMG" bitmap "${@//IMG/q.qcow2}"
    run_as "d.$tag" "$DIMG" bitmap "${@//IMG/d.qcow2}"
    sed -i 's/^dimg: /qemu-img: /; s/#block[0-9]*/#blockN/g' "d.$tag.err"
    sed -i 's/#block[0-9]*/#blockN/g' "q.$tag.err"
    sed -i 's/d\.qcow2/q.qcow2/g' "d.$tag.err" "d.$tag.out"
    same "$tag"
    cmp -s d.qcow2 q.qcow2 || fail "$tag: image differs from qemu-img's (bitmap $*)"
}

# Dirty extents of bitmap $2 in image $1, as qemu-nbd serves them.
nbd_bits() {
    local sock="$T/nbd.sock" pid
    qemu-nbd -r -f qcow2 -k "$sock" -B "$2" -t "$1" &
    pid=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    "$QEMU_IMG" map --output=json --image-opts \
        "driver=nbd,server.type=unix,server.path=$sock,x-dirty-bitmap=qemu:dirty-bitmap:$2"
    kill "$pid"; wait "$pid" 2>/dev/null; rm -f "$sock"
}

# ---- actions on an image both tools change the same way ------------------
"$QEMU_IMG" create -q -f qcow2 q.qcow2 64M
cp q.qcow2 d.qcow2
n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    bm_both "a$n" "$@"
    if [ "$n" = 6 ]; then
        # guest writes by qemu-io (bitmaps a, g512 enabled) on both copies
        "$QEMU_IO" -c 'write 100k 300k' -c 'write 10M 1' -c 'discard 20M 1M' \
            -c 'write -z 30M 64k' q.qcow2 >/dev/null
        cp q.qcow2 d.qcow2
    fi
done <<'EOF'
--add IMG a
--add -g 512 IMG g512
--add -g 1M --disable IMG c
--add IMG a
--add -g 2G IMG big
--remove IMG big
--add IMG s
--merge a IMG s
--merge g512 IMG c
--clear IMG a
--disable IMG s
--enable IMG c
--merge nope IMG a
--merge a IMG nope
--remove IMG nope
--clear --disable --enable IMG nope
--add --merge g512 -g 4k IMG x
--add --merge a --disable IMG y
--add --add IMG z
--remove --add IMG z
--add IMG ''
--add -g 1000 IMG w
--remove --remove IMG s
--add -g 512 IMG $(printf 'n%.0s' $(seq 1024))
EOF
expect_rc 0 "$QEMU_IMG" check d.qcow2
both info info --output=json d.qcow2
same info
both infoh info d.qcow2
same infoh

# --merge from another image (-b / -F), also of a different size
"$QEMU_IMG" create -q -f qcow2 other.qcow2 64M
"$QEMU_IMG" bitmap --add other.qcow2 o
"$QEMU_IO" -c 'write 5M 1M' other.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 small.qcow2 32M
"$QEMU_IMG" bitmap --add small.qcow2 sm
bm_both b1 --add --merge o -b other.qcow2 IMG from_other
bm_both b2 --add --merge o -b other.qcow2 -F qcow2 IMG from_other2
bm_both b3 --add --merge sm -b small.qcow2 IMG from_small
bm_both b4 --merge missing -b other.qcow2 IMG a
expect_rc 0 "$QEMU_IMG" check d.qcow2

# ---- removing everything drops the extension --------------------------------
for b in a g512 c x y z from_other from_other2 from_small s; do
    bm_both "r$b" --remove IMG "$b"
done
both infoempty info --output=json d.qcow2
same infoempty

# ---- other cluster sizes, v2, default granularity ----------------------------
for cs in 512 4k 2M; do
    "$QEMU_IMG" create -q -f qcow2 -o cluster_size=$cs q.qcow2 100M
    cp q.qcow2 d.qcow2
    bm_both "cs$cs" --add IMG def
    bm_both "cs$cs-g" --add -g 512 IMG small
done
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=2M q.qcow2 1P
cp q.qcow2 d.qcow2
bm_both huge1 --add -g 512 IMG toobig
bm_both huge2 --add -g 1M IMG ok
"$QEMU_IMG" create -q -f qcow2 -o compat=0.10 q.qcow2 1M
cp q.qcow2 d.qcow2
bm_both v2 --add IMG x

# ---- bits set by dimg's writes: rebase copies the old backing data into an
# overlay with bitmaps, only where the old and new backing files differ -------
for t in q d; do
    "$QEMU_IMG" create -q -f qcow2 $t-b1.qcow2 64M
    "$QEMU_IO" -c 'write -P 7 3M 100k' -c 'write -P 8 40M 5000' $t-b1.qcow2 >/dev/null
    "$QEMU_IMG" create -q -f qcow2 $t-b2.qcow2 64M
    "$QEMU_IMG" create -q -f qcow2 -b $t-b1.qcow2 -F qcow2 $t-top.qcow2
    "$QEMU_IMG" bitmap --add $t-top.qcow2 on
    "$QEMU_IMG" bitmap --add -g 512 $t-top.qcow2 fine
    "$QEMU_IMG" bitmap --add --disable $t-top.qcow2 off
    "$QEMU_IO" -c 'write -P 1 10M 4k' $t-top.qcow2 >/dev/null
done
"$QEMU_IMG" rebase -b q-b2.qcow2 -F qcow2 q-top.qcow2
"$DIMG" rebase -b d-b2.qcow2 -F qcow2 d-top.qcow2 || fail "dimg rebase failed"
expect_rc 0 "$QEMU_IMG" check d-top.qcow2
for b in on fine off; do
    nbd_bits q-top.qcow2 $b >q.bits.$b
    nbd_bits d-top.qcow2 $b >d.bits.$b
    cmp -s q.bits.$b d.bits.$b || fail "bitmap $b after rebase differs from qemu-img's"
done
[ "$(grep -c '"present": false' q.bits.fine)" = 3 ] ||
    fail "rebase should leave three dirty runs in bitmap fine"
"$QEMU_IMG" info d-top.qcow2 | grep -q 'in-use' && fail "bitmaps left in use after rebase"

# ---- in-use bitmaps (a writer killed while they were loaded) ------------------
"$QEMU_IMG" create -q -f qcow2 q.qcow2 64M
"$QEMU_IMG" bitmap --add q.qcow2 live
"$QEMU_IMG" bitmap --add q.qcow2 other
mkfifo fifo
"$QEMU_IO" q.qcow2 <fifo >/dev/null 2>&1 &
qpid=$!
exec 7>fifo
for _ in $(seq 100); do
    "$QEMU_IMG" info -U q.qcow2 | grep -q in-use && break
    sleep 0.05
done
kill -9 "$qpid"; wait "$qpid" 2>/dev/null; exec 7>&-
cp q.qcow2 inuse.qcow2
both iu-info info --output=json q.qcow2
sed -i 's/d\.qcow2/q.qcow2/g' d.iu-info.out
same iu-info
both iu-check check q.qcow2
same iu-check
for a in "--clear" "--enable" "--disable" "--merge other" "--add" "--clear --remove"; do
    cp inuse.qcow2 q.qcow2; cp inuse.qcow2 d.qcow2
    eval "bm_both 'iu${a// /}' $a IMG live"
done
cp inuse.qcow2 q.qcow2; cp inuse.qcow2 d.qcow2
bm_both iu-merge-from --merge live IMG other
bm_both iu-remove --remove IMG live
cp inuse.qcow2 q.qcow2; cp inuse.qcow2 d.qcow2
run_as q.iu-fix "$QEMU_IMG" check -r all q.qcow2
run_as d.iu-fix "$DIMG" check -r all d.qcow2
same_out iu-fix
cmp -s d.qcow2 q.qcow2 || fail "check -r all: image differs from qemu-img's"

# ---- damaged directories: same open errors -----------------------------------
"$QEMU_IMG" create -q -f qcow2 good.qcow2 64M
"$QEMU_IMG" bitmap --add good.qcow2 a
"$QEMU_IMG" bitmap --add good.qcow2 bb
# the bitmaps extension header: its type word, 4-byte aligned in the first cluster
ext=$(od -An -tx1 -v -w4 -N 4096 good.qcow2 | grep -n '23 85 28 75' | head -1 | cut -d: -f1)
ext=$(((ext - 1) * 4))
dir=$(od -An -tx1 -j $((ext + 24)) -N 8 good.qcow2 | tr -d ' \n')
dir=$((16#$dir))
poke() { # poke FILE OFFSET HEXBYTES
    printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
m=0
while read -r off bytes; do
    m=$((m + 1))
    cp good.qcow2 bad.qcow2
    poke bad.qcow2 $((off)) "$bytes"
    both "bad$m" info bad.qcow2
    same "bad$m"
done <<EOF
$((ext + 4)) 00000010
$((ext + 8)) 00000000
$((ext + 8)) 00011170
$((ext + 8)) 00000003
$((ext + 8)) 00000001
$((ext + 12)) 00000001
$((ext + 31)) 08
$((ext + 16)) 0000000006400000
$((ext + 16)) 0000000000000028
$((ext + 16)) 0000000000000000
$((dir)) 0000000000012345
$((dir)) 0000000000000000
$((dir + 8)) 00000002
$((dir + 8)) 00000000
$((dir + 12)) 00000010
$((dir + 16)) 02
$((dir + 17)) 08
$((dir + 17)) 28
$((dir + 18)) 0000
$((dir + 18)) 07d0
$((dir + 20)) 00000008
$((dir + 56)) 6100
EOF

# bitmaps left by a program that cleared the auto-clear bit: ignored with a warning
cp good.qcow2 q.qcow2
poke q.qcow2 95 00
cp q.qcow2 d.qcow2
both ac-info info q.qcow2
same ac-info
bm_both ac-add --add IMG fresh
run_as q.ac-check "$QEMU_IMG" check q.qcow2
run_as d.ac-check "$QEMU_IMG" check d.qcow2
sed -i 's/d\.qcow2/q.qcow2/g' d.ac-check.out
same ac-check
# ---- bitmaps stop snapshot -a; a resize can make one too big to store ------
"$QEMU_IMG" create -q -f qcow2 q.qcow2 16M
"$QEMU_IMG" snapshot -c s1 q.qcow2
"$QEMU_IO" -c "write -P 7 0 64k" q.qcow2 >/dev/null
"$QEMU_IMG" bitmap --add q.qcow2 inc
cp q.qcow2 d.qcow2
for sn in s1 nosuch; do
    run_as "q.snap-$sn" "$QEMU_IMG" snapshot -a "$sn" q.qcow2
    run_as "d.snap-$sn" "$DIMG" snapshot -a "$sn" d.qcow2
    sed -i 's/^dimg: /qemu-img: /' "d.snap-$sn.err"
    same "snap-$sn"
    cmp -s d.qcow2 q.qcow2 || fail "snapshot -a $sn: image differs from qemu-img's"
done
"$QEMU_IMG" create -q -f qcow2 q.qcow2 1G
"$QEMU_IMG" bitmap --add -g 64k q.qcow2 big
"$QEMU_IMG" bitmap --add -g 512 q.qcow2 small
cp q.qcow2 d.qcow2
run_as q.grow "$QEMU_IMG" resize q.qcow2 4T
run_as d.grow "$DIMG" resize d.qcow2 4T
# qemu-img names an internal node where dimg names the file
sed -i 's/#block[0-9]*/NODE/' q.grow.err
sed -i 's/^dimg: /qemu-img: /; s/d\.qcow2/NODE/' d.grow.err
same grow
grep -q "Lost persistent bitmaps" q.grow.err || fail "setup: qemu-img stored the bitmaps"
"$QEMU_IMG" check -q d.qcow2 || fail "grow: check"
both grow-info info --output=json d.qcow2
same grow-info
"$QEMU_IMG" info --output=json q.qcow2 | grep -v -e actual-size -e filename >q.grow.json
"$QEMU_IMG" info --output=json d.qcow2 | grep -v -e actual-size -e filename >d.grow.json
cmp -s q.grow.json d.grow.json || fail "grow: bitmaps differ from qemu-img's"
finish
