#!/bin/bash
# VMDK chains and descriptors, against qemu-img 7.2:
# 1. commit into a base behind a descriptor (twoGbMaxExtentSparse, vmfsSparse)
#    takes the extent files' write locks and leaves the data qemu-img leaves;
# 2. CIDs: read as qemu reads them (info, open failures), reads or grain
#    allocations that reach a parent whose CID differs from the child's
#    parentCID fail with EINVAL, and the first write gives a new CID, the
#    descriptor rewritten as qemu rewrites it;
# 3. new grains of a hosted sparse file go at its end rounded up to a grain;
# 4. info --output=json has a dirty-flag only for formats with one.
GEN=$(cd "$(dirname "$0")" && pwd)/vmdk-cowd-gen.py
. "$TEST_LIB"
requires qemu-img qemu-io python3

# Run the same arguments with each tool in its own copy of a directory:
# in_dirs TAG args...  (run inside q/ and d/; outputs as both() makes them)
in_dirs() {
    local tag=$1; shift
    (cd q && run_as "../q.$tag" "$QEMU_IMG" "$@")
    (cd d && run_as "../d.$tag" "$DIMG" "$@")
    sed -i 's/^dimg: /qemu-img: /' "d.$tag.err"
}
fresh() { rm -rf q d && mkdir q d; }
both_dirs() { for x in q d; do (cd $x && "$@" >/dev/null) || fail "setup in $x: $*"; done; }

# Exit code and the first error line (qemu-img's parallel requests may add more).
same_first() {
    local tag=$1
    cmp -s "q.$tag.rc" "d.$tag.rc" || fail "$tag: exit code differs ($(cat q.$tag.rc) vs $(cat d.$tag.rc))"
    cmp -s "q.$tag.out" "d.$tag.out" || fail "$tag: stdout differs"
    [ "$(head -1 q.$tag.err)" = "$(head -1 d.$tag.err)" ] ||
        fail "$tag: first error line differs: '$(head -1 q.$tag.err)' vs '$(head -1 d.$tag.err)'"
}

cid_of() { grep -a -m1 '^CID=' "$1" | cut -d= -f2; }

## 1. commit into descriptor-based bases
truncate -s 8M src.raw
head -c 1M /dev/urandom | dd of=src.raw bs=1 seek=100000 conv=notrunc status=none
head -c 70000 /dev/urandom | dd of=src.raw bs=1 seek=7000000 conv=notrunc status=none

commit_case() { # tag base-extent-file top   (q/ and d/ hold the same chain)
    local tag=$1 base=$2 top=$3
    in_dirs "$tag" commit "$top"; same "$tag"
    "$QEMU_IMG" compare -q q/$base d/$base || fail "$tag: bases differ after commit"
    "$QEMU_IMG" map --output=json q/$base | sed 's#q/##g' >q.m
    "$QEMU_IMG" map --output=json d/$base | sed 's#d/##g' >d.m
    cmp -s q.m d.m || { fail "$tag: base allocation differs"; diff q.m d.m | head -5 >&2; }
    "$QEMU_IMG" check -q d/$base || fail "$tag: qemu-img check of dimg's base"
}

fresh
both_dirs "$QEMU_IMG" create -q -f vmdk -o subformat=twoGbMaxExtentSparse base.vmdk 8M
both_dirs "$QEMU_IO" -f vmdk -c "write -P 0x11 0 3M" base.vmdk
both_dirs "$QEMU_IMG" create -q -f qcow2 -b base.vmdk -F vmdk top.qcow2
both_dirs "$QEMU_IO" -f qcow2 -c "write -P 0x22 1M 2M" -c "write -z 5M 64k" top.qcow2
commit_case c2gb base.vmdk top.qcow2

# a vmfsSparse (COWD) base, every grain table present
fresh
for x in q d; do
    python3 "$GEN" $x/c-delta.vmdk --sectors 16384 --data src.raw || fail "generator"
    printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="vmfsSparse"\n\nRW 16384 VMFSSPARSE "c-delta.vmdk"\n' >$x/c.vmdk
