#!/bin/bash
# vmfsSparse VMDKs: ESX Server sparse ("COWD") extents, built from the spec
# by vmdk-cowd-gen.py since qemu-img cannot create them.  Read both ways
# qemu-img opens them (a descriptor with VMFSSPARSE extents, and a COWD file
# on its own) and compare info, map, check and convert with qemu-img's; dimg
# writes (convert -n) and qemu-img reads the same bytes; a backing chain;
# hostile headers give qemu-img's messages (or, where qemu-img crashes, one
# line and exit 1); SESPARSE extents are refused with qemu-img's messages.
GEN=$(cd "$(dirname "$0")" && pwd)/vmdk-cowd-gen.py
. "$TEST_LIB"
requires qemu-img qemu-io python3

gen() { python3 "$GEN" "$@" || fail "generator: $*"; }

# A descriptor naming extents: desc FILE CREATE-TYPE EXTENT-LINES [PARENT-CID [HINT]]
desc() {
    {
        printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=%s\n' "${4:-ffffffff}"
        printf 'createType="%s"\n' "$2"
        [ -n "${5:-}" ] && printf 'parentFileNameHint="%s"\n' "$5"
        printf '\n# Extent description\n%b\n\nddb.virtualHWVersion = "4"\n' "$3"
    } >"$1"
}

# The text qemu looks for at byte 512 of a COWD file opened on its own lies
# inside the header's 1024-byte parent-name field, which starts at byte 32.
bare_text() { python3 -c 'import sys; print("p" * 480 + sys.argv[1], end="")' "$1"; }
CIDS=$'\nCID=1234abcd\nparentCID=ffffffff\n'

# info, map and check (JSON; with "full" the human outputs and compare
# too), and convert -O raw with equal bytes.
read_same() { # tag image expected-raw [full]
    local tag=$1 img=$2 raw=$3
    both "$tag.infoj" info --output=json "$img"; same "$tag.infoj"
    both "$tag.mapj" map --output=json "$img"; same "$tag.mapj"
    both "$tag.check" check "$img"; same "$tag.check"
    if [ -n "${4:-}" ]; then
        both "$tag.info" info "$img"; same "$tag.info"
        both "$tag.map" map "$img"; same "$tag.map"
        both "$tag.checkj" check --output=json "$img"; same "$tag.checkj"
        both "$tag.cmp" compare "$img" "$raw"; same "$tag.cmp"
    fi
    rm -f q.raw d.raw
    "$QEMU_IMG" convert -O raw "$img" q.raw || fail "$tag: qemu-img convert"
    "$DIMG" convert -O raw "$img" d.raw || fail "$tag: dimg convert"
    cmp -s q.raw d.raw || fail "$tag: converted bytes differ from qemu-img's"
    cmp -s d.raw "$raw" || fail "$tag: converted bytes differ from the source"
}

# Sources: data, zeros inside allocated grains, holes, odd offsets.
truncate -s 8M src.raw
head -c 300000 /dev/urandom | dd of=src.raw bs=1 seek=100000 conv=notrunc status=none
head -c 70000 /dev/urandom | dd of=src.raw bs=1 seek=7000000 conv=notrunc status=none
truncate -s 40M big.raw
head -c 100000 /dev/urandom | dd of=big.raw bs=1 seek=100000 conv=notrunc status=none
head -c 100000 /dev/urandom | dd of=big.raw bs=1 seek=35000000 conv=notrunc status=none

