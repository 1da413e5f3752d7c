#!/bin/bash
# The VHDX log.  A dirty log left by qemu: read-only opens refuse it with
# qemu-img's message, check -r all and writable opens replay it.  A log
# whose GUID matches no valid entry needs nothing.  And dimg's own log
# entries, left dirty by killing dimg (strace injects SIGKILL at its N-th
# write), are replayed by qemu-img and by dimg to the same, new, contents.
. "$TEST_LIB"
requires qemu-img qemu-io python3 strace
. "$(dirname "$0")/vhdx-common.inc"

"$QEMU_IMG" create -q -f vhdx before.vhdx 20M
cp before.vhdx after.vhdx
"$QEMU_IO" -f vhdx -c "write -P 0x5a 9M 64k" after.vhdx >/dev/null
"$QEMU_IMG" convert -O raw after.vhdx after.raw
vhdx_make_dirty before.vhdx after.vhdx dirty.vhdx

for cmd in "info" "info --output=json" "check" "map" "compare dirty.vhdx after.raw"; do
    tag=${cmd// /_}
    both "ro-$tag" $cmd dirty.vhdx; same "ro-$tag"
done
grep -q "needs to be replayed" d.ro-info.err || fail "the dirty log was not noticed"

# check -r all replays it (one corruption repaired).
cp dirty.vhdx q.vhdx
cp dirty.vhdx d.vhdx
run_as q.rep "$QEMU_IMG" check -r all q.vhdx
run_as d.rep "$DIMG" check -r all d.vhdx
same rep
"$QEMU_IMG" check -q d.vhdx || fail "replayed image does not check clean"
"$QEMU_IMG" compare -q d.vhdx after.raw || fail "check -r all: replay gave other bytes"
# A writable open replays it too.
cp dirty.vhdx w.vhdx
cp after.raw w.raw
printf 'more' | dd of=w.raw bs=1 seek=1000 conv=notrunc status=none
"$DIMG" convert -n -O vhdx w.raw w.vhdx || fail "writing a dirty image failed"
"$QEMU_IMG" check -q w.vhdx || fail "written dirty image does not check clean"
"$QEMU_IMG" compare -q w.vhdx w.raw || fail "written dirty image: other bytes"

# The file shorter than when the log was written: data are missing, so the
# log is not replayed (qemu-img refuses too); dimg leaves the file as it was.
cp dirty.vhdx s.vhdx
truncate -s -4096 s.vhdx
sum=$(md5sum <s.vhdx)
cp s.vhdx sq.vhdx
"$QEMU_IMG" check -r all sq.vhdx >/dev/null 2>&1 && fail "setup: qemu-img replayed a short file"
run_as d.short "$DIMG" check -r all s.vhdx
[ "$(cat d.short.rc)" = 1 ] || fail "short file: dimg check -r all exit $(cat d.short.rc)"
grep -q "s.vhdx" d.short.err || fail "short file: the error does not name the file"
[ "$(md5sum <s.vhdx)" = "$sum" ] || fail "short file: dimg changed it"

# A log GUID no valid entry carries: nothing to replay.
cp before.vhdx g.vhdx
vhdx_edit g.vhdx 0x10030 11111111111111111111111111111111
vhdx_edit g.vhdx 0x20030 11111111111111111111111111111111 fix
both guid info --output=json g.vhdx; same guid
# A damaged entry (checksum) is not replayed either.
cp dirty.vhdx c.vhdx
vhdx_edit c.vhdx 0x101100 ff
both crc info --output=json c.vhdx; same crc
both crcmap compare c.vhdx after.raw; same crcmap

# dimg's own log: kill it at each write of a small convert -n.
"$QEMU_IMG" create -q -f vhdx base.vhdx 16M
printf 'new data' >new.raw
truncate -s 16M new.raw
dirty=0
for N in $(seq 1 12); do
    cp base.vhdx k.vhdx
    strace -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:signal=KILL:when=$N \
        "$DIMG" convert -n -t writeback -O vhdx new.raw k.vhdx >/dev/null 2>&1
    if "$QEMU_IMG" info k.vhdx 2>&1 | grep -q "needs to be replayed"; then
        dirty=$((dirty + 1))
        cp k.vhdx kq.vhdx
        "$QEMU_IMG" check -q -r all kq.vhdx || fail "kill at write $N: qemu-img cannot replay"
        "$QEMU_IMG" compare -q kq.vhdx new.raw || fail "kill at write $N: qemu replay: other bytes"
        "$DIMG" check -q -r all k.vhdx || fail "kill at write $N: dimg cannot replay"
        "$QEMU_IMG" compare -q k.vhdx new.raw || fail "kill at write $N: dimg replay: other bytes"
    else
        "$QEMU_IMG" check -q k.vhdx || fail "kill at write $N: check fails"
        "$QEMU_IMG" compare -q k.vhdx base.vhdx >/dev/null 2>&1 ||
            "$QEMU_IMG" compare -q k.vhdx new.raw ||
            fail "kill at write $N: neither old nor new"
    fi
    # qemu can still write: no header names a log that holds no entry
    "$QEMU_IO" -f vhdx -c "write -P 0x11 1M 4k" k.vhdx 2>&1 | grep -q "failed" &&
        fail "kill at write $N: qemu-io cannot write afterwards"
done
[ "$dirty" -gt 0 ] || fail "no kill left a log to replay"

# A crafted log whose every slot heads an 8 MiB entry (each fails its
# checksum): refused at once (reading every claim whole took minutes, and
# qemu-img still hangs on it).
"$QEMU_IMG" create -q -f vhdx -o log_size=8M o.vhdx 16M
vhdx_edit o.vhdx 0x10030 11111111111111111111111111111111
vhdx_edit o.vhdx 0x20030 11111111111111111111111111111111 fix
python3 -c '
import struct
slot = bytearray(4096)
slot[0:4] = b"loge"
struct.pack_into("<IIQI", slot, 8, 8 << 20, 0, 1, 0)
slot[32:48] = bytes([0x11]) * 16
with open("o.vhdx", "r+b") as f:
    f.seek(1 << 20)
    f.write(bytes(slot) * 2048)
'
run_as d.over timeout 60 "$DIMG" info o.vhdx
[ "$(cat d.over.rc)" = 1 ] || fail "overlapping log: exit $(cat d.over.rc)"
grep -q "o.vhdx" d.over.err || fail "overlapping log: the error does not name the file"
finish
