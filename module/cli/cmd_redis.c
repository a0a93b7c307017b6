/* placeholder until the Redis commands land */
#include <stdio.h>
#include "datagate.h"

int
dg_cmd_incident(const char *verb, int argc, char **argv)
{
    fprintf(stderr, "datagate: %s: not built yet\n", verb);
    return DG_EXIT_RUNTIME;
}

int
dg_cmd_grant(int argc, char **argv)
{
    fprintf(stderr, "datagate: grant: not built yet\n");
    return DG_EXIT_RUNTIME;
}
