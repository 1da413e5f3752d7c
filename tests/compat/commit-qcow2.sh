#!/bin/bash
# commit on qcow2 chains: each case builds a chain once (qemu-img/qemu-io),
# copies it into q/ and d/, runs the same commit with qemu-img in q/ and dimg
# in d/, then compares messages and exit codes, and the images: qemu-img
# check clean, map and info JSON equal (host offsets and actual size left
# out for the base, whose allocation order may differ), the emptied top
# byte-identical to qemu-img's where qemu rewrites it, the base equal to the
# chain's guest view from before the commit.
. "$TEST_LIB"
requires qemu-img qemu-io

qio() { "$QEMU_IO" "$@" >/dev/null || fail "qemu-io $*"; }

# Fresh q/ and d/ holding the chain the function $1 builds in the cwd.
setup() {
    rm -rf q d work && mkdir work q d
    (cd work && "$1") || fail "setup $1"
    cp -a work/. q/ && cp -a work/. d/
}

chain2() { # base 8M of data, top with data, zeros, discards, compressed, zero data
    "$QEMU_IMG" create -q -f qcow2 base.qcow2 8M
    qio -c "write -P 0x11 0 8M" base.qcow2
    "$QEMU_IMG" create -q -f qcow2 ${TOPOPTS:+-o "$TOPOPTS"} -b base.qcow2 -F qcow2 top.qcow2 8M
    qio -c "write -P 0x22 64k 192k" -c "write -z 1M 128k" -c "discard 2M 64k" \
        -c "write -P 0x33 2560k 1k" -c "write -z -u 3M 64k" -c "write -P 0 4M 64k" \
        -c "write -c -P 0x44 5M 64k" -c "write -P 0x55 8128k 64k" top.qcow2
}

chain3() { # base <- mid <- top, top larger than base
    "$QEMU_IMG" create -q -f qcow2 base.qcow2 4M
    qio -c "write -P 0x11 0 4M" base.qcow2
    "$QEMU_IMG" create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 4M
    qio -c "write -P 0x66 0 1M" -c "write -z 2M 64k" mid.qcow2
    "$QEMU_IMG" create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 6M
    qio -c "write -P 0x77 512k 1M" -c "discard 3M 64k" -c "write -P 0x78 5M 64k" top.qcow2
}

chain_raw_base() {
    truncate -s 4M base.raw
    qio -f raw -c "write -P 0x11 0 2M" base.raw
    "$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw top.qcow2 4M
    qio -c "write -P 0x22 1M 2M" -c "write -z 3M 64k" top.qcow2
}

chain_snapshot() {
    TOPOPTS= chain2
    "$QEMU_IMG" snapshot -c s1 top.qcow2
    qio -c "write -P 0x99 128k 64k" top.qcow2
}

chain_snapshot_shared() { TOPOPTS= chain2; "$QEMU_IMG" snapshot -c s1 top.qcow2; }
chain_bitmap() { TOPOPTS= chain2; "$QEMU_IMG" bitmap --add top.qcow2 bm0; }
chain_v2() { TOPOPTS=compat=0.10 chain2; }
chain_small() { TOPOPTS=cluster_size=512 chain2; }
chain_rc1() { TOPOPTS=refcount_bits=1,lazy_refcounts=on chain2; }
chain_extl2() { TOPOPTS=extended_l2=on chain2; }
chain_resized() { # the L1 table moved to the end of the file
    TOPOPTS= chain2
    "$QEMU_IMG" resize -q top.qcow2 600M
    qio -c "write -P 0x88 520M 64k" top.qcow2
}
chain_v2_big() { # L1 entries without L2 tables (the discard way allocates them)
    "$QEMU_IMG" create -q -f qcow2 base.qcow2 16M
    "$QEMU_IMG" create -q -f qcow2 -o compat=0.10,cluster_size=4k -b base.qcow2 -F qcow2 \
        top.qcow2 16M
    qio -c "write -P 0x22 64k 64k" -c "write -P 0x23 9M 64k" top.qcow2
}

# Run commit with both tools.  Progress is reduced to its first and last
# values: the ones between depend on how qemu-img's requests interleave.
commit_both() {
    local tag=$1; shift
    (cd q && "$QEMU_IMG" commit "$@" >"../q.$tag.out" 2>"../q.$tag.err"; echo $? >"../q.$tag.rc")
    (cd d && "$DIMG" commit "$@" >"../d.$tag.out" 2>"../d.$tag.err"; echo $? >"../d.$tag.rc")
    sed -i 's/^dimg: /qemu-img: /' "d.$tag.err"
    local t
    for t in q d; do
        tr '\r' '\n' <"$t.$tag.out" | awk '
            /^    \(.*\/100%\)$/ { if (!seen++) print; last = $0; next }
            { if (last != "") print last; last = ""; print }
            END { if (last != "") print last }' >"$t.$tag.tmp"
        mv "$t.$tag.tmp" "$t.$tag.out"
    done
    same "$tag"
}

