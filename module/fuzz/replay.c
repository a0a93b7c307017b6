/*
 * Replays a fuzz target's corpus as a TAP test, without libFuzzer: the
 * test suite runs every kept input through the same checks the fuzzer
 * makes.  Linked with one fuzz_*.c target; argv: corpus directories.
 */

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
replay_file(const char *path)
{
    FILE     *f;
    long      n;
    uint8_t  *buf;

    f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fclose(f);
        return -1;
    }

    buf = malloc(n ? (size_t) n : 1);
    if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        fclose(f);
        return -1;
    }

    fclose(f);

    /* a failed check aborts the process: prove reports the test as dead */
    (void) LLVMFuzzerTestOneInput(buf, (size_t) n);

    free(buf);
    return 0;
}


int
main(int argc, char **argv)
{
    int             i, n, failed;
    char            path[4096];
    DIR            *d;
    struct stat     st;
    struct dirent  *de;

    n = 0;
    failed = 0;

#ifdef REPLAY_CORPUS
    if (argc < 2) {
        static char  *dflt[] = { NULL, REPLAY_CORPUS, NULL };

        dflt[0] = argv[0];
        argv = dflt;
        argc = 2;
    }
#endif

    for (i = 1; i < argc; i++) {
        d = opendir(argv[i]);
        if (d == NULL) {
            printf("not ok %d - open corpus %s\n", ++n, argv[i]);
            failed++;
            continue;
        }

        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.') {
                continue;
            }

            snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
                continue;
            }

            if (replay_file(path) != 0) {
                printf("not ok %d - read %s\n", ++n, path);
                failed++;
                continue;
            }

            printf("ok %d - %s\n", ++n, path);
            fflush(stdout);
        }

        closedir(d);
    }

    if (n == 0) {
        printf("not ok 1 - no corpus inputs\n");
        n = 1;
        failed = 1;
    }

    printf("1..%d\n", n);
    return failed ? 1 : 0;
}
