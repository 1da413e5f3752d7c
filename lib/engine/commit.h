/*
 * The commit engine (dimg_commit, declared in dimg/dimg.h): copy what an
 * image's backing chain holds above a base image down into that base, then
 * let the image's driver empty it.
 */
#ifndef DIMG_ENGINE_COMMIT_H
#define DIMG_ENGINE_COMMIT_H

#include "dimg/dimg.h"

/* Size of one data copy request (the unit of progress and rate limiting). */
#define COMMIT_CHUNK (2u << 20)

#endif
