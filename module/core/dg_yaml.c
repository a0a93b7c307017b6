/*
 * datagate core: a strict YAML document tree from libyaml events.
 *
 * One document per file; no aliases, anchors or tags; keys are scalars and
 * unique; nesting depth and node count are bounded; scalars may not hold
 * NUL.  The tree lives in the caller's arena.
 */

#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "dg_util.h"


#define DG_YAML_SMALL_MAP       16      /* pairs: quadratic dup check */


static int
dg_yaml_err(char *err, size_t errlen, const char *name, size_t line,
    const char *msg, const char *ctx)
{
    if (ctx != NULL && ctx[0] != '\0') {
        snprintf(err, errlen, "%s:%zu: yaml: %s (%s)", name, line, msg, ctx);

    } else {
        snprintf(err, errlen, "%s:%zu: yaml: %s", name, line, msg);
    }

    return -1;
}


static int
dg_yaml_check_dups(dg_arena_t *a, const char *name, dg_ynode_t *map,
    char *err, size_t errlen)
{
    dg_hash_t          h;
    dg_ynode_t        *k, *j;
    const dg_hent_t   *e;
    char               msg[256];

    if (map->n / 2 <= DG_YAML_SMALL_MAP) {
        for (k = map->child; k && k->next; k = k->next->next) {
            for (j = map->child; j != k; j = j->next->next) {
                if (j->len == k->len && memcmp(j->str, k->str, k->len) == 0) {
                    snprintf(msg, sizeof(msg),
                             "duplicate key '%.100s' (first at line %u)",
                             k->str, (unsigned) j->line);
                    return dg_yaml_err(err, errlen, name, k->line, msg, NULL);
                }
            }
        }

        return 0;
    }

    if (dg_hash_init(&h, a, map->n / 2) != 0) {
        return dg_yaml_err(err, errlen, name, map->line, "out of memory",
                           NULL);
    }

    for (k = map->child; k && k->next; k = k->next->next) {
        e = dg_hash_find(&h, k->str, k->len);
        if (e != NULL) {
            j = (dg_ynode_t *) e->val;
            snprintf(msg, sizeof(msg),
                     "duplicate key '%.100s' (first at line %u)",
                     k->str, (unsigned) j->line);
            return dg_yaml_err(err, errlen, name, k->line, msg, NULL);
        }

        if (dg_hash_add(&h, k->str, k->len, k) != 0) {
            return dg_yaml_err(err, errlen, name, k->line, "out of memory",
                               NULL);
        }
    }

    return 0;
}