## 1. Reading
# descriptor, every grain table present
gen a-delta.vmdk --sectors 16384 --data src.raw
desc a.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "a-delta.vmdk"'
read_same a a.vmdk src.raw full
# grain tables only where grains are (several tables), and none at all
gen b-delta.vmdk --sectors 81920 --data big.raw --tables used
desc b.vmdk vmfsSparse 'RW 81920 VMFSSPARSE "b-delta.vmdk"'
read_same b b.vmdk big.raw
truncate -s 8M zero.raw
gen e-delta.vmdk --sectors 16384 --tables none
desc e.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "e-delta.vmdk"'
read_same e e.vmdk zero.raw
# grains of 3 and 128 sectors; the header's capacity wins over the descriptor's
gen g3-delta.vmdk --sectors 16384 --grain 3 --data src.raw
desc g3.vmdk vmfsSparse 'RW 9999 VMFSSPARSE "g3-delta.vmdk"'
read_same g3 g3.vmdk src.raw
gen g128-delta.vmdk --sectors 16384 --grain 128 --data src.raw --tables used
desc g128.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "g128-delta.vmdk"'
read_same g128 g128.vmdk src.raw
# two extents; the file's magic decides the layout, not the type name
head -c 8M src.raw >m1.raw
tail -c 8M big.raw >m2.raw
cat m1.raw m2.raw >m.raw
gen m1-delta.vmdk --sectors 16384 --data m1.raw
gen m2-delta.vmdk --sectors 16384 --data m2.raw --tables used
desc m.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "m1-delta.vmdk"\nRW 16384 SPARSE "m2-delta.vmdk"'
read_same m m.vmdk m.raw
# grains that differ between extents: no cluster size (only the human
# output: dimg's JSON still prints the dirty flag qemu leaves out then)
gen m3-delta.vmdk --sectors 16384 --grain 64 --data m2.raw --tables used
desc m3.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "m1-delta.vmdk"\nRW 16384 VMFSSPARSE "m3-delta.vmdk"'
both m3.info info m3.vmdk; same m3.info
both m3.map map --output=json m3.vmdk; same m3.map
"$QEMU_IMG" create -q -f vmdk v4.vmdk 8M
"$QEMU_IO" -f vmdk -c "write -P 0x61 1M 64k" v4.vmdk >/dev/null
"$QEMU_IMG" convert -O raw v4.vmdk v4.raw
desc v.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "v4.vmdk"'
read_same v v.vmdk v4.raw
# a COWD file on its own
gen bare.vmdk --sectors 16384 --data src.raw --parent "$(bare_text "$CIDS")"
read_same bare bare.vmdk src.raw full

## 2. A backing chain: a vmfsSparse delta over a monolithicSparse base (the
## parent's CID must match, or qemu fails reads from the base)
"$QEMU_IMG" create -q -f vmdk base.vmdk 8M
"$QEMU_IO" -f vmdk -c "write -P 0x33 0 8M" base.vmdk >/dev/null
cid=$(grep -a -m1 '^CID=' base.vmdk | cut -d= -f2)
truncate -s 8M chain.raw
"$QEMU_IO" -f raw -c "write -P 0x33 0 8M" chain.raw >/dev/null
gen c-delta.vmdk --sectors 16384 --data src.raw --tables used
python3 - src.raw chain.raw <<'PY'
import sys
# the delta's grains (8 KiB) with data replace the base's bytes
src = open(sys.argv[1], "rb").read()
out = bytearray(open(sys.argv[2], "rb").read())
g = 8192
for o in range(0, len(src), g):
    if src[o:o + g].strip(b"\0"):
        out[o:o + g] = src[o:o + g]
open(sys.argv[2], "wb").write(out)
PY
desc c.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "c-delta.vmdk"' "$cid" base.vmdk
read_same c c.vmdk chain.raw full
gen cb.vmdk --sectors 16384 --data src.raw --tables used \
    --parent "$(bare_text $'\nCID=1\nparentCID='"$cid"$'\nparentFileNameHint="base.vmdk"\n')"
read_same cb cb.vmdk chain.raw
# a flat base
"$QEMU_IMG" create -q -f vmdk -o subformat=monolithicFlat fbase.vmdk 8M
"$QEMU_IO" -f vmdk -c "write -P 0x33 0 8M" fbase.vmdk >/dev/null
fcid=$(grep -a -m1 '^CID=' fbase.vmdk | cut -d= -f2)
gen f-delta.vmdk --sectors 16384 --data src.raw
desc f.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "f-delta.vmdk"' "$fcid" fbase.vmdk
read_same f f.vmdk chain.raw

