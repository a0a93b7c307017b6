/*
 * datagate audit verify FILE...: check the hash chain of audit logs.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datagate.h"
#include "dg_audit.h"


static const char  dg_audit_usage[] =
"Usage: datagate audit verify [--head HASH] [--quiet] FILE...\n"
"\n"
"Check the hash chain of datagate audit logs (datagate_audit_log).\n"
"\n"
"Give the files in the order they were written, oldest first, e.g.\n"
"  datagate audit verify audit.log.2 audit.log.1 audit.log\n"
"Every record must carry the hash of the record before it and the next\n"
"sequence number, across files: the first record of a later file must\n"
"link to the last record of the file before it.  The first record of\n"
"the first file may continue an older file that is not given.\n"
"\n"
"The first record that is edited, removed, inserted, reordered or\n"
"damaged is reported as FILE:LINE with what is wrong with it, e.g.\n"
"  audit.log:1042: record edited: seq 5120 does not match its hash\n"
"  audit.log:77: record(s) missing before this line: seq 80 follows ...\n"
"\n"
"Records the gateway could not write (disk full, file removed, ...) are\n"
"counted in the next record it wrote (\"lost\"); every such place is\n"
"reported, and the chain of the records written is still checked:\n"
"  audit.log:310: 4 record(s) lost before this record (seq 305): the\n"
"  gateway could not write them\n"
"A line left incomplete by a write that failed part-way, followed by\n"
"the record that counts it, is reported with that place.\n"
"\n"
"A chain alone cannot show that records were cut from its end.  Compare\n"
"the last hash with the live head: \"audit\".\"last_hash\" of the\n"
"datagate_status endpoint, or the head nginx logs at start and reload.\n"
"\n"
"Options:\n"
"  --head HASH   the hash the last record must have (64 hex digits)\n"
"  -q, --quiet   print nothing when the chain holds\n"
"  -h, --help    this text\n"
"\n"
"The chain hash is defined in docs/audit.md (SHA-256, or SM3 for logs\n"
"written with datagate_audit_log ... hash=sm3; each record names its\n"
"algorithm).\n"
"\n"
"Exit status:\n"
"  0  the chain holds and no record was lost\n"
"  1  the chain is broken (the first break is reported), or records\n"
"     were lost\n"
"  2  usage error\n"
"  3  a file cannot be read\n";


/* loss places printed one by one; beyond that only counted */
#define DG_AUDIT_LOST_PRINT     100


static int dg_audit_verify_cmd(int argc, char **argv);
static int dg_audit_read(dg_audit_verify_t *v, const char *name,
    char *buf, size_t cap);
static void dg_audit_print_lost(dg_audit_verify_t *v);


int
dg_cmd_audit(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "audit") == 0) {
        argc--;
        argv++;
    }

    if (argc == 0) {
        fputs(dg_audit_usage, stderr);
        return DG_EXIT_USAGE;
    }

    if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0
        || strcmp(argv[0], "help") == 0)
    {
        fputs(dg_audit_usage, stdout);
        return DG_EXIT_OK;
    }

    if (strcmp(argv[0], "verify") == 0) {
        return dg_audit_verify_cmd(argc - 1, argv + 1);
    }

    fprintf(stderr, "datagate audit: unknown command \"%s\"\n\n", argv[0]);
    fputs(dg_audit_usage, stderr);

    return DG_EXIT_USAGE;
}


