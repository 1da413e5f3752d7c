#!/bin/bash
# make check: ASan+UBSan build, every test suite, one closing summary line.
set -u
B=${1:-build-asan}
cd "$(dirname "$0")/.."
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=true >/dev/null || { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
else
    meson setup --reconfigure "$B" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$B" >"$B/ninja.log" 2>&1; then
    tail -40 "$B/ninja.log"
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
meson test -C "$B" --no-rebuild --print-errorlogs --num-processes "$(nproc)" >"$B/test.log" 2>&1
rc=$?
grep -E '^ *[0-9]+/[0-9]+ ' "$B/test.log" | sed 's/  */ /g'
python3 - "$B/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
failed = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    r = t.get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
        failed.append(t["name"])
        print(f"--- {t['name']} ({r}) ---")
        print((t.get("stdout") or "")[-3000:])
        print((t.get("stderr") or "")[-3000:])
print(f"{p} passed, {f} failed, {s} skipped")
sys.exit(1 if f else 0)
PY
prc=$?
[ $rc -eq 0 ] && [ $prc -eq 0 ]