done
both_dirs "$QEMU_IMG" create -q -f qcow2 -b c.vmdk -F vmdk top.qcow2
both_dirs "$QEMU_IO" -f qcow2 -c "write -P 0x22 1M 2M" -c "write -z 5M 64k" top.qcow2
commit_case ccowd c.vmdk top.qcow2

# a vmdk top over a twoGbMaxExtentSparse base: commit rewrites the base's
# CID, so afterwards the top's reads from the base fail in both
fresh
both_dirs "$QEMU_IMG" create -q -f vmdk -o subformat=twoGbMaxExtentSparse base.vmdk 8M
both_dirs "$QEMU_IO" -f vmdk -c "write -P 0x11 0 3M" base.vmdk
both_dirs "$QEMU_IMG" create -q -f vmdk -b base.vmdk -F vmdk top.vmdk
both_dirs "$QEMU_IO" -f vmdk -c "write -P 0x33 1M 1M" top.vmdk
commit_case cvmdk base.vmdk top.vmdk
[ "$(cid_of q/base.vmdk)" != "$(cid_of d/base.vmdk)" ] || fail "cvmdk: CIDs are not random"
in_dirs cvmdk.after convert -O raw top.vmdk out.raw; same_first cvmdk.after

## 2. CIDs
# A chain whose parent changed after the child was made.
"$QEMU_IMG" create -q -f vmdk base.vmdk 4M
"$QEMU_IO" -f vmdk -c "write -P 1 0 4M" base.vmdk >/dev/null
"$QEMU_IMG" create -q -f vmdk -b base.vmdk -F vmdk top.vmdk
"$QEMU_IO" -f vmdk -c "write -P 2 0 64k" top.vmdk >/dev/null
"$QEMU_IMG" convert -O raw top.vmdk good.raw || fail "matching chain: qemu-img convert"
"$DIMG" convert -O raw top.vmdk dgood.raw || fail "matching chain: dimg convert"
cmp -s good.raw dgood.raw || fail "matching chain: converted bytes differ"
"$QEMU_IO" -f vmdk -c "write -P 3 3M 512" base.vmdk >/dev/null
cp top.vmdk top.orig
n=0
while IFS= read -r line; do
    n=$((n + 1))
    eval "set -- $line"
    cp top.orig top.vmdk
    both "p$n" "$@"
    case $1 in convert) same_first "p$n" ;; *) same "p$n" ;; esac
    [ "$(cid_of top.vmdk)" = "$(cid_of top.orig)" ] || fail "p$n: a failed command changed the CID"
done <<'EOF'
convert -O raw top.vmdk o.raw
convert -m 1 -O raw top.vmdk o.raw
convert -O qcow2 top.vmdk o.qcow2
compare top.vmdk base.vmdk
compare base.vmdk top.vmdk
compare -F raw top.vmdk good.raw
map top.vmdk
map --output=json top.vmdk
info --backing-chain --output=json top.vmdk
check top.vmdk
dd if=top.vmdk of=o.dd -O raw
bench -w -c 4 -d 1 -s 4096 -o 1M top.vmdk
bench -w -c 1 -d 1 -s 65536 -o 2M top.vmdk
EOF
grep -q 'error while reading at byte [0-9]*: Invalid argument' d.p1.err || fail "p1: the read did not fail"
# A write into a grain the top holds works and gives the top a new CID.
for tool in "$QEMU_IMG" "$DIMG"; do
    cp top.orig top.vmdk
    "$tool" bench -w -c 1 -d 1 -s 4096 --pattern=9 top.vmdk >/dev/null || fail "$tool: write into an allocated grain"
    [ "$(cid_of top.vmdk)" != "$(cid_of top.orig)" ] || fail "$tool: CID unchanged after a write"
    "$QEMU_IO" -f vmdk -c "read -P 9 0 4096" top.vmdk | grep -q '^read' || fail "$tool: data not written"