## 3. Writing
truncate -s 8M new.raw
head -c 1M /dev/urandom | dd of=new.raw bs=1 seek=3000000 conv=notrunc status=none
head -c 5000 /dev/urandom | dd of=new.raw bs=1 seek=5000 conv=notrunc status=none
head -c 8M /dev/urandom >full.raw
# Into fully allocated deltas: the same convert by both tools leaves the
# same allocation and file sizes (grains go at the end rounded to a grain).
for g in 16 3 128; do
    rm -rf q d && mkdir q d
    for x in q d; do
        gen $x/w-delta.vmdk --sectors 16384 --grain $g --data full.raw
        desc $x/w.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "w-delta.vmdk"'
    done
    "$QEMU_IMG" convert -n -O vmdk new.raw q/w.vmdk || fail "w$g: qemu-img convert -n"
    "$DIMG" convert -n -O vmdk new.raw d/w.vmdk || fail "w$g: dimg convert -n"
    "$QEMU_IMG" map --output=json q/w.vmdk >q.map
    "$QEMU_IMG" map --output=json d/w.vmdk >d.map
    cmp -s q.map d.map || { fail "w$g: allocation differs from qemu-img's"; diff q.map d.map | head >&2; }
    [ "$(stat -c %s q/w-delta.vmdk)" = "$(stat -c %s d/w-delta.vmdk)" ] || fail "w$g: file sizes differ"
    "$QEMU_IMG" compare -q new.raw d/w.vmdk || fail "w$g: qemu-img reads other bytes"
    both "w$g.check" check d/w.vmdk; same "w$g.check"
done
# Into partly allocated deltas and deltas without grain tables (qemu-img
# would write over the header there): dimg adds tables; qemu-img reads the
# bytes written and finds the image clean.  Also a COWD file on its own, and
# small writes inside grains (the rest of each grain is kept).
n=0
for t in all used none; do
    for g in 16 3; do
        n=$((n + 1))
        gen p$n-delta.vmdk --sectors 81920 --grain $g --data big.raw --tables $t
        desc p$n.vmdk vmfsSparse 'RW 81920 VMFSSPARSE "p'$n'-delta.vmdk"'
        cp big.raw p$n.raw
        dd if=new.raw of=p$n.raw conv=notrunc status=none
        "$DIMG" convert -n -O vmdk p$n.raw p$n.vmdk || fail "p$n ($t, $g): dimg convert -n"
        "$QEMU_IMG" compare -q p$n.raw p$n.vmdk || fail "p$n ($t, $g): qemu-img reads other bytes"
        both "p$n.check" check p$n.vmdk; same "p$n.check"
        both "p$n.map" map --output=json p$n.vmdk; same "p$n.map"
    done
done
gen wb.vmdk --sectors 16384 --data src.raw --tables none --parent "$(bare_text "$CIDS")"
"$DIMG" convert -n -O vmdk new.raw wb.vmdk || fail "bare: dimg convert -n"
"$QEMU_IMG" compare -q new.raw wb.vmdk || fail "bare: qemu-img reads other bytes"
both wb.check check wb.vmdk; same wb.check
# Writes of parts of grains (bench -w) into deltas over a base: the rest of
# each new grain comes from the base.  With every grain table present both
# tools run on copies and must agree on allocation; without, qemu-img reads
# what dimg wrote.
bench_w() { "$1" bench -w -d 1 -c 40 -s 3072 -S 20480 -o 1536 --pattern=68 -f vmdk "$2" >/dev/null; }
rm -rf q d && mkdir q d
for x in q d; do
    cp base.vmdk $x/
    gen $x/c-delta.vmdk --sectors 16384 --data src.raw
    desc $x/c.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "c-delta.vmdk"' "$cid" base.vmdk
