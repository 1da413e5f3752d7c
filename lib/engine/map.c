/*
 * map engine: the allocation of an image as `qemu-img map` lists it.
 *
 * Each step asks dimg_block_status() for the run at the current offset (up to
 * the end of the range) and merges it into the current entry when every
 * property matches and the host offsets continue; otherwise the current entry
 * is handed to the caller and the new run starts the next one.
 */
#include <string.h>

#include "engine/engine.h"
#include "engine/map.h"

static void
entry_from_extent(const struct dimg_extent *x, struct dimg_map_entry *e)
{
    memset(e, 0, sizeof *e);
    e->start = x->offset;
    e->length = x->length;
    e->depth = x->depth;
    e->present = (x->flags & DIMG_EXTENT_ALLOCATED) != 0;
    e->zero = (x->flags & DIMG_EXTENT_ZERO) != 0;
    e->data = (x->flags & DIMG_EXTENT_DATA) != 0;
    e->compressed = (x->flags & DIMG_EXTENT_COMPRESSED) != 0;
    if (x->flags & DIMG_EXTENT_OFFSET) {
        e->has_offset = true;
        e->offset = x->host_offset;
        e->file = x->file_owner;
        e->filename = x->filename ? x->filename : dimg_get_data_filename(x->file_owner);
    }
}

static bool
same_file(const char *a, const char *b)
{
    if (a == b)
        return true;
    if (!a || !b)
        return false;
    return strcmp(a, b) == 0;
}

static bool
mergeable(const struct dimg_map_entry *cur, const struct dimg_map_entry *next)
{
    if (cur->length == 0)
        return false;
    if (cur->zero != next->zero || cur->data != next->data || cur->depth != next->depth ||
        cur->present != next->present || cur->has_offset != next->has_offset)
        return false;
    if (cur->has_offset &&
        (!same_file(cur->filename, next->filename) || cur->offset + cur->length != next->offset))
        return false;
    return true;
}

/* Human output lists only "data and not zero" runs; everything else is folded
 * into one kind so that it merges. */
static void
human_normalize(struct dimg_map_entry *e)
{
    if (!e->data || e->zero) {
        e->data = false;
        e->zero = true;
    }
}

int
dimg_map_walk(dimg_image *img, uint64_t start, uint64_t max_length, unsigned flags,
              dimg_map_fn fn, void *opaque)
{
    uint64_t end = dimg_get_size(img);
    if (max_length != UINT64_MAX) {
        uint64_t lim = start + max_length < start ? UINT64_MAX : start + max_length;
        if (lim < end)
            end = lim;
    }

    struct dimg_map_entry cur = { .start = start };
    while (cur.start + cur.length < end) {
        uint64_t off = cur.start + cur.length;
        struct dimg_extent x;
        int r = dimg_block_status(img, off, end - off, &x);
        if (r < 0)
            return r;
        struct dimg_map_entry next;
        entry_from_extent(&x, &next);
        if (mergeable(&cur, &next)) {
            cur.length += next.length;
            continue;
        }
        if (cur.length > 0) {
            if (flags & DIMG_MAP_HUMAN)
                human_normalize(&next);
            r = fn(&cur, &next, opaque);
            if (r < 0)
                return r;
        }
        cur = next;
    }
    return fn(&cur, NULL, opaque);
}
