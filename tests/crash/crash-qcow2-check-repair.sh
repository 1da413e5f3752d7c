#!/bin/bash
# Kill dimg with SIGKILL at many instants during check -r leaks / -r all on a
# big image with refcount errors and leaks.  Afterwards the image must be no
# worse than before: qemu-img check finds no more corruptions than it did
# (leaks only when it started with leaks only), the guest data is unchanged,
# and a second, uninterrupted dimg check -r all leaves it clean.
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-5}

# 4 KiB clusters over 96 MiB of data: ~25000 refcounts to verify and fix.
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=4k img.qcow2 256M
"$QEMU_IO" -c "write -P 1 0 48M" -c "write -P 2 128M 48M" img.qcow2 >/dev/null

# Damage every 7th data cluster: "low" sets its refcount to 0 (corruption:
# refcount too low), "leak" drops its L2 entry (the cluster leaks; the guest
# then reads the backing data, zeros, there).
damage() { # image mode(low|high)
    python3 - "$1" "$2" <<'PY'
import struct, sys
path, mode = sys.argv[1], sys.argv[2]
with open(path, "r+b") as f:
    h = f.read(104)
    cs = 1 << struct.unpack_from(">I", h, 20)[0]
    l1_size, l1_off = struct.unpack_from(">IQ", h, 36)
    rt_off = struct.unpack_from(">Q", h, 48)[0]
    f.seek(l1_off)
    l1 = struct.unpack(f">{l1_size}Q", f.read(8 * l1_size))
    per_rb = cs // 2
    hosts = []
    for e in l1:
        l2 = e & 0x00fffffffffffe00
        if not l2:
            continue
        f.seek(l2)
        ents = struct.unpack(f">{cs // 8}Q", f.read(cs))
        hosts += [(l2 + 8 * i, x & 0x00fffffffffffe00) for i, x in enumerate(ents)
                  if x & 0x00fffffffffffe00]
    for pos, host in hosts[::7]:
        if mode == "leak":
            f.seek(pos)
            f.write(bytes(8))
            continue
        c = host // cs
        f.seek(rt_off + 8 * (c // per_rb))
        rb = struct.unpack(">Q", f.read(8))[0] & ~0x1ff
        f.seek(rb + 2 * (c % per_rb))
        f.write(struct.pack(">H", 0))
PY
}
cp img.qcow2 leaky.qcow2
damage leaky.qcow2 leak
cp img.qcow2 bad.qcow2
damage bad.qcow2 low

count() { # image: "corruptions leaks exit"
    "$QEMU_IMG" check --output=json "$1" >c.json 2>/dev/null
    local rc=$?
    python3 -c "import json; d = json.load(open('c.json')); print(d.get('corruptions', 0), d.get('leaks', 0), $rc)" 2>/dev/null ||
        echo "x x $rc"
}
read -r leaky_c leaky_l _ <<<"$(count leaky.qcow2)"
read -r bad_c _ _ <<<"$(count bad.qcow2)"
[ "$leaky_c" = 0 ] && [ "$leaky_l" -gt 1000 ] || fail "setup: leaky image has $leaky_c corruptions, $leaky_l leaks"
[ "$bad_c" -gt 1000 ] || fail "setup: damaged image has $bad_c corruptions"
"$QEMU_IMG" convert -O raw leaky.qcow2 leaky.raw
"$QEMU_IMG" convert -O raw bad.qcow2 bad.raw


# How long an uninterrupted repair takes here, so that kills spread over it.
cp bad.qcow2 t.qcow2
start=$(date +%s%N)
"$DIMG" check -q -r all t.qcow2 >/dev/null 2>&1
span=$(python3 -c "print(max(0.05, ($(date +%s%N) - $start) / 1e9))")
# Delays drawn up front: a python start between launch and kill would eat them.
read -r -a delays <<<"$(python3 -c "import random; random.seed(7); print(*(round(random.uniform(0, $span), 3) for _ in range(3 * $ROUNDS)))")"

killed=0 k=0
for i in $(seq 1 "$ROUNDS"); do
    for kind in "leaky leaks" "leaky all" "bad all"; do
        set -- $kind
        cp "$1.qcow2" t.qcow2
        "$DIMG" check -q -r "$2" t.qcow2 >/dev/null 2>&1 &
        pid=$!
        sleep "${delays[$((k++))]}"
        kill -9 $pid 2>/dev/null && killed=$((killed + 1))
        wait $pid 2>/dev/null
        read -r c l rc <<<"$(count t.qcow2)"
        label="round $i, $1 image, -r $2"
        case $1 in
        leaky) { [ "$rc" = 0 ] || [ "$rc" = 3 ]; } || fail "$label: qemu-img check exit $rc" ;;
        bad) { [ "$c" != x ] && [ "$c" -le "$bad_c" ]; } || fail "$label: $c corruptions (was $bad_c), exit $rc" ;;
        esac
        "$QEMU_IMG" compare -q "$1.raw" t.qcow2 || fail "$label: guest data changed"
        "$DIMG" check -q -r all t.qcow2 >/dev/null 2>&1
        "$QEMU_IMG" check -q t.qcow2 || fail "$label: not clean after a full repair"
    done
done
# A run where every kill came too late tested nothing.
[ $killed -gt 0 ] || fail "no kill landed while dimg was repairing"
echo "$killed of $((ROUNDS * 3)) kills landed mid-repair"
finish
