/*
 * The VHDX log: a circular buffer of entries, each a header sector with
 * descriptors followed by data sectors, all carrying the entry's sequence
 * number and covered by one CRC-32C.  An entry is current when its log GUID
 * matches the header's.
 *
 * Replay finds the newest valid run of entries (tail to head, sequence
 * numbers consecutive) and writes what they describe.  dimg's own metadata
 * updates are logged as single self-contained entries (tail == itself) at
 * the start of the log under a fresh log GUID, then applied in place, then
 * the GUID is cleared: a kill before the entry is complete leaves the old
 * state (the torn entry fails its CRC), after it the entry replays.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vhdx/vhdx.h"
#include "util/checked.h"
#include "util/crc32c.h"
#include "util/endian.h"

/* Entry header fields. */
#define L_CRC        4
#define L_LENGTH     8
#define L_TAIL       12
#define L_SEQ        16
#define L_DESCS      24
#define L_GUID       32
#define L_FLUSHED    48
#define L_LAST       56
#define L_HEADER     64
#define L_DESC_SIZE  32u

/* Larger entries are treated as invalid: replay memory stays bounded. */
#define LOG_MAX_ENTRY (32u * VHDX_MiB)
/* Replayed writes must stay below this file offset (twice the largest disk). */
#define LOG_MAX_TARGET (VHDX_MAX_SIZE * 2)

struct log_entry {
    uint32_t pos, len, tail;
    uint64_t seq;
    uint64_t flushed_file_offset, last_file_offset;
};

/* Read len bytes of the circular log starting at log position pos. */
static int
log_read(struct dimg_image *img, const struct vhdx_state *s, uint32_t pos, uint8_t *buf,
         uint32_t len)
{
    while (len > 0) {
        uint32_t n = (uint32_t)min_u64(len, (uint64_t)s->log_length - pos);
        int r = io_pread(img->file, buf, n, s->log_offset + pos);
        if (r < 0)
            return r;
        buf += n;
        len -= n;
        pos = 0;
    }
    return 0;
}

static uint32_t
desc_sectors(uint32_t ndesc)
{
    return (uint32_t)((L_HEADER + (uint64_t)ndesc * L_DESC_SIZE + VHDX_SECTOR - 1) / VHDX_SECTOR);
}

/* Every descriptor and data sector of a CRC-checked entry agrees with it. */
static bool
entry_consistent(const uint8_t *e, uint32_t len, uint64_t seq)
{
    uint32_t ndesc = load_le32(e + L_DESCS);
    uint32_t first_data = desc_sectors(ndesc), ndata = 0;
    for (uint32_t i = 0; i < ndesc; i++) {
        const uint8_t *d = e + L_HEADER + (size_t)i * L_DESC_SIZE;
        uint64_t target = load_le64(d + 16), end;
        if (load_le64(d + 24) != seq || target % VHDX_SECTOR)
            return false;
        if (memcmp(d, "zero", 4) == 0) {
            uint64_t zlen = load_le64(d + 8);
            if (zlen % VHDX_SECTOR || ckd_add_u64(&end, target, zlen) || end > LOG_MAX_TARGET)
                return false;
        } else if (memcmp(d, "desc", 4) == 0) {
            if (target > LOG_MAX_TARGET)
                return false;
            uint64_t at = ((uint64_t)first_data + ndata++) * VHDX_SECTOR;
            if (at + VHDX_SECTOR > len)
                return false;
            const uint8_t *ds = e + at;
            if (memcmp(ds, "data", 4) != 0 || load_le32(ds + 4) != (uint32_t)(seq >> 32) ||
                load_le32(ds + VHDX_SECTOR - 4) != (uint32_t)seq)
                return false;
        } else {
            return false;
        }
    }
    return ((uint64_t)first_data + ndata) * VHDX_SECTOR == len;
}

/*
 * Parse the entry at log position pos: 1 and *out (and, when data is not
 * NULL, the whole entry in a malloc'd *data) if it is valid for guid, 0 if not.
 * A budget (when given) bounds the bytes whole-entry reads may take.
 */
