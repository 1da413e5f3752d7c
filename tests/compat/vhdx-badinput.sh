#!/bin/bash
# Damaged VHDX images: dimg must fail as qemu-img does (message, exit code)
# without touching the file, or, where qemu-img still opens them, read the
# same guest bytes.
. "$TEST_LIB"
requires qemu-img qemu-io python3
. "$(dirname "$0")/vhdx-common.inc"

# 10 MiB, 8 MiB blocks: block 0 present at 8 MiB, the file ends at 16 MiB.
# Log at 1 MiB, BAT at 2 MiB, metadata at 3 MiB (items at 3 MiB + 64 KiB).
"$QEMU_IMG" create -q -f vhdx b.vhdx 10M
"$QEMU_IO" -f vhdx -c "write -P 0xab 4k 4k" -c "write -P 0xcd 5M 4k" b.vhdx >/dev/null

n=0
judge() { # label
    local sum
    sum=$(md5sum <x.vhdx)
    both "bad$n" info -f vhdx x.vhdx; same "bad$n"
    both "check$n" check x.vhdx
    # Known gap: qemu-img check opens damaged images in a check mode;
    # cmd-check.c does not pass DIMG_OPEN_CHECK yet, so dimg refuses them.
    if [ "$(cat "q.check$n.rc")" != 2 ] || [ "$(cat "d.check$n.rc")" != 1 ]; then
        same_out "check$n"
    fi
    [ "$(md5sum <x.vhdx)" = "$sum" ] || fail "$1: dimg changed the image"
    if [ "$(cat "d.bad$n.rc")" != 0 ]; then
        [ "$(wc -l <"d.bad$n.err")" -le 2 ] || fail "$1: more than an error line"
        grep -q "x.vhdx" "d.bad$n.err" || fail "$1: the error does not name the file"
    fi
    # Where qemu-img reads the image, the guest bytes (or the failure) agree.
    run_as "q.cv$n" "$QEMU_IMG" convert -f vhdx -O raw x.vhdx q.raw
    run_as "d.cv$n" "$DIMG" convert -f vhdx -O raw x.vhdx d.raw
    cmp -s "q.cv$n.rc" "d.cv$n.rc" || fail "$1: convert exit codes differ"
    if [ "$(cat "q.cv$n.rc")" = 0 ]; then
        cmp -s q.raw d.raw || fail "$1: guest bytes differ"
    fi
    rm -f q.raw d.raw
}
# Each line: offset ("cur+N": in the current header), bytes, "fix" to
# recompute the header and region table checksums.
DAMAGE=$(cat <<'LIST'
0 00
cur+0 00 fix
cur+64 0100 fix
cur+66 0200 fix
cur+68 00000100 fix
cur+72 0000000000000000 fix
cur+72 0000010000000000 fix
cur+72 0000000100000000 fix
0x30000 00 fix
0x30004 00
0x40004 00
0x30008 00080000 fix
0x30008 01000000 fix
0x30008 00000000 fix
0x30010 00 fix
0x3002c 01000000 fix
0x30020 0000100000000000 fix
0x30020 0000000000000000 fix
0x30020 0000000001000000 fix
0x30028 00000000 fix
0x30028 00002000 fix
0x30048 00000000 fix
0x30040 0000200000000000 fix
0x30008 03 fix
0x30008 03000000aabbccddeeff00112233445566778899000050000000000000001000010000000 fix
0x300000 00
0x30000a 0000
0x30000a 0008
0x300020 00
0x300060 00
0x300030 00000000
0x300030 0000ffff
0x300030 00001000
0x300038 ffffffff
0x310000 00000000
0x310000 00000200
0x310000 00000001
0x310000 00000020
0x310004 01000000
0x310004 02000000
0x310004 04000000
0x310008 0000000000000000
0x310008 0100000000000000
0x310008 0000000000400000
0x310008 ffffffffffffffff
0x310020 00100000
0x310024 00000000
0x200000 0700800000000000
0x200000 0400800000000000
0x200000 0500800000000000
0x200000 0100800000000000
0x200000 0600000000000000
0x200000 06000000000f0000
0x200008 0600000001000000
0x200008 0600800000000000
LIST
)
# All damaged copies are made by one python run (its start-up is slow):
# xN.vhdx for line N.
python3 -c "$VHDX_PY"'
import shutil
for n, line in enumerate(sys.stdin.read().split("\n"), 1):
    if not line.strip():
        continue
    off, hx, *fx = line.split()
    out = "x%d.vhdx" % n
    shutil.copyfile("b.vhdx", out)
    with open(out, "r+b") as fh:
        off = current_header(fh) + int(off[4:], 0) if off.startswith("cur+") else int(off, 0)
        fh.seek(off); fh.write(bytes.fromhex(hx))
        if fx:
            fix(fh)
