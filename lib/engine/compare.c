/* compare engine (placeholder until implemented). */
#include "engine/engine.h"
