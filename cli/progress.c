/* Progress output in qemu-img's format. */
#include <stdio.h>

#include "progress.h"

static bool active;
static double step, last_printed;

static void
print(double percent)
{
    printf("    (%3.2f/100%%)\r", percent);
    fflush(stdout);
    last_printed = percent;
}

void
progress_init(bool enabled, double min_step)
{
    active = enabled;
    step = min_step > 0 ? min_step : 1.0;
    if (active)
        print(0.0);
}

void
progress_set(double percent)
{
    if (!active)
        return;
    if (percent > 100.0)
        percent = 100.0;
    if (percent - last_printed > step || (percent >= 100.0 && last_printed < 100.0))
        print(percent);
}

void
progress_end(void)
{
    if (!active)
        return;
    print(100.0);
    printf("\n");
    fflush(stdout);
    active = false;
}
