#!/bin/bash
# rebase on qcow2: -u rewrites the first cluster byte for byte as qemu-img
# does (every cluster size, both versions, data files, long names, removal);
# safe mode keeps the guest view unchanged across a three-level chain, and
# dimg's result maps like qemu-img's; options (-p, -t/-T, -f, -U), rebasing a
# middle image, onto a raw base and onto a shorter base, and errors compare
# with qemu-img run on a copy.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f raw base.raw 64M
for cs in 512 4k 64k; do
    for compat in 0.10 1.1; do
        "$QEMU_IMG" create -q -f qcow2 -o cluster_size=$cs,compat=$compat q.qcow2 64M
        cp q.qcow2 d.qcow2
        for step in "base.raw raw" "other/a/longer/name.qcow2 qcow2" "none"; do
            if [ "$step" = none ]; then set -- -b ""; else set -- -b ${step% *} -F ${step#* }; fi
            "$QEMU_IMG" rebase -u "$@" q.qcow2 || fail "qemu-img rebase $*"
            "$DIMG" rebase -u "$@" d.qcow2 || fail "dimg rebase $*"
            cmp -s q.qcow2 d.qcow2 || fail "cluster_size=$cs compat=$compat rebase -u $* differs"
        done
    done
done
"$QEMU_IMG" create -q -f qcow2 -o data_file=data.raw,lazy_refcounts=on q.qcow2 64M
cp q.qcow2 d.qcow2
"$QEMU_IMG" rebase -u -b base.raw -F raw q.qcow2
"$DIMG" rebase -u -b base.raw -F raw d.qcow2
cmp -s q.qcow2 d.qcow2 || fail "rebase -u with a data file differs"

# A name that cannot fit in a 512-byte cluster: the same error, image unchanged.
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=512 small.qcow2 64M
cp small.qcow2 small.orig
long=$(printf 'n%.0s' $(seq 1 600))
both long rebase -u -b "$long" -F raw small.qcow2
cmp -s small.qcow2 small.orig || fail "failed rebase changed the image"

# Safe mode across b1 <- mid <- top, onto b1 and onto nothing.
"$QEMU_IMG" create -q -f qcow2 b1.qcow2 64M
"$QEMU_IO" -c "write -P 1 0 8M" -c "write -P 7 40M 1M" b1.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b b1.qcow2 -F qcow2 mid.qcow2
"$QEMU_IO" -c "write -P 2 1M 2M" -c "write -z 5M 1M" -c "discard 40M 64k" mid.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
"$QEMU_IO" -c "write -P 3 2M 64k" -c "write -z 6M 512" top.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw top.qcow2 before.raw
for target in b1 none; do
    if [ $target = none ]; then set -- -b ""; else set -- -b b1.qcow2 -F qcow2; fi
    cp top.qcow2 tq.qcow2
    cp top.qcow2 td.qcow2
    "$QEMU_IMG" rebase "$@" tq.qcow2 || fail "qemu-img rebase $target"
    "$DIMG" rebase "$@" td.qcow2 || fail "dimg rebase $target"
    "$QEMU_IMG" check -q td.qcow2 || fail "rebase $target: qemu-img check"
    "$QEMU_IMG" compare -q before.raw td.qcow2 || fail "rebase $target changed the guest view"
    "$QEMU_IMG" map --output=json tq.qcow2 >map.q
    "$QEMU_IMG" map --output=json td.qcow2 >map.d
    cmp -s map.q map.d || fail "rebase $target: map differs from qemu-img's"
    "$QEMU_IMG" info --output=json tq.qcow2 | grep -v actual-size >info.q
    "$QEMU_IMG" info --output=json td.qcow2 | grep -v actual-size | sed 's/td.qcow2/tq.qcow2/' >info.d
    cmp -s info.q info.d || fail "rebase $target: info differs"
done

# ---- options and chain shapes, run in q/ (qemu-img) and d/ (dimg) ----------
# b1 <- mid <- top (8M), new bases: qcow2, raw, and a shorter qcow2.
mk_rb_chain() {
    "$QEMU_IMG" create -q -f qcow2 b1.qcow2 8M
    "$QEMU_IO" -c "write -P 1 0 8M" b1.qcow2 >/dev/null
    "$QEMU_IMG" create -q -f qcow2 -b b1.qcow2 -F qcow2 mid.qcow2
    "$QEMU_IO" -c "write -P 2 1M 2M" -c "write -z 4M 1M" mid.qcow2 >/dev/null
    "$QEMU_IMG" create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
    "$QEMU_IO" -c "write -P 3 2M 64k" -c "write -z 6M 512" top.qcow2 >/dev/null
    "$QEMU_IMG" create -q -f qcow2 nb.qcow2 8M
    "$QEMU_IO" -c "write -P 1 0 4M" -c "write -P 9 4M 3M" nb.qcow2 >/dev/null
    "$QEMU_IMG" convert -O raw nb.qcow2 nb.raw
    "$QEMU_IMG" create -q -f qcow2 short.qcow2 3M
    "$QEMU_IO" -c "write -P 1 0 3M" short.qcow2 >/dev/null
}
rm -rf w && mkdir w && (cd w && mk_rb_chain)
"$QEMU_IMG" convert -O raw w/top.qcow2 view-top.raw
"$QEMU_IMG" convert -O raw w/mid.qcow2 view-mid.raw

# Progress keeps its first and last values (qemu-img's steps depend on its requests).
norm_progress() {
    tr '\r' '\n' | awk '
        /^    \(.*\/100%\)$/ { if (!seen++) print; last = $0; next }
        { if (last != "") print last; last = ""; print }
        END { if (last != "") print last }'
}

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    img=${!#}
    rm -rf q d && cp -a w q && cp -a w d
    (cd q && "$QEMU_IMG" rebase "$@" >../q.r$n.out 2>../q.r$n.err; echo $? >../q.r$n.rc)
    (cd d && "$DIMG" rebase "$@" >../d.r$n.out 2>../d.r$n.err; echo $? >../d.r$n.rc)
    sed -i 's/^dimg: /qemu-img: /' "d.r$n.err"
    for t in q d; do norm_progress <"$t.r$n.out" >"$t.r$n.tmp"; mv "$t.r$n.tmp" "$t.r$n.out"; done
    before=$failures
    same "r$n"
    case $img in
    *.qcow2) "$QEMU_IMG" check -q "d/$img" || fail "r$n: qemu-img check d/$img" ;;
    esac
    "$QEMU_IMG" compare -q "q/$img" "d/$img" || fail "r$n: d/$img reads unlike qemu-img's result"
    case " $line " in
    *" -u "*) unsafe=true ;;
    *) unsafe=false ;;
    esac
    if ! $unsafe; then
        "$QEMU_IMG" compare -q view-top.raw d/top.qcow2 || fail "r$n: the top's guest view changed"
    fi
    if ! $unsafe && [ "$img" = mid.qcow2 ]; then
        "$QEMU_IMG" compare -q view-mid.raw d/mid.qcow2 || fail "r$n: mid's guest view changed"
    fi
    qi=$(cd q && "$QEMU_IMG" info --output=json "$img" | grep -v actual-size)
    di=$(cd d && "$QEMU_IMG" info --output=json "$img" | grep -v actual-size)
    [ "$qi" = "$di" ] || { fail "r$n: info of $img differs"; diff <(echo "$qi") <(echo "$di") | head >&2; }
    qm=$("$QEMU_IMG" map --output=json "q/$img" | sed -E 's/, "offset": [0-9]+//')
    dm=$("$QEMU_IMG" map --output=json "d/$img" | sed -E 's/, "offset": [0-9]+//')
    [ "$qm" = "$dm" ] || { fail "r$n: map of $img differs"; diff <(echo "$qm") <(echo "$dm") | head >&2; }
    [ "$failures" = "$before" ] || echo "  (case r$n: rebase $line)" >&2