static int
parse_entry(struct dimg_image *img, const struct vhdx_state *s, uint32_t pos,
            const uint8_t *guid, struct log_entry *out, uint8_t **data, uint64_t *budget)
{
    uint8_t h[VHDX_SECTOR];
    int r = log_read(img, s, pos, h, sizeof h);
    if (r < 0)
        return r;
    uint32_t len = load_le32(h + L_LENGTH), tail = load_le32(h + L_TAIL);
    uint32_t ndesc = load_le32(h + L_DESCS);
    if (memcmp(h, "loge", 4) != 0 || memcmp(h + L_GUID, guid, 16) != 0 || len == 0 ||
        len % VHDX_SECTOR || len > s->log_length || len > LOG_MAX_ENTRY ||
        tail % VHDX_SECTOR || tail >= s->log_length ||
        (uint64_t)desc_sectors(ndesc) * VHDX_SECTOR > len)
        return 0;
    if (budget) {
        if (*budget < len)
            return dimg_error(EINVAL, "%s: the VHDX log is damaged: its entries overlap",
                              img->filename);
        *budget -= len;
    }
    uint8_t *e = malloc(len);
    if (!e)
        return dimg_error(ENOMEM, "out of memory");
    if ((r = log_read(img, s, pos, e, len)) < 0) {
        free(e);
        return r;
    }
    uint32_t stored = load_le32(e + L_CRC);
    store_le32(e + L_CRC, 0);
    uint64_t seq = load_le64(e + L_SEQ);
    if (crc32c(0, e, len) != stored || !entry_consistent(e, len, seq)) {
        free(e);
        return 0;
    }
    *out = (struct log_entry){ .pos = pos, .len = len, .tail = tail, .seq = seq,
                               .flushed_file_offset = load_le64(e + L_FLUSHED),
                               .last_file_offset = load_le64(e + L_LAST) };
    if (data)
        *data = e;
    else
        free(e);
    return 1;
}

