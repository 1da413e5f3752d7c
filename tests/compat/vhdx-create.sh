#!/bin/bash
# vhdx create: the "Formatting" line, option errors, defaults and rounding as
# qemu-img prints and applies them, and images laid out like qemu-img's (same
# regions, metadata items and BAT; only GUIDs, sequence numbers, the creator
# string and checksums differ), which qemu-img reads and checks clean.
. "$TEST_LIB"
requires qemu-img python3
. "$(dirname "$0")/vhdx-common.inc"

# The layout, without what is random: region table, metadata entries and
# items (but the disk GUID), the whole BAT, file size and allocated size.
# same_layout A B: exit 1 (and the differing lines) when they differ.
same_layout() {
    python3 -c "$VHDX_PY"'
import mmap, hashlib
def layout(p):
    f = open(p, "rb")
    d = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    out = ["size %d blocks %d" % (len(d), os.fstat(f.fileno()).st_blocks)]
    out.append(d[0:8].hex() + " " + d[0x30000:0x30000 + 16 + 64].hex())
    h = current_header(f)
    out.append("log " + d[h + 64:h + 80].hex())
    bo, bl = struct.unpack_from("<QI", d, 0x30010 + 16)
    mo = struct.unpack_from("<Q", d, 0x30030 + 16)[0]
    out.append(d[mo:mo + 32 + 5 * 32].hex())
    items = d[mo + 0x10000:mo + 0x10000 + 40]
    out.append(items[:16].hex() + " " + items[32:40].hex())
    out.append("bat " + hashlib.sha1(d[bo:bo + bl]).hexdigest())
    return out
a, b = layout(sys.argv[1]), layout(sys.argv[2])
for x, y in zip(a, b):
    if x != y:
        print("-", x[:200], "\n+", y[:200], file=sys.stderr)
sys.exit(a != b)
' "$1" "$2"
}

n=0
one() {
    local opts=$1 size=$2
    n=$((n + 1))
    rm -f t.vhdx q.vhdx d.vhdx
    run_as "q.c$n" "$QEMU_IMG" create -f vhdx ${opts:+-o "$opts"} t.vhdx "$size"
    [ -e t.vhdx ] && mv t.vhdx q.vhdx
    run_as "d.c$n" "$DIMG" create -f vhdx ${opts:+-o "$opts"} t.vhdx "$size"
    [ -e t.vhdx ] && mv t.vhdx d.vhdx
    sed -i 's/^dimg: /qemu-img: /' "d.c$n.err"
    same "c$n"
    if [ -e q.vhdx ] || [ -e d.vhdx ]; then
        [ -e q.vhdx ] && [ -e d.vhdx ] || { fail "[$opts] $size: only one tool created a file"; return; }
        # (A create qemu-img fails part way leaves a partial file: not compared.)
        [ "$(cat "q.c$n.rc")" = 0 ] || return 0
        same_layout q.vhdx d.vhdx || fail "[$opts] $size: layout differs"
        "$QEMU_IMG" check -q d.vhdx || fail "[$opts] $size: qemu-img check fails on dimg's image"
    fi
}
for size in 0 1000 1G 1025M 100G 101G 64T 65T; do
    one "" "$size"
done
for size in 1000 20M; do
    one "subformat=fixed" "$size"
    one "subformat=fixed,block_state_zero=off" "$size"
    one "block_state_zero=off" "$size"
done
for opts in "block_size=1M" "block_size=2M,log_size=3M" "block_size=3M" "block_size=100K" \
    "block_size=1.5M" "block_size=512M" "block_size=32M,log_size=2M" \
    "log_size=0" "log_size=1" "log_size=3.5M" "log_size=4G" "log_size=4095M" \
    "subformat=bad" "subformat=dynamic" "block_state_zero=xx" "block_state_zero=on" \
    "preallocation=full" "preallocation=metadata" "preallocation=xyz" \
    "subformat=fixed,block_state_zero=on,nocow=on,preallocation=off,extent_size_hint=1M" \
    "block_size=abc" "cluster_size=64k" "subformat=fixed,block_size=1M,block_state_zero=off"; do
    one "$opts" 30M
done
one "block_size=1M" 0
one "block_size=256M" 0

both help1 create -f vhdx -o help; same help1
both help2 create -f vhdx t.vhdx -o help; same help2
both nosize create -f vhdx t.vhdx; same nosize

# What dimg creates, qemu-img and dimg report alike.
"$DIMG" create -q -f vhdx -o subformat=fixed f.vhdx 5M
"$DIMG" create -q -f vhdx d.vhdx 5000000
for f in f.vhdx d.vhdx; do
    both "ck-$f" check --output=json "$f"; same "ck-$f"
    both "in-$f" info --output=json "$f"; same "in-$f"
    both "map-$f" map --output=json "$f"; same "map-$f"
done
finish
