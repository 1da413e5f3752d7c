#!/bin/bash
# commit on raw images: qemu-img's "no backing file" / "not in the backing
# chain" errors, -r rate limit parsing, -p output, cache and usage errors.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
"$QEMU_IMG" create -q -f raw b.raw 1M
mkdir dir

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "m$n" commit "$@"
    same "m$n"
    [ "$failures" = "$before" ] || echo "  (case m$n: commit $line)" >&2
done <<'EOF'
r.raw
-f raw r.raw
-q r.raw
-d -f raw r.raw
-p -f raw r.raw
-p -q -f raw r.raw
-b b.raw r.raw
-f raw -b b.raw r.raw
-d -b b.raw r.raw
-p -b b.raw -f raw r.raw
-b r.raw -f raw r.raw
-b '' -f raw r.raw
-t none -f raw r.raw
-t bad r.raw
-p -t bad r.raw
-r 1M -f raw r.raw
-r 0 -f raw r.raw
-r 7E -f raw r.raw
-r 1.5k -f raw r.raw
-r 0x10 -f raw r.raw
-r 1b -f raw r.raw
-r 1B -f raw r.raw
-r ' 5' -f raw r.raw
-r 8E r.raw
-r 9E r.raw
-r bad r.raw
-r -5 r.raw
-r -0 r.raw
-r '' r.raw
-r '5 ' r.raw
-r 1kk r.raw
-r 1.5 r.raw
-r 1e3 r.raw

a b
nonexist
-f raw dir
-f nosuch r.raw
--image-opts driver=raw,file.filename=r.raw
--image-opts file.filename=r.raw
--image-opts -f raw driver=raw,file.filename=r.raw
-U r.raw
-T x r.raw
-x
-b
-r
--bogus r.raw
EOF
expect_rc 0 "$DIMG" commit -h
finish