# The guest view of an image as raw, saved before the commit.
save_view() { "$QEMU_IMG" convert -O raw "q/$1" "$2" || fail "convert $1"; }

# Map JSON without the host offsets of lower layers (or all of them), with
# neighbours that then look alike merged: allocation order may differ.
norm_map() { # all|lower
    awk -v which="$1" '
    {
        gsub(/^\[|\]$|,$/, "")
        start = $0; sub(/.*"start": /, "", start); sub(/,.*/, "", start)
        len = $0; sub(/.*"length": /, "", len); sub(/,.*/, "", len)
        depth = $0; sub(/.*"depth": /, "", depth); sub(/,.*/, "", depth)
        rest = $0; sub(/.*"depth": [0-9]+, /, "", rest)
        if (which == "all" || depth > 0)
            sub(/, "offset": [0-9]+/, "", rest)
        key = depth " " rest
        if (n && key == lastkey && rest !~ /offset/ && lastend == start) {
            lens[n] += len
        } else {
            n++; starts[n] = start; lens[n] = len; keys[n] = key
        }
        lastkey = key; lastend = start + len
    }
    END { for (i = 1; i <= n; i++) print starts[i], lens[i], keys[i] }'
}

# Compare one image of q/ and d/.  mode: exact (bytes, allocated size),
# layout (map with host offsets, info, file size), content (map without
# host offsets, info).  Info is compared without actual-size.
compare_image() {
    local tag=$1 f=$2 mode=$3
    "$QEMU_IMG" check "d/$f" >"d.check" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || { fail "$tag: qemu-img check $f exit $rc"; head -5 d.check >&2; }
    local qm dm qi di
    local which=lower
    [ "$mode" = content ] && which=all
    qm=$("$QEMU_IMG" map --output=json "q/$f" | norm_map $which)
    dm=$("$QEMU_IMG" map --output=json "d/$f" | norm_map $which)
    qi=$(cd q && "$QEMU_IMG" info --output=json "$f"); di=$(cd d && "$QEMU_IMG" info --output=json "$f")
    # qemu-img's own actual size varies by a file system block from run to run.
    local qa da
    qa=$(sed -n 's/.*"actual-size": \([0-9]*\).*/\1/p' <<<"$qi")
    da=$(sed -n 's/.*"actual-size": \([0-9]*\).*/\1/p' <<<"$di")
    qi=$(grep -v '"actual-size"' <<<"$qi"); di=$(grep -v '"actual-size"' <<<"$di")
    if [ "$mode" = exact ] && [ $((qa - da)) -gt 8192 -o $((da - qa)) -gt 8192 ]; then
        fail "$tag: $f allocates $da bytes, qemu-img's $qa"
    fi
    [ "$qm" = "$dm" ] || { fail "$tag: map of $f differs"; diff <(echo "$qm") <(echo "$dm") | head -10 >&2; }
    [ "$qi" = "$di" ] || { fail "$tag: info of $f differs"; diff <(echo "$qi") <(echo "$di") | head -10 >&2; }
    if [ "$mode" = exact ]; then
        cmp -s "q/$f" "d/$f" || fail "$tag: $f is not byte-identical to qemu-img's"
    fi
    if [ "$mode" != content ]; then
        [ "$(stat -c %s "q/$f")" = "$(stat -c %s "d/$f")" ] || fail "$tag: size of $f differs"
    fi
}

expect_view() { # tag image raw
    "$QEMU_IMG" compare -q "d/$2" "$3" || fail "$1: d/$2 does not read as the chain did"
}

# ---- default commit into the immediate backing file: top emptied ---------
for c in chain2 chain_small chain_rc1 chain_extl2 chain_resized chain_raw_base \
         chain_snapshot chain_snapshot_shared chain_bitmap chain_v2 chain_v2_big; do
    TOPOPTS= setup "$c"
    save_view top.qcow2 view.raw
    commit_both "$c" top.qcow2
    case $c in
    chain_snapshot*|chain_bitmap|chain_v2*) top_mode=layout ;;
    *) top_mode=exact ;;
    esac
    compare_image "$c" top.qcow2 "$top_mode"
    if [ "$c" = chain_raw_base ]; then
        cmp -s q/base.raw d/base.raw || fail "$c: raw base differs"
        expect_view "$c" base.raw view.raw
    else
        compare_image "$c" base.qcow2 content
        expect_view "$c" base.qcow2 view.raw
    fi
    expect_view "$c" top.qcow2 view.raw