' <<<"$DAMAGE"
while read -r off hex fix; do
    n=$((n + 1))
    mv "x$n.vhdx" x.vhdx
    judge "$off=$hex"
done <<<"$DAMAGE"
# Both headers damaged.
n=$((n + 1))
cp b.vhdx x.vhdx
vhdx_edit x.vhdx 0x10000 00
vhdx_edit x.vhdx 0x20000 00
judge "no header"
# Both headers valid with one sequence number but different contents.
n=$((n + 1))
cp b.vhdx x.vhdx
vhdx_edit x.vhdx 0x10008 0900000000000000
vhdx_edit x.vhdx 0x20008 0900000000000000 fix
judge "equal sequence numbers"
# Truncated copies.
for len in 0 100 70000 200000 2097152 3145728 3211264 8388608 9437184; do
    n=$((n + 1))
    head -c "$len" b.vhdx >x.vhdx
    judge "truncated to $len"
done
# A differencing image (has-parent flag and a parent locator item):
# qemu-img 7.2 does not support them.
n=$((n + 1))
cp b.vhdx x.vhdx
python3 - <<'PY'
import struct, uuid
with open("x.vhdx", "r+b") as f:
    f.seek(0x30000a); f.write(struct.pack("<H", 6))
    f.seek(0x300020 + 5 * 32)
    f.write(uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").bytes_le +
            struct.pack("<IIII", 0x10100, 64, 6, 0))
    f.seek(0x310004); f.write(struct.pack("<I", 2))
    f.seek(0x310100)
    f.write(uuid.UUID("b04aefb7-d19e-4a81-b789-25b8e9445913").bytes_le + bytes(4))
PY
judge "differencing"
grep -q "Operation not supported" "d.bad$n.err" || fail "differencing: not refused as unsupported"
# Writes: into a block whose state (4, 7) leaves its data unknown they fail,
# as in qemu-img.  A BAT region not in whole 4 KiB sectors (qemu-img's BAT
# update spills over what follows it) and a log too small for one entry
# (qemu-img fails the write) are refused before the file changes.
head -c 10M /dev/urandom >wsrc.raw
truncate -s 10M wzero.raw
w=0
while read -r off hex fix; do
    w=$((w + 1))
    cp b.vhdx wq.vhdx
    vhdx_edit wq.vhdx "$off" "$hex" $fix
    cp wq.vhdx wd.vhdx
    sum=$(md5sum <wd.vhdx)
    "$QEMU_IO" -f vhdx -c "write -P 0xcd 512 512" wq.vhdx >q.w$w.out 2>&1
    run_as "d.w$w" "$DIMG" convert -n -f raw -O vhdx wsrc.raw wd.vhdx
    [ "$(cat "d.w$w.rc")" = 1 ] || fail "write $off=$hex: dimg exit $(cat "d.w$w.rc")"
    # zero writes are refused the same way
    run_as "d.wz$w" "$DIMG" convert -n -f raw -O vhdx wzero.raw wd.vhdx
    [ "$(cat "d.wz$w.rc")" = 1 ] || fail "zero write $off=$hex: dimg exit $(cat "d.wz$w.rc")"
    grep -q "wd.vhdx" "d.w$w.err" || fail "write $off=$hex: the error does not name the file"
    case $off in
    0x200000) grep -q "write failed" q.w$w.out || fail "setup: qemu-io wrote into state $hex" ;;
    *) [ "$(md5sum <wd.vhdx)" = "$sum" ] || fail "write $off=$hex: dimg changed the image" ;;
    esac
done <<'LIST'
0x200000 0700800000000000
0x200000 0400800000000000
0x30028 80000000 fix
cur+68 00000000 fix
LIST
# A BAT region that starts where the file ends (qemu-img opens it): new blocks
# go past it, not on top of it.
cp b.vhdx be.vhdx
[ "$(stat -c %s be.vhdx)" = 16777216 ] || fail "setup: b.vhdx is not 16 MiB"
vhdx_edit be.vhdx 0x30020 0000000100000000 fix
"$DIMG" convert -n -f raw -O vhdx wsrc.raw be.vhdx || fail "BAT past the end: write failed"
"$QEMU_IMG" check -q be.vhdx || fail "BAT past the end: check after dimg's writes"
"$QEMU_IMG" compare -q -f raw -F vhdx wsrc.raw be.vhdx || fail "BAT past the end: data differ"
finish
