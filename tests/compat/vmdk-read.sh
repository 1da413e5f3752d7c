#!/bin/bash
# VMDK images made by qemu-img/qemu-io (every subformat, zeroed grains,
# compressed grains, a backing chain) read by dimg: convert -O raw gives
# qemu-img's bytes; info and map print what qemu-img prints.  Sparse headers
# whose flags, compression algorithm and embedded createType disagree are
# read as qemu reads them: the algorithm decides, and the header (not the
# text) gives the create type.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw src.raw 12M

n=0
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    n=$((n + 1))
    mkdir -p "d$n"
    "$QEMU_IMG" convert -O vmdk -o subformat=$sub src.raw "d$n/t.vmdk" || fail "$sub: qemu-img convert"
    if [ $sub != streamOptimized ]; then
        "$QEMU_IO" -f vmdk -c "write -P 0x5a 100k 10k" -c "write -P 0x33 7M 64k" "d$n/t.vmdk" >/dev/null ||
            fail "$sub: qemu-io"
    fi
    "$QEMU_IMG" convert -O raw "d$n/t.vmdk" q.raw
    "$DIMG" convert -O raw "d$n/t.vmdk" d.raw || fail "$sub: dimg convert failed"
    cmp -s q.raw d.raw || fail "$sub: guest bytes differ"
    # a path with a directory: extent file names are shown resolved
    both "info$n" info --output=json "d$n/t.vmdk"; same "info$n"
    both "infoh$n" info "d$n/t.vmdk"; same "infoh$n"
    both "map$n" map --output=json "d$n/t.vmdk"; same "map$n"
    both "cmp$n" compare src.raw "d$n/t.vmdk"; same_out "cmp$n"
done

# zeroed grains and zero writes
"$QEMU_IMG" create -q -f vmdk -o zeroed_grain=on z.vmdk 8M
"$QEMU_IO" -f vmdk -c "write -P 0x11 0 1M" -c "write -z 0 256k" -c "write -z 2M 128k" \
    -c "write -P 0x22 3M 5k" z.vmdk >/dev/null
"$QEMU_IMG" convert -O raw z.vmdk q.raw
"$DIMG" convert -O raw z.vmdk d.raw || fail "zeroed: dimg convert failed"
cmp -s q.raw d.raw || fail "zeroed: guest bytes differ"
both zmap map --output=json z.vmdk; same zmap

# a backing chain: overlay over a base, partial grains fall through
"$QEMU_IMG" create -q -f vmdk base.vmdk 8M
"$QEMU_IO" -f vmdk -c "write -P 0x61 0 300k" -c "write -P 0x62 5M 64k" base.vmdk >/dev/null
"$QEMU_IMG" create -q -f vmdk -b base.vmdk -F vmdk top.vmdk
"$QEMU_IO" -f vmdk -c "write -P 0x63 100k 10k" -c "write -P 0x64 7M 1k" top.vmdk >/dev/null
"$QEMU_IMG" convert -O raw top.vmdk q.raw
"$DIMG" convert -O raw top.vmdk d.raw || fail "chain: dimg convert failed"
cmp -s q.raw d.raw || fail "chain: guest bytes differ"
both chain info --backing-chain --output=json top.vmdk; same chain
both chainh info --backing-chain top.vmdk; same chainh
both chainmap map --output=json top.vmdk; same chainmap
# Headers that disagree with themselves, made from one streamOptimized image.
"$QEMU_IMG" convert -O vmdk -o subformat=streamOptimized src.raw so.vmdk
poke() { # file offset bytes...
    local f=$1 off=$2; shift 2
    printf "$(printf '\\x%02x' "$@")" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
cp so.vmdk h-nocomp.vmdk; poke h-nocomp.vmdk 8 3 0 2 0     # markers, no compression flag
cp so.vmdk h-none.vmdk; poke h-none.vmdk 8 3 0 0 0         # neither flag, deflate named
cp so.vmdk h-alg0.vmdk; poke h-alg0.vmdk 77 0 0            # flags kept, no algorithm
"$QEMU_IMG" create -q -f vmdk ms.vmdk 4M
cp ms.vmdk h-text.vmdk
sed -i 's/createType="monolithicSparse"/createType="vmfsSparse"      /' h-text.vmdk
grep -aq 'createType="vmfsSparse"' h-text.vmdk || fail "setup: createType not rewritten"
for f in h-nocomp h-none h-alg0 h-text; do
    both "$f-info" info --output=json "$f.vmdk"; same "$f-info"
    both "$f-infoh" info "$f.vmdk"; same "$f-infoh"
    "$QEMU_IMG" convert -O raw "$f.vmdk" q.raw 2>/dev/null; qrc=$?
    "$DIMG" convert -O raw "$f.vmdk" d.raw 2>/dev/null; drc=$?
    [ $qrc = $drc ] || fail "$f: convert exit $drc, qemu-img $qrc"
    [ $qrc != 0 ] || cmp -s q.raw d.raw || fail "$f: guest bytes differ"
done
# an algorithm nobody knows under the compression flag: dimg refuses (qemu
# reads the deflated grains as plain data)
cp so.vmdk h-alg2.vmdk; poke h-alg2.vmdk 77 2 0
expect_rc 1 "$DIMG" info h-alg2.vmdk
finish