done

# ---- -d, -q, -p, -r, -t: top kept -----------------------------------------
n=0
while IFS= read -r args; do
    n=$((n + 1))
    TOPOPTS= setup chain2
    save_view top.qcow2 view.raw
    eval "set -- $args"
    commit_both "opt$n" "$@" top.qcow2
    compare_image "opt$n" top.qcow2 exact
    compare_image "opt$n" base.qcow2 content
    expect_view "opt$n" base.qcow2 view.raw
    case " $args " in
    *" -d "*) cmp -s work/top.qcow2 d/top.qcow2 || fail "opt$n: -d changed the top image" ;;
    esac
done <<'EOF'
-d
-q -d
-p
-p -q
-r 100M -p
-t none
-t unsafe
-t writethrough -d
-f qcow2
EOF

# ---- three levels ----------------------------------------------------------
setup chain3
save_view top.qcow2 view3.raw
"$QEMU_IMG" convert -O raw q/mid.qcow2 viewmid.raw
commit_both c3-default top.qcow2
compare_image c3-default top.qcow2 exact
compare_image c3-default mid.qcow2 content
cmp -s work/base.qcow2 d/base.qcow2 || fail "c3-default: base changed"
expect_view c3-default mid.qcow2 view3.raw
expect_view c3-default top.qcow2 view3.raw

for b in base.qcow2 ./base.qcow2 "$T/d/base.qcow2"; do
    setup chain3
    bq=${b/\/d\//\/q\/}
    (cd q && "$QEMU_IMG" commit -b "$bq" top.qcow2 >../q.c3b.out 2>../q.c3b.err; echo $? >../q.c3b.rc)
    (cd d && "$DIMG" commit -b "$b" top.qcow2 >../d.c3b.out 2>../d.c3b.err; echo $? >../d.c3b.rc)
    sed -i 's/^dimg: /qemu-img: /' d.c3b.err
    same c3b
    compare_image "c3-b $b" base.qcow2 content
    expect_view "c3-b $b" base.qcow2 view3.raw
    cmp -s work/top.qcow2 d/top.qcow2 || fail "c3-b $b: -b emptied or changed the top"
    cmp -s work/mid.qcow2 d/mid.qcow2 || fail "c3-b $b: -b changed the middle image"
    expect_view "c3-b $b" top.qcow2 view3.raw
done

setup chain3
commit_both c3-bmid -b mid.qcow2 top.qcow2
compare_image c3-bmid top.qcow2 exact
compare_image c3-bmid mid.qcow2 content
expect_view c3-bmid mid.qcow2 view3.raw

# commit the middle image into the base: top then reads garbage-free base data
setup chain3
commit_both c3-mid mid.qcow2
compare_image c3-mid mid.qcow2 exact
compare_image c3-mid base.qcow2 content
expect_view c3-mid base.qcow2 viewmid.raw

# ---- errors ----------------------------------------------------------------
setup chain3
"$QEMU_IMG" create -q -f qcow2 q/alone.qcow2 1M && cp q/alone.qcow2 d/
n=0
while IFS= read -r args; do
    n=$((n + 1))
    eval "set -- $args"
    commit_both "err$n" "$@"
    cmp -s work/top.qcow2 d/top.qcow2 || fail "err$n: top changed"
done <<'EOF'
-b top.qcow2 top.qcow2
-b nonexist top.qcow2
-b alone.qcow2 top.qcow2
alone.qcow2
-b base.qcow2 alone.qcow2
-f raw top.qcow2
-f vdi top.qcow2
-b '' top.qcow2
-p -b nonexist top.qcow2
-r -1 top.qcow2
-t bogus top.qcow2
EOF

# A base another process holds open read-only cannot be written.
setup chain3
for t in q d; do
    (cd $t && exec "$QEMU_IO" -r -c "sleep 3000" base.qcow2 >/dev/null 2>&1) &
    holder=$!
    sleep 0.5
    if [ $t = q ]; then
        (cd q && "$QEMU_IMG" commit -b base.qcow2 top.qcow2 >../q.lock.out 2>../q.lock.err; echo $? >../q.lock.rc)
    else
        (cd d && "$DIMG" commit -b base.qcow2 top.qcow2 >../d.lock.out 2>../d.lock.err; echo $? >../d.lock.rc)
        sed -i 's/^dimg: /qemu-img: /' d.lock.err
    fi
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
done
same lock
cmp -s work/base.qcow2 d/base.qcow2 || fail "lock: base changed"

finish