done
bench_w "$QEMU_IMG" q/c.vmdk || fail "chain: qemu-img bench -w"
bench_w "$DIMG" d/c.vmdk || fail "chain: dimg bench -w"
"$QEMU_IMG" map --output=json q/c.vmdk >q.map
"$QEMU_IMG" map --output=json d/c.vmdk >d.map
cmp -s q.map d.map || { fail "chain: allocation differs from qemu-img's"; diff q.map d.map | head >&2; }
[ "$(stat -c %s q/c-delta.vmdk)" = "$(stat -c %s d/c-delta.vmdk)" ] || fail "chain: file sizes differ"
"$QEMU_IMG" compare -q q/c.vmdk d/c.vmdk || fail "chain: qemu-img reads other bytes"
both cw.check check d/c.vmdk; same cw.check
"$QEMU_IMG" convert -O raw q/c.vmdk cq.raw
for f in c.vmdk cb.vmdk; do
    bench_w "$DIMG" $f || fail "$f: dimg bench -w"
    "$QEMU_IMG" compare -q cq.raw $f || fail "$f: qemu-img reads other bytes"
    both "$f.wcheck" check $f; same "$f.wcheck"
done
# the header's next-free-sector field follows what dimg allocated
python3 - p5-delta.vmdk <<'PY' || fail "next free sector not updated"
import os, struct, sys
f = open(sys.argv[1], "rb").read(32)
assert struct.unpack_from("<I", f, 28)[0] * 512 >= os.path.getsize(sys.argv[1])
PY

## 4. Hostile headers, in a descriptor and on their own
hostile() { # name generator-args...   (a descriptor naming the file)
    local name=$1; shift
    gen h-$name-delta.vmdk --sectors 16384 --data src.raw "$@"
    desc h-$name.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "h-'$name'-delta.vmdk"'
}
hostile_bare() { # name generator-args...   (the file on its own)
    local name=$1; shift
    gen hb-$name.vmdk --sectors 16384 --data src.raw --parent "$(bare_text "$CIDS")" "$@"
}
hostile cap0 --poke 12:00000000
hostile caphuge --poke 12:ffffffff
hostile_bare caphuge --poke 12:ffffffff
hostile gran3 --poke 16:03000000             # directory too short for the capacity
hostile_bare gran3 --poke 16:03000000
hostile granbig --poke 16:01002000           # 0x200001 sectors
hostile_bare granbig --poke 16:01002000
hostile gdpast --poke 20:00001000            # directory beyond the end of the file
hostile gdzero --poke 20:00000000            # directory read from the header
hostile gdnum0 --poke 24:00000000
hostile_bare gdnumbig --poke 24:00000002     # 32M entries: allowed, mostly past the end
hostile gdnumhuge --poke 24:01000002         # one more: refused
hostile_bare gdnumhuge --poke 24:01000002
hostile gtpast --poke 2048:00100000          # a grain table beyond the end
hostile grainpast --poke 2560:00100000       # a grain beyond the end
hostile_bare grainpast --poke 2560:00100000
hostile ver9 --poke 4:09000000
hostile trunc2100 --truncate 2100
gen h-trunc100-delta.vmdk --sectors 16384 --truncate 100
desc h-trunc100.vmdk vmfsSparse 'RW 16384 VMFSSPARSE "h-trunc100-delta.vmdk"'
gen hb-trunc600.vmdk --sectors 16384 --truncate 600 --parent "$(bare_text "$CIDS")"
for f in h-*.vmdk hb-*.vmdk; do
    case $f in *-delta.vmdk) continue ;; esac
    k=${f%.vmdk}
    both "$k.info" info --output=json "$f"; same "$k.info"
    both "$k.map" map --output=json "$f"; same "$k.map"
    both "$k.check" check "$f"; same "$k.check"
    [ "$k" = h-caphuge ] || [ "$k" = hb-caphuge ] && continue   # 2 TiB outputs
    rm -f q.raw d.raw
    both "$k.conv" convert -O raw "$f" q.raw; same "$k.conv"
