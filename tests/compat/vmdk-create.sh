#!/bin/bash
# create -f vmdk: the same "Formatting" line, messages and exit codes as
# qemu-img, and identical files (descriptor CID masked) for every subformat
# and option; dimg's images pass qemu-img check.
. "$TEST_LIB"
requires qemu-img

# The random CID masked; NULs dropped since the CID's width varies (%x).
masked() {
    tr -d '\0' <"$1" | sed 's/^CID=[0-9a-f]*/CID=X/'
}

"$QEMU_IMG" create -q -f vmdk base.vmdk 6M
"$QEMU_IMG" create -q -f qcow2 base.qcow2 6M

n=0
while IFS='|' read -r opts size; do
    [ -z "$opts$size" ] && continue
    n=$((n + 1))
    for tool in q d; do
        rm -rf "$tool" && mkdir "$tool" && cp base.vmdk base.qcow2 "$tool/"
        if [ $tool = q ]; then prog=$QEMU_IMG; else prog=$DIMG; fi
        # shellcheck disable=SC2086
        (cd $tool && run_as "../$tool.c$n" "$prog" create -f vmdk ${opts:+-o "$opts"} img.vmdk $size)
    done
    sed -i 's/^dimg: /qemu-img: /' "d.c$n.err"
    [ -s "q.c$n.err" ] && [ -n "$(tail -c1 "q.c$n.err")" ] && echo >>"q.c$n.err"
    same "c$n"
    for f in q/*; do
        b=$(basename "$f")
        case $b in base.*) continue ;; esac
        [ -e "d/$b" ] || { fail "c$n ($opts): dimg did not create $b"; continue; }
        if [ "$(stat -c %s "$f")" -gt 10000000 ]; then
            # flat extents: sparse files of the right size
            [ "$(stat -c %s "$f")" = "$(stat -c %s "d/$b")" ] || fail "c$n ($opts): $b size differs"
        elif ! cmp -s <(masked "$f") <(masked "d/$b"); then
            fail "c$n ($opts): $b differs from qemu-img's"
            diff <(masked "$f") <(masked "d/$b") | head -6 >&2
        fi
    done
    for f in d/*; do
        [ -e "q/$(basename "$f")" ] || fail "c$n ($opts): dimg created extra $(basename "$f")"
    done
    if [ -e d/img.vmdk ] && [ "$(cat "q.c$n.rc")" = 0 ]; then
        (cd d && "$QEMU_IMG" check -q img.vmdk) || fail "c$n ($opts): qemu-img check failed"
    fi
done <<'LIST'
|64M
|1000
|3G
subformat=monolithicFlat|10M
subformat=twoGbMaxExtentSparse|4200M
subformat=twoGbMaxExtentFlat|2100M
subformat=streamOptimized|64M
subformat=streamOptimized,zeroed_grain=on|3G
zeroed_grain=on|64M
adapter_type=lsilogic,compat6=on,toolsversion=123|20G
adapter_type=buslogic,subformat=twoGbMaxExtentSparse|3G
adapter_type=legacyESX,subformat=monolithicFlat|1M
hwversion=7|1M
compat6=on,hwversion=7|1M
compat6=on,hwversion=undefined|1M
subformat=foo|1M
adapter_type=scsi|1M
compat6=yes|1M
subformat=monolithicFlat,zeroed_grain=on|1M
backing_file=base.vmdk,backing_fmt=vmdk|
backing_file=base.vmdk,backing_fmt=vmdk|10M
backing_file=base.qcow2,backing_fmt=qcow2|
bogus=1|1M
|
LIST

both help create -f vmdk -o help; same help
both help2 create -f vmdk -o help x.vmdk; same help2
finish
