#!/bin/bash
# dd on raw images: output size (count, skip, bs, odd lengths), content,
# allocation, operand and option errors match qemu-img.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 6M
head -c 1001 /dev/urandom >odd.raw
mkdir dir

n=0
# Run dd with each tool writing to out.raw; compare messages and the outputs.
check_dd() {
    n=$((n + 1))
    rm -f out.raw
    run_as "q.d$n" "$QEMU_IMG" dd "$@"
    [ -e out.raw ] && mv out.raw q.raw
    run_as "d.d$n" "$DIMG" dd "$@"
    [ -e out.raw ] && mv out.raw d.raw
    sed -i 's/^dimg: /qemu-img: /; s/Try .dimg --help./Try '"'"'qemu-img --help'"'"'/' "d.d$n.err"
    same "d$n"
    if [ -e q.raw ] || [ -e d.raw ]; then
        if [ ! -e q.raw ] || [ ! -e d.raw ]; then
            fail "d$n ($*): only one tool created the output"
        else
            [ "$(stat -c '%s %b' q.raw)" = "$(stat -c '%s %b' d.raw)" ] ||
                fail "d$n ($*): size/allocation differ: $(stat -c '%s %b' q.raw) vs $(stat -c '%s %b' d.raw)"
            cmp -s q.raw d.raw || fail "d$n ($*): content differs"
        fi
    fi
    rm -f q.raw d.raw
}

for ops in "" "bs=1M count=3" "bs=1M skip=2" "bs=1M count=100" "bs=1M skip=6" "bs=1M skip=7" \
    "bs=1000 skip=3 count=5" "bs=1M skip=3 count=2" "count=0" "bs=1.5k count=1" "count=1.5k" \
    "skip=1k" "count=0x10" "bs=64k skip=7 count=40" "count=9223372036854775807" \
    "skip=36028797018963968 count=1" "bs=0" "bs=foo" "bs=2G" "bs=16E" "bs=1k=2" \
    "count=foo" "count=8E" "skip=16E" "foo=bar" "=x" "bs" "bs=0 foo=bar" "foo=bar bs=0" \
    "if=missing.raw"; do
    # shellcheck disable=SC2086
    check_dd if=s.raw of=out.raw $ops
done
check_dd if=odd.raw of=out.raw
check_dd if=odd.raw of=out.raw skip=1
check_dd if=odd.raw of=out.raw bs=1000 skip=1
check_dd -f raw if=s.raw of=out.raw count=5
check_dd -U if=s.raw of=out.raw count=5
check_dd --image-opts if=driver=raw,file.filename=s.raw of=out.raw count=5
check_dd -f raw --image-opts if=driver=raw,file.filename=s.raw of=out.raw
check_dd of=x.raw if=s.raw of=out.raw count=1
check_dd -O nosuchfmt if=s.raw of=out.raw
check_dd -O nosuchfmt if=missing.raw of=out.raw
check_dd -f nosuchfmt -O nosuchfmt if=s.raw of=out.raw
check_dd if=s.raw of=/nonexistent/out.raw
check_dd if=s.raw of=dir
check_dd if=dir of=out.raw
check_dd if=s.raw of=
check_dd
check_dd if=s.raw
check_dd -x
check_dd if=s.raw of=out.raw extra -q

# An existing, larger output is replaced.
head -c 3M /dev/urandom >big.raw
both over dd if=s.raw of=big.raw count=2
mv big.raw q.big; head -c 3M /dev/urandom >big.raw
run_as d.over "$DIMG" dd if=s.raw of=big.raw count=2
sed -i 's/^dimg: /qemu-img: /' d.over.err
same over
[ "$(stat -c '%s %b' q.big)" = "$(stat -c '%s %b' big.raw)" ] || fail "over: size/allocation differ"
cmp -s q.big big.raw || fail "over: content differs"

# An output someone refuses to share "write" with (byte 201) is not created.
if command -v python3 >/dev/null 2>&1; then
    truncate -s 1M held.raw
    python3 <<'PY' &
import fcntl, os, struct, time
fd = os.open("held.raw", os.O_RDONLY)
fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 201, 1, 0))
open("locked", "w").close()
time.sleep(20)
PY
    holder=$!
    for _ in $(seq 50); do [ -e locked ] && break; sleep 0.1; done
    both lock dd if=s.raw of=held.raw count=1; same lock
    both lockin dd if=held.raw of=out.raw count=1; same lockin
    kill "$holder"; wait "$holder" 2>/dev/null
    [ "$(stat -c %s held.raw)" = 1048576 ] || fail "locked output was changed"
fi
finish