done <<'EOF'
-p -b nb.qcow2 -F qcow2 top.qcow2
-p -q -b nb.qcow2 -F qcow2 top.qcow2
-t none -T none -b nb.qcow2 -F qcow2 top.qcow2
-t writethrough -T unsafe -b nb.qcow2 -F qcow2 top.qcow2
-t unsafe -T directsync -b b1.qcow2 -F qcow2 top.qcow2
-f qcow2 -b nb.qcow2 -F qcow2 top.qcow2
-b nb.qcow2 -F qcow2 mid.qcow2
-b '' mid.qcow2
-b nb.raw -F raw top.qcow2
-b nb.raw -F raw mid.qcow2
-b short.qcow2 -F qcow2 top.qcow2
-b short.qcow2 -F qcow2 mid.qcow2
-U -b nb.qcow2 -F qcow2 top.qcow2
-U -u -b nb.qcow2 -F qcow2 top.qcow2
-p -u -b nb.qcow2 -F qcow2 top.qcow2
-b nb.qcow2 top.qcow2
-b nosuch.qcow2 -F qcow2 top.qcow2
-p -b nosuch.qcow2 -F qcow2 top.qcow2
-b nb.qcow2 -F nosuchfmt top.qcow2
-t bogus -b nb.qcow2 -F qcow2 top.qcow2
-T bogus -b nb.qcow2 -F qcow2 top.qcow2
-f raw -b nb.qcow2 -F qcow2 nb.raw
EOF
finish
