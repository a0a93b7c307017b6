/*
 * datagate core: the masker's constant tables, built by the compiler
 * (declared in dg_mask_scan.h; t_mask.c checks the byte classes and the
 * detect codes against their definitions).
 */

#include <stddef.h>
#include <stdint.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


/* the class of each byte (C_* in dg_mask_scan.h) */
DG_MASK_LOCAL const uint8_t  dg_mask_cls[256] = {
    [0x00 ... 0x08] = C_STR,
    ['\t'] = C_WS | C_STR,
    ['\n'] = C_WS | C_STR,
    [0x0b ... 0x0c] = C_STR,
    ['\r'] = C_WS | C_STR,
    [0x0e ... 0x1f] = C_STR,
    [' '] = C_WS | C_DC | C_CHAIN,
    ['"'] = C_STR,
    ['-'] = C_DC | C_CHAIN,
    ['0' ... '9'] = C_DU | C_HEX | C_DIGIT | C_DC,
    ['A' ... 'F'] = C_DU | C_HEX | C_DC,
    ['G' ... 'Z'] = C_DU | C_DC,
    ['\\'] = C_STR | C_CHAIN,
    ['a' ... 'f'] = C_HEX,
    [0x80 ... 0x99] = C_DC,
    [0xbc] = C_DC,
    [0xe3] = C_DC | C_MB | C_CHAIN,
    [0xef] = C_DC | C_MB | C_CHAIN
};


/* the detect character code of an ASCII byte (see dg_det_char()) */
DG_MASK_LOCAL const uint8_t  dg_det_ascii[128] = {
    [0x00 ... 0x1f] = DG_DET_OTHER,
    [' '] = DG_DET_SEP,
    ['!' ... ','] = DG_DET_OTHER,
    ['-'] = DG_DET_SEP,
    ['.' ... '/'] = DG_DET_OTHER,
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
    [':' ... '@'] = DG_DET_OTHER,
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M',
    'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z',
    ['[' ... 'w'] = DG_DET_OTHER,
    'x',
    ['y' ... 0x7f] = DG_DET_OTHER
};


/* 1: printable ASCII that needs no escaping in a JSON string */
DG_MASK_LOCAL const uint8_t  dg_mask_plain[256] = {
#define P16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    P16(0), P16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* 0x20: '"' */
    P16(1), P16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* 0x50: '\\' */
    P16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,     /* 0x7f */
    P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), P16(0)
#undef P16
};


#if (DG_MASK_X86)

/* '"', '\\' and 0x1f in every byte */
DG_MASK_LOCAL const uint8_t  dg_mask_v32[3][32] __attribute__((aligned(32))) = {
    { DG_MASK_X32('"') }, { DG_MASK_X32('\\') }, { DG_MASK_X32(0x1f) }
};

/*
 * C_DC by high nibble, by low nibble, and 0x0f (dg_mask_dc32_avx2()): a
 * bit per range of bytes of the same high nibble (0x01: 2x, ' ' and '-';
 * 0x02: 3x, digits; 0x04: 4x and 0x08: 5x, capitals; 0x10: 8x and 0x20:
 * 9x, 80-99; 0x40: BC; 0x80: E3 and EF); a byte is of C_DC when the bits
 * of its two nibbles meet.
 */
DG_MASK_LOCAL const uint8_t  dg_mask_dc32[3][32] __attribute__((aligned(32))) = {
    { DG_MASK_LANES(0, 0, 0x01, 0x02, 0x04, 0x08, 0, 0,
                    0x10, 0x20, 0, 0x40, 0, 0, 0x80, 0) },
    { DG_MASK_LANES(0x3b, 0x3e, 0x3e, 0xbe, 0x3e, 0x3e, 0x3e, 0x3e,
                    0x3e, 0x3e, 0x1c, 0x14, 0x54, 0x15, 0x14, 0x94) },
    { DG_MASK_X32(0x0f) }
};


