/* libFuzzer target for the reply parser: never crash, never read out of
 * bounds, never set reserved bits, never leave an axis beyond +-80. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/reply.h"

static int8_t axis(uint32_t word, int shift) { return (int8_t)((word >> shift) & 0xFF); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A heap copy of exactly `size` bytes, so ASan catches any read past it. */
    char *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    uint32_t word;
    size_t reply_len;
    int until_close;
    int st = kb_reply_complete(buf, size, &reply_len, &until_close);
    if (st == KB_OK && reply_len > size) abort();
    const int parsers = 2;
    for (int p = 0; p < parsers; p++) {
        int r = p == 0 ? kb_parse_reply(buf, size, &word) : kb_parse_json(buf, size, &word);
        if (r != KB_OK && word != 0) abort();
        if (word & KB_RESERVED_BITS) abort();
        if (abs(axis(word, 16)) > KB_AXIS_RANGE || abs(axis(word, 24)) > KB_AXIS_RANGE) abort();
    }
    free(buf);
    return 0;
}
