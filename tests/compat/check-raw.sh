#!/bin/bash
# check on raw images: qemu-img's "does not support checks" (exit 63) in every
# output mode, and its usage, option and open errors (-r values, --output,
# -r with -U, -T, --image-opts, missing files).
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
"$QEMU_IMG" create -q -f raw odd.raw 1000
mkdir dir

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "c$n" check "$@"
    same "c$n"
    [ "$failures" = "$before" ] || echo "  (case c$n: check $line)" >&2
done <<'EOF'
r.raw
-f raw r.raw
--output=json r.raw
--output=human r.raw
--output json -q r.raw
-q r.raw
-q --output=json r.raw
odd.raw
-r leaks r.raw
-r all r.raw
-rall r.raw
-r all -f raw r.raw
-q -r all r.raw
--output=json -r leaks r.raw
--repair=all -f raw r.raw
--repair all -f raw r.raw
--re all -f raw r.raw
-r bad r.raw
-r '' r.raw
-r LEAKS r.raw
-r bad --output=xml r.raw
--output=xml -r bad r.raw
-r all -U r.raw
-U -r all r.raw
-r all -U --output=xml r.raw
-T bad -r all -U r.raw
--output=xml r.raw
--output=JSON r.raw
--output=xml -T bad r.raw
-T bad --output=xml r.raw
-T bad r.raw
-T none r.raw
-T writethrough -r all -f raw r.raw
-U r.raw
--force-share r.raw
-qU r.raw
--out=json r.raw
--format raw r.raw
-- r.raw
r.raw -q

a b
-r all
--output=xml
-T bad
nonexist.raw
-r all nonexist.raw
-r leaks -T bad nonexist.raw
dir
-r all dir
-f nosuch r.raw
--image-opts driver=raw,file.filename=r.raw
--image-opts file.filename=r.raw
-r all --image-opts file.filename=r.raw
-r all --image-opts driver=raw,file.filename=r.raw
--image-opts -f raw driver=raw,file.filename=r.raw
-x r.raw
-r
--output
-T
-f
--bogus r.raw
--quiet r.raw
--cache none r.raw
--f raw r.raw
--fo raw r.raw
--U r.raw
--o=json r.raw
EOF
expect_rc 0 "$DIMG" check -h
finish
