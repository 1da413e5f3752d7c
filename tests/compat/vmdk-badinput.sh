#!/bin/bash
# Hostile VMDK descriptors and sparse headers: dimg prints one clear line
# naming the file and exits 1.  Where qemu-img reports an error, the texts
# must match; where it aborts (descriptors without extents), dimg must not.
. "$TEST_LIB"
requires qemu-img

truncate -s 1M f.img
desc() { # createType extent-lines file
    printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="%s"\n\n%b\n' \
        "$1" "$2" >"$3"
}
desc monolithicFlat 'RW 2048 FLAT "missing.img" 0' missing.vmdk
desc monolithicFlat 'RW 99999999999999999 FLAT "f.img" 0' huge.vmdk
desc fooType 'RW 2048 FLAT "f.img" 0' badcreate.vmdk
desc monolithicFlat 'RW 2048 SPARSE "f.img"' notsparse.vmdk
printf '# Disk DescriptorFile\nversion=1\n' >nocreate.vmdk
# an unknown type is an invalid line; junk after the offset is ignored (and
# the blank line before the extent line makes qemu read it twice)
desc monolithicFlat 'RW 2048 FOO "f.img" 0' badtype.vmdk
desc monolithicFlat 'RW 2048 FLAT "f.img" 0 junk' trailing.vmdk

# qemu-img gives a message (or opens it): the same text
for f in missing huge badcreate notsparse nocreate badtype trailing; do
    both "$f" info "$f.vmdk"; same "$f"
    both "c$f" convert -O raw "$f.vmdk" out.raw; same "c$f"
done

# qemu-img aborts on these (no usable extent): dimg exits 1 with one line
desc monolithicFlat '' noext.vmdk
desc monolithicFlat 'RW abc FLAT "f.img" 0' badnum.vmdk
desc monolithicFlat 'RW 2048 FLAT f.img 0' noquote.vmdk
for f in noext badnum noquote; do
    run_as "d.$f" "$DIMG" info "$f.vmdk"
    [ "$(cat "d.$f.rc")" = 1 ] || fail "$f: exit $(cat "d.$f.rc"), expected 1"
    [ "$(wc -l <"d.$f.err")" = 1 ] || fail "$f: expected one error line"
    grep -q "^dimg: Could not open '$f.vmdk': " "d.$f.err" || fail "$f: message does not name the file"
done

# Sparse headers with absurd fields (an image made by qemu-img, then patched)
patch_le() { # file offset bytes(hex)
    printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
n=0
for p in "12 ffffffffffffff7f" "20 00000000" "20 00000001" "44 00000000" "44 00001000" \
    "56 ffffff7f" "4 09000000" "0 00000000"; do
    n=$((n + 1))
    "$QEMU_IMG" create -q -f vmdk s$n.vmdk 4M
    # shellcheck disable=SC2086
    patch_le s$n.vmdk $p
    run_as "d.s$n" "$DIMG" convert -f vmdk -O raw s$n.vmdk out.raw
    rc=$(cat "d.s$n.rc")
    [ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "s$n ($p): exit $rc"
    [ "$rc" = 0 ] || [ "$(wc -l <"d.s$n.err")" = 1 ] || fail "s$n ($p): expected one error line"
done
finish