done
# The same conversions write the same bytes where qemu-img succeeds.
for k in h-gdpast h-gtpast h-grainpast h-trunc2100 hb-gdnumbig; do
    rm -f q.raw d.raw
    "$QEMU_IMG" convert -O raw $k.vmdk q.raw && "$DIMG" convert -O raw $k.vmdk d.raw &&
        { cmp -s q.raw d.raw || fail "$k: converted bytes differ"; }
done
# Reads where the directory does not reach give zeros (dd reads without
# block status); block status there fails as qemu's does (compare).
both dd.gran3 dd if=h-gran3.vmdk of=dd.raw bs=1M; same dd.gran3
both cmp.gran3 compare h-gran3.vmdk src.raw; same cmp.gran3
# Writes there fail with EINVAL (each tool on its own copy).
for k in gran3 gdnum0; do
    rm -rf q d && mkdir q d
    for x in q d; do
        cp h-$k-delta.vmdk $x/
        cp h-$k.vmdk $x/w.vmdk
    done
    run_as q.w$k "$QEMU_IMG" convert -n -O vmdk new.raw q/w.vmdk
    run_as d.w$k "$DIMG" convert -n -O vmdk new.raw d/w.vmdk
    sed -i 's/^dimg: /qemu-img: /' d.w$k.err
    same w$k
done

# qemu-img crashes (division by zero) on these when reading: dimg refuses
# them at open with one line
for p in 16:00000000 16:00001000 16:00002000; do
    gen z.vmdk --sectors 16384 --data src.raw --poke $p --parent "$(bare_text "$CIDS")"
    run_as "d.z$p" "$DIMG" convert -O raw z.vmdk d.raw
    [ "$(cat "d.z$p.rc")" = 1 ] || fail "grain $p: exit $(cat "d.z$p.rc"), expected 1"
    grep -qx "dimg: Could not open 'z.vmdk': Invalid granularity, image may be corrupt" "d.z$p.err" ||
        fail "grain $p: $(cat "d.z$p.err")"
done

# The descriptor text inside a COWD file opened on its own
n=0
for t in $'\nCID=1\n' $'\nparentCID=abc\nCID=5\n' $'\nCID=zz\nparentCID=1\n' \
    $'CID=-7\nparentCID=  0x1\n' $'CID=123456789abc\nparentCID=1\n' \
    $'CID=7\nparentCID=1\nparentFileNameHint="base.vmdk\n' $'CID=7\nparentCID=1\nparentFileNameHint=x' \
    $'CID=7\nparentCID=1\nparentFileNameHint=""\n' ''; do
    n=$((n + 1))
    gen t$n.vmdk --sectors 2048 --data src.raw --parent "$(bare_text "$t")"
    both "t$n" info --output=json t$n.vmdk; same "t$n"
done

## 5. seSparse extents stay unsupported; create types of separate descriptors
printf '\xbe\xba\xfe\xca\0\0\0\0\2\0\0\0\1\0\0\0' >se1.img
printf '\xbe\xba\xfe\xca\0\0\0\0\1\0\0\0\2\0\0\0' >se2.img
truncate -s 1M se1.img se2.img
for x in se1.img a-delta.vmdk v4.vmdk missing.img; do
    desc se.vmdk seSparse "RW 16384 SESPARSE \"$x\""
    both "se.$x" info se.vmdk; same "se.$x"
done
# a seSparse header as far as qemu-img's first checks go: refused
desc se.vmdk seSparse 'RW 16384 SESPARSE "se2.img"'
run_as d.se2 "$DIMG" info se.vmdk
grep -qx "dimg: Could not open 'se.vmdk': Unsupported extent type 'SESPARSE'" d.se2.err ||
    fail "seSparse: $(cat d.se2.err)"
for ct in monolithicSparse streamOptimized seSparse vmfsThin; do
    desc ct.vmdk $ct 'RW 16384 VMFSSPARSE "a-delta.vmdk"'
    both "ct.$ct" info ct.vmdk; same "ct.$ct"
done
finish
