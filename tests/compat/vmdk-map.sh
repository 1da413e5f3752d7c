#!/bin/bash
# map on VMDK images whose data lives in extent files: the human "File"
# column names the extent file (-flat, -s001, -f002, ...) resolved against the
# descriptor's directory, and runs never merge across files.  JSON and human
# output must equal qemu-img's for every subformat and for a hand-written
# descriptor with several extents in the same and in different files.
. "$TEST_LIB"
requires qemu-img qemu-io

mkdir -p d
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    "$QEMU_IMG" create -q -f vmdk -o subformat=$sub "d/$sub.vmdk" 3G || { fail "$sub: create"; continue; }
    # data in the first extent, across the 2 GiB extent boundary, and in the second
    "$QEMU_IO" -f vmdk -c "write -P 1 0 1M" -c "write -P 2 2047M 2M" -c "write -P 3 2100M 64k" \
        "d/$sub.vmdk" >/dev/null || fail "$sub: qemu-io"
    for name in "d/$sub.vmdk" "$T/d/$sub.vmdk" "./d/../d/$sub.vmdk"; do
        both "h-$sub" map "$name"; same "h-$sub"
        both "j-$sub" map --output=json "$name"; same "j-$sub"
    done
    both "r-$sub" map --start-offset=2047M --max-length=3M "d/$sub.vmdk"; same "r-$sub"
done
grep -q 's002.vmdk' q.h-twoGbMaxExtentSparse.out || fail "twoGbMaxExtentSparse: second extent not listed"

# Several flat extents: contiguous offsets in one file merge, the same offsets
# in another file (or the same file under another name) do not.
mkdir -p m/sub
head -c 4M /dev/urandom >m/sub/x.bin
head -c 4M /dev/urandom >m/sub/y.bin
cat >m/sub/multi.vmdk <<EOF
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "x.bin" 0
RW 2048 FLAT "x.bin" 2048
RW 2048 FLAT "y.bin" 6144
RW 2048 FLAT "$T/m/sub/y.bin" 0
RW 1024 FLAT "x.bin" 7168
RW 1024 FLAT "y.bin" 0
EOF
for name in m/sub/multi.vmdk "$T/m/sub/multi.vmdk"; do
    both multi map "$name"; same multi
    both multij map --output=json "$name"; same multij
done
[ "$(grep -c 'sub/y.bin' d.multi.out)" -eq 3 ] || fail "multi: y.bin runs not listed separately"
finish
