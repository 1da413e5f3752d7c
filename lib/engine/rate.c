/* The -r rate limit shared by convert and commit. */
#include <errno.h>

#include "engine/engine.h"

void
engine_rate_start(struct engine_rate *r, uint64_t limit)
{
    r->limit = limit;
    atomic_init(&r->bytes, 0);
    clock_gettime(CLOCK_MONOTONIC, &r->start);
}

void
engine_rate_wait(struct engine_rate *r, uint64_t bytes)
{
    if (!r->limit)
        return;
    uint64_t total = atomic_fetch_add(&r->bytes, bytes) + bytes;
    double due = (double)total / (double)r->limit;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - r->start.tv_sec) +
                     (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
    if (due > elapsed) {
        double d = due - elapsed;
        struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}
