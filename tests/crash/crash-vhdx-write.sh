#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes VHDX images:
# convert to a new dynamic or fixed image, and convert -n over an image
# holding old data in part of it (blocks rewritten and appended).  qemu-img
# check must find no corruption, after replaying the log if the kill left
# one to replay (as qemu does on its next writable open), and every sector
# must hold old or new data.  Kills at each write of a metadata commit
# (strace) cover the log's instants exactly.
. "$TEST_LIB"
requires qemu-img qemu-io python3
. "$(dirname "$0")/crash-write-common.inc"

make_crash_source src.raw

# The image must check clean; a log left to replay is replayed first.
check_vhdx() { # image label
    if "$QEMU_IMG" info "$1" 2>&1 | grep -q "needs to be replayed"; then
        "$QEMU_IMG" check -r all "$1" >check.out 2>&1 ||
            { fail "$2: qemu-img cannot replay the log"; head -5 check.out >&2; }
    fi
    "$QEMU_IMG" check "$1" >check.out 2>&1 || { fail "$2: qemu-img check exit $?"; head -5 check.out >&2; }
}

subformats=(dynamic fixed)
for i in $(seq 1 "$ROUNDS"); do
    sub=${subformats[$((i % 2))]}
    rm -f new.vhdx
    run_and_kill "$i" convert -t writeback -r "$RATE" -O vhdx -o subformat=$sub,block_size=1M \
        src.raw new.vhdx
    # A kill before the headers are written leaves no VHDX at all.
    if [ -s new.vhdx ] && "$QEMU_IMG" info -f vhdx new.vhdx >/dev/null 2>&1 ||
        "$QEMU_IMG" info -f vhdx new.vhdx 2>&1 | grep -q "needs to be replayed"; then
        check_vhdx new.vhdx "convert $sub round $i"
        guest_sectors_from "convert $sub round $i" new.vhdx zero.raw src.raw
    fi
done

"$QEMU_IMG" create -q -f vhdx -o block_size=1M old.vhdx 16M
"$QEMU_IO" -f vhdx -c "write -P 0xaa 0 12M" old.vhdx >/dev/null
"$QEMU_IMG" convert -O raw old.vhdx old.raw
for i in $(seq 1 "$ROUNDS"); do
    cp old.vhdx t.vhdx
    run_and_kill "$((i + 200))" convert -n -t writeback -r "$RATE" -O vhdx src.raw t.vhdx
    check_vhdx t.vhdx "convert -n round $i"
    guest_sectors_from "convert -n round $i" t.vhdx old.raw src.raw
done

# Kills at the N-th write: the data, the header updates, the log entry, the
# BAT sector and the header updates after it.
if command -v strace >/dev/null 2>&1; then
    for N in $(seq 1 16); do
        cp old.vhdx t.vhdx
        strace -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:signal=KILL:when=$N \
            "$DIMG" convert -n -t writeback -O vhdx src.raw t.vhdx >/dev/null 2>&1
        check_vhdx t.vhdx "kill at write $N"
        guest_sectors_from "kill at write $N" t.vhdx old.raw src.raw
    done
fi
finish