/* the Keiser-Lemire tables: the previous byte by its high nibble, */
#define DG_U8_T1H                                                             \
    DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG,           \
    DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG,           \
    DG_U8_TWO_CONTS, DG_U8_TWO_CONTS, DG_U8_TWO_CONTS, DG_U8_TWO_CONTS,       \
    DG_U8_TOO_SHORT | DG_U8_OVERLONG_2,                                       \
    DG_U8_TOO_SHORT,                                                          \
    DG_U8_TOO_SHORT | DG_U8_OVERLONG_3 | DG_U8_SURROGATE,                     \
    DG_U8_TOO_SHORT | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80                    \
        | DG_U8_OVERLONG_4

/* by its low nibble, */
#define DG_U8_T1L                                                             \
    DG_U8_CARRY | DG_U8_OVERLONG_3 | DG_U8_OVERLONG_2 | DG_U8_OVERLONG_4,     \
    DG_U8_CARRY | DG_U8_OVERLONG_2,                                           \
    DG_U8_CARRY,                                                              \
    DG_U8_CARRY,                                                              \
    DG_U8_CARRY | DG_U8_TOO_LARGE,                                            \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80 | DG_U8_SURROGATE,     \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,                       \
    DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80

/* this byte by its high nibble */
#define DG_U8_T2H                                                             \
    DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT,       \
    DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT,       \
    DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS                       \
        | DG_U8_OVERLONG_3 | DG_U8_TOO_LARGE_80 | DG_U8_OVERLONG_4,           \
    DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS                       \
        | DG_U8_OVERLONG_3 | DG_U8_TOO_LARGE,                                 \
    DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS                       \
        | DG_U8_SURROGATE | DG_U8_TOO_LARGE,                                  \
    DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS                       \
        | DG_U8_SURROGATE | DG_U8_TOO_LARGE,                                  \
    DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT

DG_MASK_LOCAL const uint8_t  dg_mask_k32[DG_K_MAX][32] __attribute__((aligned(32))) = {
    [DG_K_IDX] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                   31 },
    [DG_K_SP] = { DG_MASK_X32(' ') },
    [DG_K_STAR] = { DG_MASK_X32('*') },
    [DG_K_BF] = { DG_MASK_X32(0xbf) },
    [DG_K_NIB] = { DG_MASK_X32(0x0f) },
    [DG_K_E0] = { DG_MASK_X32(0xe0 - 0x80) },
    [DG_K_F0] = { DG_MASK_X32(0xf0 - 0x80) },
    [DG_K_80] = { DG_MASK_X32(0x80) },
    [DG_K_TMAX] = { DG_MASK_X16(0xff), DG_MASK_X8(0xff), DG_MASK_X4(0xff),
                    0xff, 0xf0 - 1, 0xe0 - 1, 0xc0 - 1 },

    /* the escapes (dg_mask_esc_avx2): by the high nibble 0-1 (controls)
     * 1, 2 ('"') 2, 5 ('\\') 4, 7 (0x7f) 8; by the low one 1 always,
     * and 2 2, 0xc 4, 0xf 8 */
    [DG_K_ESC_HI] = { DG_MASK_LANES(1, 1, 2, 0, 0, 4, 0, 8,
                                    0, 0, 0, 0, 0, 0, 0, 0) },
    [DG_K_ESC_LO] = { DG_MASK_LANES(1, 1, 3, 1, 1, 1, 1, 1,
                                    1, 1, 1, 1, 5, 1, 1, 9) },

    [DG_K_T1H] = { DG_MASK_LANES(DG_U8_T1H) },
    [DG_K_T1L] = { DG_MASK_LANES(DG_U8_T1L) },
    [DG_K_T2H] = { DG_MASK_LANES(DG_U8_T2H) },
    [DG_K_9F] = { DG_MASK_X32(0x9f) },
    [DG_K_M113] = { DG_MASK_X32((uint8_t) -113) },
    [DG_K_ED] = { DG_MASK_X32(0xed) },
    [DG_K_C0] = { DG_MASK_X32(0xc0) }
};

#endif