done
# Without the backing file the parent is not checked.
cp top.orig top.vmdk
both pu.map map --output=json top.vmdk; same pu.map

# Descriptors whose CIDs qemu reads oddly, or not at all.
"$QEMU_IMG" create -q -f vmdk -o subformat=twoGbMaxExtentSparse orig.vmdk 4M
python3 - <<'PY'
import re
s = open("orig.vmdk").read()
s = re.sub(r"\nCID=[0-9a-f]+\n", "\nCID=abc123\n", s)
v = {
    "plain": s,
    "swap": s.replace("CID=abc123\nparentCID=ffffffff\n", "parentCID=ffffffff\nCID=abc123\n"),
    "nocid": s.replace("\nCID=abc123\n", "\n"),
    "nopcid": s.replace("parentCID=ffffffff\n", ""),
    "comment": s.replace("version=1\n", "version=1\n# the CID=5 here\n"),
    "space": s.replace("CID=abc123", "CID = abc123"),
    "hex0x": s.replace("CID=abc123", "CID=0x77"),
    "long": s.replace("CID=abc123", "CID=123456789abc"),
    "far": s.replace("version=1\n", "version=1\n#" + "z" * 11000 + "\n"),
    "tail": s.replace("\n# Extent", "\n#" + "q" * 11000 + "\n# Extent"),
    "fill": s.replace("CID=abc123", "CID=1").replace("\n# Extent", "\n#" + "x" * (505 - len(s) + 3) + "\n# Extent"),
}
for k, t in v.items():
    open("v-" + k + ".vmdk", "w").write(t)
PY
for k in plain swap nocid nopcid comment space hex0x long far tail fill; do
    both "i-$k" info --output=json "v-$k.vmdk"; same "i-$k"
done
# a twoGbMaxExtentSparse extent file has no descriptor text: it does not open on its own
both i-extent info orig-s001.vmdk; same i-extent

# The descriptor text after the first write (up to its first NUL, the new
# CID masked) and the file size must be the same after the same write by each
# tool.  A random CID has 1 to 8 digits, so a text cut at a size limit shows
# up to 7 bytes more or less of its tail: the shorter text must then be a
# prefix of the longer one.
same_desc() { # qemu-file dimg-file text-offset
    python3 -c '
import re, sys
def text(path, off):
    b = open(path, "rb").read()
    t = b[off:off + (10240 if off else len(b))].split(b"\0")[0]
    return len(b), re.sub(rb"CID=[0-9a-f]+\n", b"CID=X\n", t, count=1)
(qn, q), (dn, d) = text(sys.argv[1], int(sys.argv[3])), text(sys.argv[2], int(sys.argv[3]))
short, long_ = sorted((q, d), key=len)
if qn != dn or len(long_) - len(short) > 7 or long_[:len(short)] != short:
    print("sizes", qn, dn, file=sys.stderr)
    print("qemu:", q[-80:], file=sys.stderr)
    print("dimg:", d[-80:], file=sys.stderr)
    sys.exit(1)' "$@"
}
rewrite_same() { # tag file text-offset [data-files...]
    local tag=$1 f=$2 off=$3; shift 3
    fresh
    cp "$f" "$@" q/; cp "$f" "$@" d/
    (cd q && "$QEMU_IMG" bench -w -c 1 -d 1 -s 512 -o 65536 "$f" >/dev/null) || fail "$tag: qemu-img write"
    (cd d && "$DIMG" bench -w -c 1 -d 1 -s 512 -o 65536 "$f" >/dev/null) || fail "$tag: dimg write"
    same_desc "q/$f" "d/$f" "$off" || fail "$tag: descriptor rewritten differently"
    case $tag in w-plain|w-mono|w-flat|w-cowd)
        [ "$(cid_of "d/$f")" != "$(cid_of "$f")" ] || fail "$tag: dimg kept the CID" ;;
    esac
}
for k in plain swap nocid comment hex0x long tail fill; do
    cp orig-s001.vmdk v-$k-s001.vmdk
    sed -i "s/orig-s001/v-$k-s001/" v-$k.vmdk
    rewrite_same "w-$k" "v-$k.vmdk" 0 "v-$k-s001.vmdk"
