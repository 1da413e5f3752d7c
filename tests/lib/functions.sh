# Shared helpers for shell tests.  Source with: . "$TEST_LIB"
# A test exits 0 (pass), 1 (fail) or 77 (skip: a required tool is missing).
# Expectations come from running the real qemu-img in the same test (both/same), never
# from hand-written copies of its output.  Helpers: see the lead's notice at the top of
# the file you own (own build dir under /tmp, no git commands).
set -u
: "${DIMG:?DIMG must point at the dimg binary}"
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}

requires() {
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t not installed"; exit 77; }
    done
}

T=$(mktemp -d "${TMPDIR:-/tmp}/dimg-test.XXXXXX")
cleanup_fns=""
cleanup() {
    for f in $cleanup_fns; do $f || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Exit status of a test: call at the end.
finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$failures check(s) failed" >&2
        exit 1
    fi
    exit 0
}

# Run a command, capturing stdout, stderr and exit status in $1.out, $1.err, $1.rc.
run_as() {
    local tag=$1; shift
    "$@" >"$tag.out" 2>"$tag.err"
    echo $? >"$tag.rc"
}

# Run the same qemu-img arguments with both tools; program names are
# normalized so messages compare ("qemu-img:" vs "dimg:").
# Usage: both TAG args...   -> files q.TAG.{out,err,rc} and d.TAG.{out,err,rc}
both() {
    local tag=$1; shift
    run_as "q.$tag" "$QEMU_IMG" "$@"
    run_as "d.$tag" "$DIMG" "$@"
    sed -i 's/^dimg: /qemu-img: /; s/Try .dimg --help./Try '"'"'qemu-img --help'"'"'/' "d.$tag.err"
}

# Compare what both() captured: stdout, stderr and exit code.
same() {
    local tag=$1 what
    for what in out err rc; do
        if ! cmp -s "q.$tag.$what" "d.$tag.$what"; then
            fail "$tag: $what differs from qemu-img"
            diff -u "q.$tag.$what" "d.$tag.$what" | head -20 >&2
        fi
    done
}

# Same, but only the exit code and stdout.
same_out() {
    local tag=$1 what
    for what in out rc; do
        if ! cmp -s "q.$tag.$what" "d.$tag.$what"; then
            fail "$tag: $what differs from qemu-img"
            diff -u "q.$tag.$what" "d.$tag.$what" | head -20 >&2
        fi
    done
}

# Kill tests: qemu-img check must find at worst leaks (exit 0 or 3), never
# corruption (2) or a failed check (1).  Returns check's exit status.
check_leaky() { # image label
    "$QEMU_IMG" check "$1" >check.out 2>&1
    local rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
        fail "$2: qemu-img check $1 exit $rc"
        head -20 check.out >&2
    fi
    return $rc
}

# Assert the exit status of a command.
expect_rc() {
    local want=$1; shift
    "$@" >/dev/null 2>&1
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc: $*"
}

# Make a raw file with data, explicit zeros and holes (deterministic).
make_sample_raw() {
    local f=$1 size=${2:-16M}
    rm -f "$f"
    truncate -s "$size" "$f"
    # data at 1M..1.5M, zeros at 2M..2.5M, text at 5M, data at the end
    head -c 524288 /dev/urandom >"$T/.rand" 2>/dev/null
    dd if="$T/.rand" of="$f" bs=64k seek=16 conv=notrunc status=none
    dd if=/dev/zero of="$f" bs=64k count=8 seek=32 conv=notrunc status=none
    yes 'dimg sample text line' | head -c 200000 | dd of="$f" bs=4k seek=1280 conv=notrunc status=none
    local sz; sz=$(stat -c %s "$f")
    dd if="$T/.rand" of="$f" bs=65536 count=1 seek=$((sz / 65536 - 1)) conv=notrunc status=none
}
