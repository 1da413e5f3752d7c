#!/bin/bash
# make demo: a guided tour of dimg on a small sample disk, next to qemu-img.
# Usage: scripts/demo.sh [path/to/dimg]   (make demo passes build/dimg)
# Works in ./demo/ (re-created each run); never fails on a subcommand that is
# not finished yet: it prints a note and goes on.
set -u
DIMG=${1:-build/dimg}
case $DIMG in /*) ;; *) DIMG=$PWD/$DIMG ;; esac
if [ ! -x "$DIMG" ]; then
    echo "demo: $DIMG not found; run 'make' first" >&2
    exit 1
fi
QEMU_IMG=$(command -v qemu-img || true)
D=$PWD/demo
rm -rf "$D"
mkdir -p "$D"
cd "$D" || exit 1

bold=""; dim=""; off=""
if [ -t 1 ]; then bold=$(printf '\033[1m'); dim=$(printf '\033[2m'); off=$(printf '\033[0m'); fi
heading() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
say() { printf '%s%s%s\n' "$dim" "$*" "$off"; }

# run TAG TOOL ARGS...: show the command, its output and a note on failure.
run() {
    local tag=$1 tool=$2; shift 2
    local name=dimg; [ "$tool" = "$QEMU_IMG" ] && name=qemu-img
    printf '$ %s %s\n' "$name" "$*"
    "$tool" "$@" >"$tag.out" 2>"$tag.err"
    local rc=$?
    echo "$rc" >"$tag.rc"
    cat "$tag.out"
    sed "s/^/  /" "$tag.err" >&2
    [ "$rc" -eq 0 ] || say "  (exit status $rc${name:+ from $name})"
    return 0
}

# same_as_qemu TAG ARGS...: run qemu-img with the same arguments and say whether
# stdout and the exit status match dimg's (the diff is shown when they do not).
same_as_qemu() {
    local tag=$1; shift
    [ -n "$QEMU_IMG" ] || return 0
    "$QEMU_IMG" "$@" >"q.$tag.out" 2>"q.$tag.err"
    echo $? >"q.$tag.rc"
    if grep -q 'not implemented' "$tag.err"; then
        say "  (not implemented in this build yet; qemu-img $* prints:)"
        head -12 "q.$tag.out" | sed 's/^/    /'
    elif cmp -s "$tag.out" "q.$tag.out" && cmp -s "$tag.rc" "q.$tag.rc"; then
        say "  qemu-img $*: identical output and exit status"
    else
        say "  qemu-img $* differs (exit $(cat "q.$tag.rc") vs dimg $(cat "$tag.rc")):"
        diff -u --label qemu-img --label dimg "q.$tag.out" "$tag.out" | head -25 | sed 's/^/    /'
    fi
}

heading "The sample disk"
say "64 MiB raw file: random data, text, explicitly written zeros and holes"
python3 - disk.raw <<'PY'
import random, sys
MiB = 1 << 20
r = random.Random(42)
with open(sys.argv[1], "wb") as f:
    f.truncate(64 * MiB)
    f.seek(1 * MiB); f.write(r.randbytes(4 * MiB))                  # data
    words = b"disk image block cluster extent sector qcow2 raw data zero hole ".split()
    text = b" ".join(r.choice(words) for _ in range(400000))[:3 * MiB]
    f.seek(16 * MiB); f.write(text)                                   # text
    f.seek(32 * MiB); f.write(bytes(4 * MiB))                         # explicit zeros
    f.seek(48 * MiB + 4096); f.write(r.randbytes(64 * 1024))          # unaligned small extent
    f.seek(64 * MiB - 65536); f.write(r.randbytes(65536))             # data at the end
PY
ls -ls disk.raw
say "(first column: KiB really allocated; the rest of the 64 MiB are holes)"

heading "1. info: what is this image?"
run info "$DIMG" info disk.raw
same_as_qemu info info disk.raw

heading "2. info --output=json: the same for scripts"
run infoj "$DIMG" info --output=json disk.raw
same_as_qemu infoj info --output=json disk.raw

heading "3. map: which ranges hold data, which read as zeros"
run map "$DIMG" map disk.raw
same_as_qemu map map disk.raw
run mapj "$DIMG" map --output=json disk.raw
same_as_qemu mapj map --output=json disk.raw

heading "4. convert: copy to another raw file (zeros stay sparse)"
run convert "$DIMG" convert -O raw disk.raw copy.raw
if [ -e copy.raw ]; then
    ls -ls disk.raw copy.raw
    cmp -s disk.raw copy.raw && say "  copy.raw has the same bytes as disk.raw"
fi
if [ -n "$QEMU_IMG" ]; then
    "$QEMU_IMG" convert -O raw disk.raw q-copy.raw 2>/dev/null &&
        say "  qemu-img's copy allocates $(du -k q-copy.raw | cut -f1) KiB, dimg's $( [ -e copy.raw ] && du -k copy.raw | cut -f1 || echo '-') KiB"
fi

heading "5. compare: are two images the same to a guest?"
if [ ! -e copy.raw ] && [ -e q-copy.raw ]; then
    say "(using qemu-img's copy, since dimg convert did not produce one)"
    mv q-copy.raw copy.raw
fi
if [ -e copy.raw ]; then
    run compare "$DIMG" compare disk.raw copy.raw
    same_as_qemu compare compare disk.raw copy.raw
    say "Now change one byte of the copy at 20 MiB and compare again:"
    printf 'X' | dd of=copy.raw bs=1 seek=$((20 * 1024 * 1024)) conv=notrunc status=none
    run compare2 "$DIMG" compare disk.raw copy.raw
    same_as_qemu compare2 compare disk.raw copy.raw
    say "  (exit status 1 means 'different'; 2 would mean an error)"
else
    say "  (skipped: convert did not produce copy.raw)"
fi

heading "6. create and measure"
run create "$DIMG" create -f raw new.raw 1G
ls -ls new.raw 2>/dev/null
run measure "$DIMG" measure -O raw disk.raw
same_as_qemu measure measure -O raw disk.raw

heading "7. qcow2: the format VM disks usually live in"
run toqcow2 "$DIMG" convert -O qcow2 disk.raw disk.qcow2
run info2 "$DIMG" info disk.qcow2
same_as_qemu info2 info disk.qcow2
if [ -n "$QEMU_IMG" ] && [ -e disk.qcow2 ]; then
    say "  qemu-img check on dimg's qcow2:"
    "$QEMU_IMG" check disk.qcow2 | sed 's/^/    /'
    "$QEMU_IMG" compare -q disk.raw disk.qcow2 && say "  qemu-img compare: same guest bytes as disk.raw"
fi
say "Compressed (every core compresses; qemu can read the result):"
run toqcow2c "$DIMG" convert -c -O qcow2 disk.raw small.qcow2
ls -ls disk.qcow2 small.qcow2 2>/dev/null
say "An overlay: a new image that stores only what changes on top of disk.qcow2:"
run overlay "$DIMG" create -f qcow2 -b disk.qcow2 -F qcow2 vm1.qcow2
run chain "$DIMG" info --backing-chain vm1.qcow2
run measure2 "$DIMG" measure -O qcow2 disk.raw
same_as_qemu measure2 measure -O qcow2 disk.raw

heading "Done"
say "Files are in $D.  Next: 'make check' runs every test against qemu-img;"
say "'dimg --help' lists the subcommands; 'make bench' times dimg against qemu-img."
exit 0