dg_ynode_t *
dg_yaml_parse(dg_arena_t *a, const char *name, const char *data, size_t len,
    size_t *budget, char *err, size_t errlen)
{
    int             done, ndocs, rc;
    size_t          depth, line;
    yaml_event_t    ev;
    dg_ynode_t     *root, *node, *parent;
    yaml_char_t    *anchor, *tag;
    yaml_parser_t   parser;
    dg_ynode_t     *stack[DG_YAML_MAX_DEPTH + 1];

    root = NULL;
    depth = 0;
    ndocs = 0;
    done = 0;
    rc = -1;

    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s:1: yaml: out of memory", name);
        return NULL;
    }

    /* a UTF-8 byte order mark is fine; libyaml only skips it itself when
     * it guesses the encoding, and we do not let it guess (no UTF-16) */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
        data += 3;
        len -= 3;
    }

    yaml_parser_set_input_string(&parser, (const unsigned char *) data, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            line = parser.problem_mark.line + 1;
            if (parser.problem == NULL) {
                dg_yaml_err(err, errlen, name, line, "syntax error", NULL);
            } else {
                dg_yaml_err(err, errlen, name, line, parser.problem,
                            parser.context);
            }
            goto failed;
        }

        line = ev.start_mark.line + 1;
        node = NULL;

        switch (ev.type) {

        case YAML_STREAM_END_EVENT:
            done = 1;
            break;

        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1) {
                dg_yaml_err(err, errlen, name, line,
                            "only one YAML document per file", NULL);
                goto failed_event;
            }
            break;

        case YAML_ALIAS_EVENT:
            dg_yaml_err(err, errlen, name, line,
                        "aliases are not allowed in a policy", NULL);
            goto failed_event;

        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (ev.type == YAML_SCALAR_EVENT) {
                anchor = ev.data.scalar.anchor;
                tag = ev.data.scalar.tag;

            } else if (ev.type == YAML_SEQUENCE_START_EVENT) {
                anchor = ev.data.sequence_start.anchor;
                tag = ev.data.sequence_start.tag;

            } else {
                anchor = ev.data.mapping_start.anchor;
                tag = ev.data.mapping_start.tag;
            }

            if (anchor) {
                dg_yaml_err(err, errlen, name, line,
                            "anchors are not allowed in a policy", NULL);
                goto failed_event;
            }

            if (tag) {
                dg_yaml_err(err, errlen, name, line,
                            "tags are not allowed in a policy", NULL);
                goto failed_event;
            }

            if (*budget == 0) {
                dg_yaml_err(err, errlen, name, line,
                            "too many YAML nodes", NULL);
                goto failed_event;
            }
            (*budget)--;

            node = dg_arena_alloc(a, sizeof(dg_ynode_t));
            if (node == NULL) {
                dg_yaml_err(err, errlen, name, line, "out of memory", NULL);
                goto failed_event;
            }

            node->line = (uint32_t) line;

            if (ev.type == YAML_SCALAR_EVENT) {
                node->type = DG_Y_SCALAR;
                node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                node->len = ev.data.scalar.length;

                if (memchr(ev.data.scalar.value, '\0', node->len) != NULL) {
                    dg_yaml_err(err, errlen, name, line,
                                "NUL character in a value", NULL);
                    goto failed_event;
                }

                node->str = dg_arena_strndup(a,
                                      (const char *) ev.data.scalar.value,
                                      node->len);
                if (node->str == NULL) {
                    dg_yaml_err(err, errlen, name, line, "out of memory",
                                NULL);
                    goto failed_event;
                }

            } else {
                node->type = ev.type == YAML_SEQUENCE_START_EVENT
                             ? DG_Y_SEQ : DG_Y_MAP;
                node->str = "";
            }

            /* attach */
            if (depth == 0) {
                if (root != NULL) {
                    dg_yaml_err(err, errlen, name, line,
                                "only one YAML document per file", NULL);
                    goto failed_event;
                }
                root = node;

            } else {
                parent = stack[depth - 1];

                if (parent->type == DG_Y_MAP && parent->n % 2 == 0
                    && node->type != DG_Y_SCALAR)
                {
                    dg_yaml_err(err, errlen, name, line,
                                "mapping keys must be plain values", NULL);
                    goto failed_event;
                }

                if (parent->n == UINT32_MAX) {
                    dg_yaml_err(err, errlen, name, line, "too many items",
                                NULL);
                    goto failed_event;
                }

                if (parent->last) {
                    parent->last->next = node;
                } else {
                    parent->child = node;
                }
                parent->last = node;
                parent->n++;
            }

            if (node->type != DG_Y_SCALAR) {
                if (depth >= DG_YAML_MAX_DEPTH) {
                    dg_yaml_err(err, errlen, name, line,
                                "nesting too deep", NULL);
                    goto failed_event;
                }
                stack[depth++] = node;
            }
            break;

        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth == 0) {
                dg_yaml_err(err, errlen, name, line, "unbalanced document",
                            NULL);
                goto failed_event;
            }

            node = stack[--depth];

            if (node->type == DG_Y_MAP
                && dg_yaml_check_dups(a, name, node, err, errlen) != 0)
            {
                goto failed_event;
            }
            break;

        default:
            break;
        }

        yaml_event_delete(&ev);
    }

    if (root == NULL
        || (root->type == DG_Y_SCALAR && root->plain && root->len == 0))
    {
        snprintf(err, errlen, "%s:1: file: empty policy file", name);
        goto failed;
    }

    rc = 0;
    goto failed;

failed_event:

    yaml_event_delete(&ev);

failed:

    yaml_parser_delete(&parser);

    return rc == 0 ? root : NULL;
}


dg_ynode_t *
dg_ymap_get(const dg_ynode_t *map, const char *key)
{
    size_t       len;
    dg_ynode_t  *k;

    if (map == NULL || map->type != DG_Y_MAP) {
        return NULL;
    }

    len = strlen(key);

    for (k = map->child; k && k->next; k = k->next->next) {
        if (k->len == len && memcmp(k->str, key, len) == 0) {
            return k->next;
        }
    }

    return NULL;
}


const char *
dg_ytype_name(const dg_ynode_t *n)
{
    if (n == NULL) {
        return "nothing";
    }

    switch (n->type) {
    case DG_Y_SEQ:
        return "a list";
    case DG_Y_MAP:
        return "a mapping";
    default:
        if (n->plain && (n->len == 0 || strcmp(n->str, "~") == 0
                         || strcmp(n->str, "null") == 0))
        {
            return "an empty value";
        }
        return "a single value";
    }
}
