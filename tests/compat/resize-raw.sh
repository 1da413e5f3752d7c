#!/bin/bash
# resize on raw images: grow, --shrink, relative sizes, preallocation, output,
# argument and size errors, and locking match qemu-img.
. "$TEST_LIB"
requires qemu-img

make_sample_raw base16M.raw 16M
truncate -s 1M base1M.raw
head -c 1001 /dev/urandom >baseodd.raw
n=0
# Resize a copy of base$BASE.raw with each tool and compare output and result.
# Usage: check_resize BASE args...   (the image is called img.raw)
check_resize() {
    local base=$1; shift
    n=$((n + 1))
    cp --sparse=always "base$base.raw" img.raw
    run_as "q.r$n" "$QEMU_IMG" resize "$@"
    [ -e img.raw ] && mv img.raw q.raw
    cp --sparse=always "base$base.raw" img.raw
    run_as "d.r$n" "$DIMG" resize "$@"
    [ -e img.raw ] && mv img.raw d.raw
    sed -i 's/^dimg: /qemu-img: /; s/Try .dimg --help./Try '"'"'qemu-img --help'"'"'/' "d.r$n.err"
    same "r$n"
    if [ -e q.raw ] && [ -e d.raw ]; then
        [ "$(stat -c %s q.raw)" = "$(stat -c %s d.raw)" ] || fail "r$n ($*): size differs"
        [ "$(stat -c %b q.raw)" = "$(stat -c %b d.raw)" ] ||
            fail "r$n ($*): allocation differs: $(stat -c %b q.raw) vs $(stat -c %b d.raw)"
        cmp -s q.raw d.raw || fail "r$n ($*): content differs"
    fi
    rm -f q.raw d.raw
}

for args in "20M" "16M" "10M" "--shrink 10M" "+1M" "--shrink -- -1M" \
    "--shrink 999" "1001" "3.5M" \
    "--shrink -16M" "+8E" "--shrink -- -8E" "-- -16E" \
    "18446744073709551615" "9223372035781033985" "9223372035781033984" \
    "foo" "+" "+-1M" \
    "--preallocation=full 20M" "--preallocation=falloc +3M" "--preallocation=off 16M" \
    "--preallocation=metadata 20M" \
    "--preallocation=full --shrink 1M" "--preallocation=full 0" \
    "--preallocation=foo foo" "-q 20M"; do
    # shellcheck disable=SC2086
    check_resize 16M -f raw img.raw $args
done
# Relative sizes start from the size in whole sectors
for args in "+1" "--shrink -- -1" "2000" "--shrink 1000"; do
    # shellcheck disable=SC2086
    check_resize odd -f raw img.raw $args
done
# Probed format: the raw warning comes first
check_resize 16M img.raw 20M
check_resize 16M img.raw 1M
check_resize 16M -q img.raw +1M
check_resize 1M --image-opts driver=raw,file.filename=img.raw 3M
check_resize 1M --image-opts -f raw driver=raw,file.filename=img.raw 3M
check_resize 1M --object secret,id=a,data=b -f raw img.raw 3M
check_resize 1M -f nosuchfmt img.raw 3M
check_resize 1M -f raw missing.raw 3M
check_resize 1M -f raw missing.raw foo
check_resize 1M --preallocation=full --shrink -f raw missing.raw 1M

# Argument errors
for args in "" "img.raw" "-f" "-f raw img.raw" "img.raw -f" "-x img.raw 1M" \
    "img.raw 1M -x" "-U -f raw img.raw 1M" "--shrink" \
    "--preallocation=foo -x img.raw 1M" "-x --preallocation=foo img.raw 1M"; do
    # shellcheck disable=SC2086
    check_resize 1M $args
done

# Locks.  A raw writer (qemu-io -f raw) shares everything: resize succeeds.
if command -v "$QEMU_IO" >/dev/null 2>&1; then
    truncate -s 1M held.raw
    "$QEMU_IO" -f raw -c 'sleep 20000' held.raw >/dev/null 2>&1 &
    holder=$!
    sleep 0.5
    both lockw1 resize -f raw held.raw 2M; same lockw1
    both lockw2 resize -f raw held.raw +1M; same lockw2
    [ "$(stat -c %s held.raw)" = $((4 * 1048576)) ] || fail "resize under a raw writer: wrong size"
    kill "$holder"; wait "$holder" 2>/dev/null
fi
# Someone who does not share "write" (byte 201) or "resize" (byte 203).
if command -v python3 >/dev/null 2>&1; then
    for byte in 201 203; do
        truncate -s 1M held.raw
        python3 - "$byte" <<'PY' &
import fcntl, os, struct, sys, time
fd = os.open("held.raw", os.O_RDONLY)
F_OFD_SETLK = 37
fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, int(sys.argv[1]), 1, 0))
open("locked.%s" % sys.argv[1], "w").close()
time.sleep(20)
PY
        holder=$!
        for _ in $(seq 50); do [ -e "locked.$byte" ] && break; sleep 0.1; done
        both "lock$byte" resize -f raw held.raw 2M; same "lock$byte"
        kill "$holder"; wait "$holder" 2>/dev/null
    done
fi
finish