static int
cmp_seq_desc(const void *a, const void *b)
{
    uint64_t x = ((const struct log_entry *)a)->seq, y = ((const struct log_entry *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The entries by position, and for each the run of consecutive entries
 * (next position, next sequence number) that starts at it: where it ends and
 * how many steps it takes, each computed once so that finding the newest
 * complete chain stays linear in the number of entries (crafted logs hold
 * up to a million).
 */
struct log_index {
    const struct log_entry *v;
    size_t n;
    uint32_t log_length;
    uint32_t *at;      /* by position / VHDX_SECTOR: entry index + 1, 0: none */
    uint32_t *next;    /* entry index + 1 of the run's next entry, 0: none */
    uint32_t *end;     /* index of the run's last entry */
    uint32_t *dist;    /* steps from the entry to that last one */
};

static void
index_free(struct log_index *x)
{
    free(x->at);
    free(x->next);
    free(x->end);
    free(x->dist);
}

static const struct log_entry *
find_at(const struct log_index *x, uint64_t pos)
{
    if (pos % VHDX_SECTOR || pos >= x->log_length)
        return NULL;
    uint32_t k = x->at[pos / VHDX_SECTOR];
    return k ? &x->v[k - 1] : NULL;
}

static int
index_build(struct log_index *x, const struct log_entry *v, size_t n, uint32_t log_length)
{
    *x = (struct log_index){ .v = v, .n = n, .log_length = log_length };
    x->at = calloc(log_length / VHDX_SECTOR + 1, sizeof *x->at);
    x->next = calloc(n + 1, sizeof *x->next);
    x->end = calloc(n + 1, sizeof *x->end);
    x->dist = calloc(n + 1, sizeof *x->dist);
    if (!x->at || !x->next || !x->end || !x->dist) {
        index_free(x);
        return dimg_error(ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        x->at[v[i].pos / VHDX_SECTOR] = (uint32_t)i + 1;
    uint32_t *claimed = x->dist; /* borrowed: which entry already leads to one */
    for (size_t i = 0; i < n; i++) {
        const struct log_entry *f = find_at(x, ((uint64_t)v[i].pos + v[i].len) % log_length);
        size_t j = f ? (size_t)(f - v) : 0;
        /* One predecessor per entry keeps runs from merging. */
        if (f && f->seq == v[i].seq + 1 && !claimed[j]) {
            claimed[j] = 1;
            x->next[i] = (uint32_t)j + 1;
        }
    }
    memset(x->dist, 0, (n + 1) * sizeof *x->dist);
    /* v is sorted newest first, so a run's later entries come earlier in v. */
    for (size_t i = 0; i < n; i++) {
        if (x->next[i]) {
            x->end[i] = x->end[x->next[i] - 1];
            x->dist[i] = x->dist[x->next[i] - 1] + 1;
        } else {
            x->end[i] = (uint32_t)i;
        }
    }
    return 0;
}

/* From head's tail, consecutive entries must lead to head: the run's length, or 0. */
static size_t
chain_length(const struct log_index *x, const struct log_entry *head)
{
    const struct log_entry *t = find_at(x, head->tail);
    if (!t)
        return 0;
    size_t ti = (size_t)(t - x->v), hi = (size_t)(head - x->v);
    /* Runs never merge, so sharing the end at a smaller distance means on the way. */
    if (x->end[ti] != x->end[hi] || x->dist[ti] < x->dist[hi])
        return 0;
    return (size_t)(x->dist[ti] - x->dist[hi]) + 1;
}

static int
apply_entry(struct dimg_image *img, const uint8_t *e)
{
    uint32_t ndesc = load_le32(e + L_DESCS), first_data = desc_sectors(ndesc), ndata = 0;
    uint8_t sector[VHDX_SECTOR];
    for (uint32_t i = 0; i < ndesc; i++) {
        const uint8_t *d = e + L_HEADER + (size_t)i * L_DESC_SIZE;
        uint64_t target = load_le64(d + 16);
        int r;
        if (memcmp(d, "zero", 4) == 0) {
            r = io_zero_or_write(img->file, target, load_le64(d + 8), false);
        } else {
            const uint8_t *ds = e + ((size_t)first_data + ndata++) * VHDX_SECTOR;
            memcpy(sector, d + 8, 8);                          /* leading bytes */
            memcpy(sector + 8, ds + 8, VHDX_SECTOR - 12);
            memcpy(sector + VHDX_SECTOR - 4, d + 4, 4);        /* trailing bytes */
            r = io_pwrite(img->file, sector, VHDX_SECTOR, target);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Collect the valid entries of the current log GUID inside the file. */
static int
scan_log(struct dimg_image *img, const struct vhdx_state *s, const uint8_t *guid,
         struct log_entry **out, size_t *count)
{
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    struct log_entry *v = NULL;
    size_t n = 0, cap = 0;
    /* Entries of one log barely overlap (a stale one at most partly under a
     * newer one): a log whose entry heads claim much more than its length
     * is crafted, and reading every claim whole could take hours. */
    uint64_t budget = 4 * (uint64_t)s->log_length + LOG_MAX_ENTRY;
    for (uint64_t pos = 0; pos < s->log_length && s->log_offset + pos < (uint64_t)fsize;
         pos += VHDX_SECTOR) {
        struct log_entry ent;
        int r = parse_entry(img, s, (uint32_t)pos, guid, &ent, NULL, &budget);
        if (r < 0) {
            free(v);
            return r;
        }
        if (r == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct log_entry *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return dimg_error(ENOMEM, "out of memory");
            }
            v = nv;
        }
        v[n++] = ent;
    }
    *out = v;
    *count = n;
    return 0;
}

int
vhdx_log_replay(struct dimg_image *img, struct vhdx_state *s, bool apply)
{
    const uint8_t *guid = s->header + VHDX_H_LOG_GUID;
    struct log_entry *v = NULL;
    size_t n = 0, run = 0;
    int r = s->log_length ? scan_log(img, s, guid, &v, &n) : 0;
    if (r < 0)
        return r;
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_seq_desc);
    struct log_index x;
    if ((r = index_build(&x, v, n, s->log_length)) < 0) {
        free(v);
        return r;
    }
    const struct log_entry *head = NULL;
    for (size_t i = 0; i < n && !head; i++)
        if ((run = chain_length(&x, &v[i])) > 0)
            head = &v[i];
    if (!head || !apply) {
        index_free(&x);
        free(v);
        return head ? 1 : 0;
    }
    /* The file was that long when the log was written: a shorter one lost
     * data the log does not hold (qemu refuses it too). */
    int64_t fsize0 = io_get_size(img->file);
    uint64_t flushed = head->flushed_file_offset;
    if (fsize0 >= 0 && flushed > (uint64_t)fsize0) {
        index_free(&x);
        free(v);
        return dimg_error(EINVAL, "%s: the VHDX log was written when the file was %" PRIu64
                                  " bytes long; it is %" PRId64 " now", img->filename,
                          flushed, fsize0);
    }
    const struct log_entry *e = find_at(&x, head->tail);
    for (size_t i = 0; i < run && r >= 0; i++) {
        uint8_t *data = NULL;
        struct log_entry again;
        r = parse_entry(img, s, e->pos, guid, &again, &data, NULL);
        if (r == 1)
            r = apply_entry(img, data);
        else if (r == 0)
            r = dimg_error(EIO, "%s: VHDX log changed during replay", img->filename);
        free(data);
        e = x.next[e - v] ? &v[x.next[e - v] - 1] : NULL;
    }
    uint64_t last = head->last_file_offset;
    index_free(&x);
    free(v);
    if (r < 0)
        return r;
    if ((r = io_flush(img->file)) < 0)
        return r;
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    if (last > (uint64_t)fsize && last <= LOG_MAX_TARGET &&
        (r = io_truncate(img->file, last, DIMG_PREALLOC_OFF)) < 0)
        return r;
    if ((r = vhdx_write_headers(img, s, true, NULL)) < 0)
        return r;
    s->headers_bumped = true;
    return 1;
}

int
vhdx_log_write(struct dimg_image *img, struct vhdx_state *s, const uint64_t *offs,
               const uint8_t *data, unsigned n)
{
    uint32_t first_data = desc_sectors(n), len = (first_data + n) * VHDX_SECTOR;
    if (len > s->log_length)
        return dimg_error(ENOSPC, "%s: the VHDX log is too small", img->filename);
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    uint8_t *e = calloc(1, len);
    if (!e)
        return dimg_error(ENOMEM, "out of memory");
    uint8_t guid[16];
    vhdx_make_guid(guid);
    uint64_t seq = ++s->log_seq;
    memcpy(e, "loge", 4);
    store_le32(e + L_LENGTH, len);
    store_le32(e + L_TAIL, 0);
    store_le64(e + L_SEQ, seq);
    store_le32(e + L_DESCS, n);
    memcpy(e + L_GUID, guid, 16);
    store_le64(e + L_FLUSHED, (uint64_t)fsize);
    store_le64(e + L_LAST, (uint64_t)fsize);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *d = e + L_HEADER + (size_t)i * L_DESC_SIZE;
        uint8_t *ds = e + ((size_t)first_data + i) * VHDX_SECTOR;
        const uint8_t *src = data + (size_t)i * VHDX_SECTOR;
        memcpy(d, "desc", 4);
        memcpy(d + 4, src + VHDX_SECTOR - 4, 4);
        memcpy(d + 8, src, 8);
        store_le64(d + 16, offs[i]);
        store_le64(d + 24, seq);
        memcpy(ds, "data", 4);
        store_le32(ds + 4, (uint32_t)(seq >> 32));
        memcpy(ds + 8, src + 8, VHDX_SECTOR - 12);
        store_le32(ds + VHDX_SECTOR - 4, (uint32_t)seq);
    }
    store_le32(e + L_CRC, crc32c(0, e, len));

    /* The entry first: while the header names no log it is never replayed.
     * Then the header's GUID makes it current (a header naming a log that
     * holds no entry of its GUID makes qemu refuse writes), then apply. */
    int r = io_pwrite(img->file, e, len, s->log_offset);
    if (r == 0)
        r = io_flush(img->file);
    if (r == 0)
        r = vhdx_write_headers(img, s, false, guid);
    for (unsigned i = 0; i < n && r == 0; i++)
        r = io_pwrite(img->file, data + (size_t)i * VHDX_SECTOR, VHDX_SECTOR, offs[i]);
    if (r == 0)
        r = io_flush(img->file);
    if (r == 0)
        r = vhdx_write_headers(img, s, false, NULL);
    free(e);
    return r;
}
