/* Engines: whole-image operations built only on the public image API and the driver table. */
#ifndef DIMG_ENGINE_ENGINE_H
#define DIMG_ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "core/internal.h"

/* -r: keep the bytes copied by all workers at or below limit per second. */
struct engine_rate {
    uint64_t limit;            /* bytes per second; 0: unlimited */
    _Atomic uint64_t bytes;    /* copied so far */
    struct timespec start;
};

void engine_rate_start(struct engine_rate *r, uint64_t limit);
/* Account for bytes just copied; sleep until they are due at the rate. */
void engine_rate_wait(struct engine_rate *r, uint64_t bytes);

#endif
