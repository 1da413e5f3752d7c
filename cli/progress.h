/* qemu-img's -p progress line: "    (NN.NN/100%)\r" on stdout, "\n" at the end. */
#ifndef DIMG_CLI_PROGRESS_H
#define DIMG_CLI_PROGRESS_H

#include <stdbool.h>

/* enabled false makes every call a no-op.  min_step: percent between prints (qemu uses 1.0). */
void progress_init(bool enabled, double min_step);
/* Set the absolute progress in percent (0..100); prints when it moved by min_step. */
void progress_set(double percent);
/* Print the final 100% line and a newline (only when enabled). */
void progress_end(void);

#endif
