#!/bin/bash
# Descriptor extent lines read as qemu-img reads them: which lines count as
# extents (RW only, a quoted file name, a positive size, a known type), which
# are invalid (a FLAT extent without a usable offset, an offset on any other
# type), white space between fields including newlines (a blank line before
# an extent line makes qemu read it twice), word and number syntax.  info and
# map must equal qemu-img's, errors included.
. "$TEST_LIB"
requires qemu-img

mkdir -p sub
head -c 4M /dev/urandom >sub/x.bin
head -c 4M /dev/urandom >sub/y.bin
head='# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n# Extent description\n'
tail='RW 2048 FLAT "y.bin" 0\n'

lines=(
    'RW 2048 FLAT "x.bin" 4096\n'
    'RW 2048 SPARSE "x.bin" 7\n'
    'RW 0 BOGUS "x.bin" 0\n'
    'RDONLY 2048 BOGUS "x.bin" 0\n'
    'RDONLY 2048 FLAT "x.bin" 0\n'
    'NOACCESS 2048 FLAT "x.bin" 0\n'
    'rw 2048 FLAT "x.bin" 0\n'
    'RW 2048 FLAT "x.bin" -1\n'
    'RW 2048 FLAT "x.bin" abc\n'
    'RW 2048 FLAT "x.bin"\n'
    'RW 2048 FLAT "x.bin"0\n'
    'RW 2048 FLAT "x.bin" 0 junk\n'
    'RW 2048 FLAT "x.bin" 0x10\n'
    'RW\t2048\tFLAT\t"x.bin"\t0\n'
    'RW 2048 FLAT "x.bin" 0\r\n'
    '  RW 2048 FLAT "x.bin" 0\n'
    'RW 2048 FLAT  "x.bin"  2048\n'
    'RW 2048 VMFS "x.bin"\n'
    'RW 2048 VMFS "x.bin" 1024\n'
    'RW 2048 flat "x.bin" 0\n'
    'RW 2048 BOGUS "x.bin" 0\n'
    'RW 2048 BOGUS "x.bin"\r\n'
    'RW 2048 BOGUS "x.bin" 0\r\n'
    '  RW 2048 BOGUS "x.bin" 0  # c\n'
    'RW +2048 FLAT "x.bin" 0\n'
    'RW 0x800 FLAT "x.bin" 0\n'
    'RW abc FLAT "x.bin" 0\n'
    'RW 0 FLAT "x.bin" 0\n'
    'RW -5 FLAT "x.bin" 0\n'
    'RW 0 FLAT "x.bin"\n'
    'RW -1 SPARSE "x.bin" 5\n'
    'RW 2048 ZERO\n'
    'RW 2048 FLAT x.bin 0\n'
    'RW 2048 FLAT "" 0\n'
    'RW 2048 FLAT "x.bin\n'
    'RW 2048 FLAT"x.bin" 0\n'
    'RWXXXXXXXXXX 2048 FLAT "x.bin" 0\n'
    'RW 2048 FLATXXXXXXXX "x.bin" 0\n'
    'RW\n2048 FLAT "x.bin" 0\n'
    'RW\n2048 BOGUS "x.bin" 0\n'
    'RW 2048 FLAT "x.bin"\n0\n'
    '\nRW 2048 FLAT "x.bin" 0\n'
    '\n\n\nRW 2048 FLAT "x.bin" 0\n'
    '\nRW 2048 BOGUS "x.bin" 0\n'
    'RW 2048 FLAT "x.bin" 0 \n  \n\t\n'
    'RW 2048 FLAT "x.bin" 0\n#\n\nRW 1024 FLAT "x.bin" 2048\n'
)
n=0
for l in "${lines[@]}"; do
    n=$((n + 1))
    # shellcheck disable=SC2059
    printf "$head$l$tail" >sub/t$n.vmdk
    both "i$n" info --output=json sub/t$n.vmdk; same "i$n"
    both "m$n" map --output=json sub/t$n.vmdk; same "m$n"
done
# The cases really differ: some open, some are invalid, some lose the x extent.
grep -q 'Invalid extent line: RW 2048 FLAT "x.bin"$' q.i10.err || fail "no invalid-line case"
grep -q '"virtual-size": 4194304' q.i45.out || fail "blank lines did not repeat the extent"
finish