static int
dg_audit_verify_cmd(int argc, char **argv)
{
    int                 i, quiet, nfiles, rc;
    char               *buf, **files;
    const char         *head;
    dg_audit_verify_t   v;

    quiet = 0;
    head = NULL;
    nfiles = 0;

    files = calloc(argc + 1, sizeof(char *));
    if (files == NULL) {
        fprintf(stderr, "datagate audit verify: out of memory\n");
        return DG_EXIT_RUNTIME;
    }

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(dg_audit_usage, stdout);
            free(files);
            return DG_EXIT_OK;
        }

        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
            continue;
        }

        if (strcmp(argv[i], "--head") == 0
            || strncmp(argv[i], "--head=", 7) == 0)
        {
            head = (argv[i][6] == '=') ? argv[i] + 7
                   : (i + 1 < argc) ? argv[++i] : NULL;

            if (head == NULL || strlen(head) != DG_AUDIT_HEXLEN
                || strspn(head, "0123456789abcdefABCDEF") != DG_AUDIT_HEXLEN)
            {
                fprintf(stderr, "datagate audit verify: --head needs the 64"
                        " hex digits of a record hash\n");
                free(files);
                return DG_EXIT_USAGE;
            }

            continue;
        }

        if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++) {
                files[nfiles++] = argv[i];
            }

            break;
        }

        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "datagate audit verify: unknown option \"%s\"\n"
                    "Try \"datagate audit verify --help\".\n", argv[i]);
            free(files);
            return DG_EXIT_USAGE;
        }

        files[nfiles++] = argv[i];
    }

    if (nfiles == 0) {
        fprintf(stderr, "datagate audit verify: no file given\n"
                "Usage: datagate audit verify [--head HASH] [--quiet]"
                " FILE...\n");
        free(files);
        return DG_EXIT_USAGE;
    }

    buf = malloc(DG_AUDIT_MAX_LINE + 2);

    if (buf == NULL || dg_audit_verify_init(&v) != 0) {
        fprintf(stderr, "datagate audit verify: out of memory\n");
        free(buf);
        free(files);
        return DG_EXIT_RUNTIME;
    }

    rc = DG_EXIT_OK;

    for (i = 0; i < nfiles; i++) {
        rc = dg_audit_read(&v, files[i], buf, DG_AUDIT_MAX_LINE + 2);
        if (rc != DG_EXIT_OK) {
            goto done;
        }
    }

    (void) dg_audit_verify_end(&v);

    if (v.nlost > DG_AUDIT_LOST_PRINT) {
        printf("... and %" PRIu64 " more place(s) of lost records\n",
               v.nlost - DG_AUDIT_LOST_PRINT);
    }

    if (v.broken) {
        printf("%s:%" PRIu64 ": %s", v.bad_file, v.bad_line, v.what);

        if (v.kind == DG_AUDIT_BREAK_GAP) {
            if (v.found_file) {
                printf("; the record with seq %" PRIu64 " is at %s:%"
                       PRIu64 ": records reordered", v.want_seq,
                       v.found_file, v.found_line);

            } else {
                printf("; no record with seq %" PRIu64 " follows:"
                       " removed", v.want_seq);
            }
        }

        printf("\n");
        rc = DG_EXIT_FAIL;
        goto done;
    }

    if (head && v.records > 0 && strncasecmp(head, v.last.hash,
                                             DG_AUDIT_HEXLEN) != 0)
    {
        printf("%s:%" PRIu64 ": the last record (seq %" PRIu64 ") is not the"
               " given head %.64s: records were removed from the end, or"
               " a later file is missing\n", v.last_file, v.last_line,
               v.last.seq, head);
        rc = DG_EXIT_FAIL;
        goto done;
    }

    if (head && v.records == 0) {
        printf("%s: no records, but a head was given\n", files[nfiles - 1]);
        rc = DG_EXIT_FAIL;
        goto done;
    }

    if (v.lost) {
        printf("LOST: %" PRIu64 " record(s) could not be written (%" PRIu64
               " place%s); the %" PRIu64 " records written form an"
               " unbroken chain: %d file%s, seq %" PRIu64 "..%" PRIu64
               ", %s\n", v.lost, v.nlost, v.nlost == 1 ? "" : "s",
               v.records, nfiles, nfiles == 1 ? "" : "s", v.first.seq,
               v.last.seq, dg_audit_alg_name(v.last.alg));
        printf("last:  %s:%" PRIu64 " seq %" PRIu64 " hash %s\n",
               v.last_file, v.last_line, v.last.seq, v.last.hash);
        rc = DG_EXIT_FAIL;
        goto done;
    }

    if (!quiet) {
        if (v.records == 0) {
            printf("ok: %d file%s, no records\n", nfiles,
                   nfiles == 1 ? "" : "s");

        } else {
            printf("ok: %d file%s, %" PRIu64 " records, seq %" PRIu64
                   "..%" PRIu64 ", %s\n", nfiles, nfiles == 1 ? "" : "s",
                   v.records, v.first.seq, v.last.seq,
                   dg_audit_alg_name(v.last.alg));
            printf("first: seq %" PRIu64 " prev %s%s\n", v.first.seq,
                   v.first.prev,
                   strcmp(v.first.prev, dg_audit_genesis) == 0
                   ? " (start of the chain)" : " (continues an older file)");
            printf("last:  %s:%" PRIu64 " seq %" PRIu64 " hash %s\n",
                   v.last_file, v.last_line, v.last.seq, v.last.hash);
        }
    }

done:

    dg_audit_verify_free(&v);
    free(buf);
    free(files);

    return rc;
}


/* feed the lines of one file; DG_EXIT_OK or DG_EXIT_RUNTIME */
static int
dg_audit_read(dg_audit_verify_t *v, const char *name, char *buf, size_t cap)
{
    int       c, toolong;
    FILE     *f;
    size_t    len;
    uint64_t  nlost;

    f = (strcmp(name, "-") == 0) ? stdin : fopen(name, "r");
    if (f == NULL) {
        fprintf(stderr, "datagate audit verify: %s: %s\n", name,
                strerror(errno));
        return DG_EXIT_RUNTIME;
    }

    dg_audit_verify_file(v, name);

    len = 0;
    toolong = 0;

    for ( ;; ) {
        c = getc_unlocked(f);

        if (c != '\n' && c != EOF) {
            if (len < cap) {
                buf[len++] = (char) c;

            } else {
                toolong = 1;
            }

            continue;
        }

        if (c == EOF && len == 0 && !toolong) {
            break;
        }

        if (c == EOF) {
            /* the last line has no LF: a torn write */
            dg_audit_verify_incomplete(v);
        }

        if (toolong || memchr(buf, '\0', len) != NULL) {
            /* NUL bytes or an endless line are never a record */
            buf[0] = '\0';
            len = 1;
        }

        nlost = v->nlost;

        dg_audit_verify_line(v, buf, len);

        if (v->nlost != nlost) {
            dg_audit_print_lost(v);
        }

        if (c == EOF) {
            break;
        }

        len = 0;
        toolong = 0;
    }

    if (ferror(f)) {
        fprintf(stderr, "datagate audit verify: %s: read error\n", name);
        if (f != stdin) {
            fclose(f);
        }
        return DG_EXIT_RUNTIME;
    }

    if (f != stdin) {
        fclose(f);
    }

    return DG_EXIT_OK;
}


/* one place where records were lost: the record that says so */
static void
dg_audit_print_lost(dg_audit_verify_t *v)
{
    if (v->nlost > DG_AUDIT_LOST_PRINT) {
        return;
    }

    if (v->torn_line) {
        printf("%s:%" PRIu64 ": incomplete line: a record whose write"
               " failed part-way (counted in the next record)\n",
               v->torn_file, v->torn_line);
    }

    printf("%s:%" PRIu64 ": %" PRIu64 " record(s) lost before this record"
           " (seq %" PRIu64 "): the gateway could not write them\n",
           v->lost_file, v->lost_line, v->lost_count, v->lost_seq);
}