done
"$QEMU_IMG" create -q -f vmdk mono.vmdk 4M
rewrite_same w-mono mono.vmdk 512
"$QEMU_IMG" create -q -f vmdk -o subformat=monolithicFlat flat.vmdk 4M
rewrite_same w-flat flat.vmdk 0 flat-flat.vmdk
python3 "$GEN" bare.vmdk --sectors 16384 --data src.raw \
    --parent "$(python3 -c 'print("p" * 480 + "\nCID=1234abcd\nparentCID=ffffffff\n", end="")')" || fail generator
rewrite_same w-cowd bare.vmdk 512
# zero writes and convert -n write too
head -c 4M src.raw >src4.raw
for tool in "$QEMU_IMG" "$DIMG"; do
    cp mono.vmdk z.vmdk
    "$tool" convert -n -O vmdk src4.raw z.vmdk || fail "$tool: convert -n"
    [ "$(cid_of z.vmdk)" != "$(cid_of mono.vmdk)" ] || fail "$tool: convert -n kept the CID"
done

## 3. New grains go at the end of the file rounded up to a grain
for sub in monolithicSparse twoGbMaxExtentSparse; do
    fresh
    both_dirs "$QEMU_IMG" create -q -f vmdk -o subformat=$sub g.vmdk 8M
    ext=g.vmdk; [ $sub = monolithicSparse ] || ext=g-s001.vmdk
    both_dirs truncate -s +1000 $ext
    for x in q d; do
        tool=$QEMU_IMG; [ $x = d ] && tool=$DIMG
        (cd $x && "$tool" bench -w -c 3 -d 1 -s 512 -S 1048576 -o 4096 g.vmdk >/dev/null &&
            "$tool" bench -w -c 1 -d 1 -s 131072 -o 6291456 g.vmdk >/dev/null) || fail "$sub: $x write"
    done
    "$QEMU_IMG" map --output=json q/g.vmdk | sed 's#q/##' >q.m
    "$QEMU_IMG" map --output=json d/g.vmdk | sed 's#d/##' >d.m
    cmp -s q.m d.m || { fail "$sub: grains placed differently"; diff q.m d.m | head -5 >&2; }
    [ "$(stat -c %s q/$ext)" = "$(stat -c %s d/$ext)" ] || fail "$sub: file sizes differ"
    "$QEMU_IMG" check -q d/g.vmdk || fail "$sub: qemu-img check"
done

## 4. dirty-flag only where the format has one
"$QEMU_IMG" create -q -f vmdk -o subformat=monolithicFlat mf.vmdk 1M
"$QEMU_IMG" create -q -f vmdk ms.vmdk 1M
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "mf-flat.vmdk" 0\nRW 2048 SPARSE "ms.vmdk"\n' >mix.vmdk
"$QEMU_IMG" create -q -f vmdk -b mix.vmdk -F vmdk mixtop.vmdk
for fmt in raw vmdk vpc vdi vhdx qcow2; do
    "$QEMU_IMG" create -q -f $fmt d.$fmt 1M
done
"$QEMU_IMG" create -q -f qcow2 -b mix.vmdk -F vmdk over.qcow2
for f in mix.vmdk mixtop.vmdk over.qcow2 d.raw d.vmdk d.vpc d.vdi d.vhdx d.qcow2; do
    both "df-$f" info --output=json "$f"; same "df-$f"
    both "dfc-$f" info --backing-chain --output=json "$f"; same "dfc-$f"
    both "dfh-$f" info "$f"; same "dfh-$f"
done

finish
