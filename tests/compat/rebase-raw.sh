#!/bin/bash
# rebase on raw images: qemu-img's "Could not change the backing file" errors
# (safe and unsafe mode), new backing file errors, -p output, cache options
# and usage errors.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
"$QEMU_IMG" create -q -f raw b.raw 1M
mkdir dir sub
"$QEMU_IMG" create -q -f raw sub/r.raw 64k
"$QEMU_IMG" create -q -f raw sub/b.raw 64k

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "r$n" rebase "$@"
    same "r$n"
    [ "$failures" = "$before" ] || echo "  (case r$n: rebase $line)" >&2
done <<'EOF'
r.raw
-F raw r.raw
-b b.raw r.raw
-f raw -b b.raw r.raw
-b b.raw -F raw r.raw
-f raw -b b.raw -F raw r.raw
-u -b b.raw r.raw
-u -f raw -b b.raw -F raw r.raw
-u r.raw
-u -F raw r.raw
-u -b '' r.raw
-b '' r.raw
-f raw -b '' r.raw
-q -b b.raw r.raw
-p -b b.raw r.raw
-p -u -f raw -b b.raw -F raw r.raw
-p -q -f raw -b b.raw r.raw
-U -b b.raw r.raw
-U -b b.raw -F raw -f raw r.raw
-b nonexist r.raw
-b nonexist -F raw -f raw r.raw
-p -f raw -b nonexist r.raw
-b dir -F raw r.raw
-b b.raw sub/r.raw
-b nonexist sub/r.raw
-b b.raw -F raw -f raw sub/r.raw
-f raw -b b.raw -F bogus r.raw
-p -f raw -b b.raw -F bogus r.raw
-b b.raw -F bogus nonexist
-t bad -b b.raw r.raw
-T bad -b b.raw r.raw
-p -t bad -b b.raw r.raw
-t none -T writethrough -f raw -b b.raw -F raw r.raw
-b b.raw
-b b.raw a c

-b b.raw nonexist
-p -b b.raw nonexist
-b b.raw dir
-f nosuch -b b.raw r.raw
--image-opts -b b.raw driver=raw,file.filename=r.raw
--image-opts -f raw -b b.raw driver=raw,file.filename=r.raw
-u -b b.raw -F raw --image-opts file.filename=r.raw
-x
-b
--bogus -b b.raw r.raw
--force-share -u -b b.raw r.raw
EOF
expect_rc 0 "$DIMG" rebase -h
finish
