#!/bin/bash
# Kill dimg with SIGKILL at many instants while it creates, applies and
# deletes internal snapshots of an image with many small clusters (thousands
# of L2 tables and refcount blocks, so each operation lasts a while).  After
# every kill qemu-img check must find at worst leaks (exit 0 or 3, never 2);
# the active data must be unchanged (-c, -d) or be the old or the applied
# snapshot's (-a), and snapshot s0 must still hold its data.
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-8}
python3 - <<'PY'
with open('src.raw', 'wb') as f:
    for i in range(64 * 2048):   # 64 MiB, every 512-byte sector different
        f.write(i.to_bytes(4, 'little') * 128)
PY
"$QEMU_IMG" convert -O qcow2 -o cluster_size=512 src.raw base.qcow2 || fail "setup"
"$QEMU_IMG" snapshot -c s0 base.qcow2 || fail "setup"
"$QEMU_IO" -c "write -P 0x6b 0 2M" -c "write -P 0x7c 40M 2M" base.qcow2 >/dev/null || fail "setup"
"$QEMU_IMG" convert -O raw base.qcow2 active.raw
cp src.raw s0.raw

# How long an uninterrupted run takes, so that kills spread over all of it.
cp base.qcow2 t.qcow2
start=$(date +%s%N)
"$DIMG" snapshot -c timing t.qcow2 || fail "uninterrupted snapshot -c"
dur_ms=$(( ($(date +%s%N) - start) / 1000000 + 20 ))
check_leaky t.qcow2 "uninterrupted create"

delay_for() { python3 -c "import random; random.seed($1); print(round(random.uniform(0, $dur_ms) / 1000, 3))"; }

run_and_kill() { # seed args...
    local seed=$1 delay; shift
    delay=$(delay_for "$seed") # before the start: python3 itself takes a while
    "$DIMG" "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}

same_data() { # raw-file label [-l snapshot]
    local want=$1 label=$2; shift 2
    "$QEMU_IMG" convert "$@" -O raw t.qcow2 t.raw 2>/dev/null || { fail "$label: unreadable"; return 1; }
    cmp -s t.raw "$want"
}

# snapshot NAME exists in t.qcow2?
has_snap() { "$QEMU_IMG" snapshot -l t.qcow2 | awk 'NR > 2 { print $2 }' | grep -qx "$1"; }

kills=0 cut=0 leaky=0
for i in $(seq 1 "$ROUNDS"); do
    for action in c a d; do
        cp base.qcow2 t.qcow2
        case $action in
        c) run_and_kill "$i" snapshot -c new t.qcow2 ;;
        a) run_and_kill "$((i + 100))" snapshot -a s0 t.qcow2 ;;
        d) run_and_kill "$((i + 200))" snapshot -d s0 t.qcow2 ;;
        esac
        kills=$((kills + 1))
        label="snapshot -$action round $i"
        check_leaky t.qcow2 "$label"
        rc=$?
        [ $rc != 3 ] || leaky=$((leaky + 1))
        [ $rc = 0 ] || [ $rc = 3 ] || continue
        # Did the kill land before the operation completed?
        case $action in
        c) has_snap new || cut=$((cut + 1)) ;;
        d) ! has_snap s0 || cut=$((cut + 1)) ;;
        a) same_data active.raw "$label" && cut=$((cut + 1)) ;;
        esac
        case $action in
        a) same_data active.raw "$label" || same_data s0.raw "$label" ||
               fail "$label: active data is neither the old nor the snapshot's" ;;
        *) same_data active.raw "$label" || fail "$label: active data changed" ;;
        esac
        if has_snap s0; then
            same_data s0.raw "$label" -l s0 || fail "$label: snapshot s0 changed"
        elif [ $action != d ]; then
            fail "$label: snapshot s0 vanished"
        fi
        if [ $action = c ] && has_snap new; then
            same_data active.raw "$label" -l new || fail "$label: the new snapshot has other data"
        fi
        # The interrupted image stays usable: finish the operation now.
        case $action in
        c) has_snap new || "$DIMG" snapshot -c new t.qcow2 || fail "$label: retry failed" ;;
        d) ! has_snap s0 || "$DIMG" snapshot -d s0 t.qcow2 || fail "$label: retry failed" ;;
        a) "$DIMG" snapshot -a s0 t.qcow2 || fail "$label: retry failed" ;;
        esac
        "$QEMU_IMG" check t.qcow2 >/dev/null 2>&1 || fail "$label: not clean after the retry"
    done
done
echo "$kills kills ($cut before the operation completed, $leaky leaving leaks), runs of about $dur_ms ms"
# Kills that all land after the end test nothing.
[ "$cut" -gt 0 ] || fail "no kill interrupted an operation"
finish
