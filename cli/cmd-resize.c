/* resize: not implemented yet. */
#include "cmd.h"

int
cmd_resize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("resize: not implemented yet");
    return 1;
}
