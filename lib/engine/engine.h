/* Engines: whole-image operations built only on the public image API and the driver table. */
#ifndef DIMG_ENGINE_ENGINE_H
#define DIMG_ENGINE_ENGINE_H

#include "core/internal.h"

#endif
