/*
 * datagate core: which request paths an enforced location refuses.
 *
 * Plain C, no nginx headers.  nginx chooses the location (and so the
 * dataset and its plan) from its own normalised form of the path: decoded
 * once, "." and ".." segments resolved, ";" an ordinary character.  The
 * provider sees either the path as the client sent it (proxy_pass without
 * a URI part) or nginx's form escaped again (with one), and normalises it
 * in its own way: servlet containers drop ";parameters" from each segment
 * before they resolve "..", some servers decode twice or take "\" or an
 * encoded "/" for a separator, Windows drops trailing dots and spaces.  A
 * path on which the two may disagree can leave the location's dataset, so
 * it is refused.  Each "/"-separated segment of the path is percent-
 * decoded repeatedly (at most DG_PATH_DECODE_MAX times), and at every
 * step it must not be:
 *
 *   - a dot segment: only dots and spaces, at least one dot ("." "..",
 *     "...", ". ."), with any ";parameters" removed first;
 *   - a segment with parameters (";");
 *   - an encoded separator: "/" produced by decoding, or "\" (raw or
 *     decoded);
 *   - a NUL, or an overlong UTF-8 form (never valid; old decoders read
 *     C0 AE as ".");
 *   - a raw "#" (not part of a request target; nginx stops its path
 *     there, the provider may not).
 *
 * A segment still encoded after DG_PATH_DECODE_MAX decodings is refused
 * as well.
 */

#ifndef DG_PATH_H
#define DG_PATH_H

#include <stddef.h>


#define DG_PATH_DECODE_MAX      4


typedef enum {
    DG_PATH_OK = 0,
    DG_PATH_DOT_SEGMENT,
    DG_PATH_PARAMETERS,
    DG_PATH_ENCODED_SLASH,
    DG_PATH_BACKSLASH,
    DG_PATH_NUL,
    DG_PATH_OVERLONG,
    DG_PATH_FRAGMENT,
    DG_PATH_TOO_ENCODED,
    DG_PATH_MAX
} dg_path_e;


/*
 * Checks path[0..len) (the path only: without the query string).  scratch
 * must hold len bytes; it is used only when the path has a '%'.
 */
dg_path_e dg_path_check(const unsigned char *path, size_t len,
    unsigned char *scratch);

/* "a dot segment (\".\" or \"..\")", ...; never NULL */
const char *dg_path_problem(dg_path_e e);

#endif /* DG_PATH_H */
