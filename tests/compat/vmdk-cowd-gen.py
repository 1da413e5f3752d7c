#!/usr/bin/env python3
"""Write an ESX Server sparse extent ("COWD", the data file of a vmfsSparse
VMDK) from the layout in shared/specs/libyal-vmdk.asciidoc: a 2048-byte
header, a grain directory of 32-bit sector numbers, grain tables of 4096
32-bit sector numbers, then grains.  qemu-img cannot create these files, so
the tests build them here.

usage: vmdk-cowd-gen.py OUT --sectors N [--grain N] [--data RAW]
           [--tables all|used|none] [--gd-sector S] [--gd-entries N]
           [--parent NAME] [--free S] [--truncate BYTES] [--poke OFF:HEX ...]
"""
import argparse
import struct
import sys

SECTOR = 512
GTES = 4096


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--sectors", type=int, required=True, help="capacity in sectors")
    ap.add_argument("--grain", type=int, default=16, help="grain size in sectors")
    ap.add_argument("--data", help="raw file whose non-zero grains are stored")
    ap.add_argument("--tables", default="all", choices=["all", "used", "none"],
                    help="which grain tables exist: every one, those holding data, none")
    ap.add_argument("--gd-sector", type=int, default=4)
    ap.add_argument("--gd-entries", type=int, help="default: enough for the capacity")
    ap.add_argument("--parent", default="", help="parent file name (child extent)")
    ap.add_argument("--free", type=int, help="next free sector field (default: the end)")
    ap.add_argument("--truncate", type=int, help="cut the finished file to this many bytes")
    ap.add_argument("--poke", action="append", default=[],
                    help="OFF:HEX, patch bytes after the layout is written")
    a = ap.parse_args()

    per_gt = a.grain * GTES
    need = (a.sectors + per_gt - 1) // per_gt if a.grain else 0
    entries = need if a.gd_entries is None else a.gd_entries
    gd_sectors = (entries * 4 + SECTOR - 1) // SECTOR

    data = b""
    if a.data:
        with open(a.data, "rb") as f:
            data = f.read()
    grain_bytes = a.grain * SECTOR
    grains = {}
    if grain_bytes:
        for g in range((min(len(data), a.sectors * SECTOR) + grain_bytes - 1) // grain_bytes):
            chunk = data[g * grain_bytes:(g + 1) * grain_bytes]
            if chunk.strip(b"\0"):
                grains[g] = chunk.ljust(grain_bytes, b"\0")

    if a.tables == "all":
        tables = list(range(min(entries, need)))
    elif a.tables == "used":
        tables = sorted({g // GTES for g in grains})
    else:
        tables = []

    next_sector = max(a.gd_sector + gd_sectors, 4)
    gd = [0] * entries
    gt_at = {}
    for t in tables:
        if t < entries:
            gd[t] = next_sector
        gt_at[t] = next_sector
        next_sector += GTES * 4 // SECTOR
    gts = {t: [0] * GTES for t in tables}
    body = []
    for g, chunk in sorted(grains.items()):
        t = g // GTES
        if t not in gts:
            continue
        gts[t][g % GTES] = next_sector
        body.append((next_sector, chunk))
        next_sector += a.grain

    hdr = bytearray(2048)
    hdr[0:4] = b"COWD"
    struct.pack_into("<8I", hdr, 4, 1, 3, a.sectors, a.grain, a.gd_sector, entries,
                     next_sector if a.free is None else a.free, 0)
    if a.parent:
        name = a.parent.encode()[:1023]
        hdr[32:32 + len(name)] = name
    else:
        # root extent: a made-up geometry
        struct.pack_into("<3I", hdr, 32, max(1, a.sectors // (16 * 63)), 16, 63)
    struct.pack_into("<I", hdr, 1060, 1)          # generation
    hdr[1064:1064 + 4] = b"cowd"                   # name

    out = bytearray(next_sector * SECTOR)
    out[0:2048] = hdr
    gd_off = a.gd_sector * SECTOR
    gd_bytes = struct.pack("<%dI" % entries, *gd) if entries else b""
    if gd_off + len(gd_bytes) > len(out):
        out.extend(b"\0" * (gd_off + len(gd_bytes) - len(out)))
    out[gd_off:gd_off + len(gd_bytes)] = gd_bytes
    for t, gt in gts.items():
        o = gt_at[t] * SECTOR
        out[o:o + GTES * 4] = struct.pack("<%dI" % GTES, *gt)
    for s, chunk in body:
        out[s * SECTOR:s * SECTOR + len(chunk)] = chunk
    for p in a.poke:
        off, hexs = p.split(":")
        b = bytes.fromhex(hexs)
        off = int(off, 0)
        if off + len(b) > len(out):
            out.extend(b"\0" * (off + len(b) - len(out)))
        out[off:off + len(b)] = b
    if a.truncate is not None:
        del out[a.truncate:]
    with open(a.out, "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
