/* Parsing the input-bot server's reply. Pure functions over a byte buffer, no
 * I/O and no allocation, so that libFuzzer can hammer them (fuzz_reply.c). */
#ifndef KARTBOT_REPLY_H
#define KARTBOT_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define KB_AXIS_RANGE 80
#define KB_MAX_REPLY 8192

/* Bits of the core's BUTTONS word (m64p_plugin.h, x86-64 gcc layout). */
#define KB_RESERVED_BITS 0xC000u

enum kb_status {
    KB_OK = 0,
    KB_NEED_MORE = 1,      /* a prefix of a valid reply: read more bytes */
    KB_E_NO_SEPARATOR = -1,/* the whole reply held no blank line */
    KB_E_STATUS = -2,      /* HTTP status other than 2xx */
    KB_E_NOT_JSON = -3,    /* the body is not a JSON object */
    KB_E_TOO_LARGE = -4,   /* longer than KB_MAX_REPLY */
    KB_E_BAD_HEADER = -5,  /* unparseable Content-Length */
};

/* How much of buf is one complete reply. Returns KB_OK and sets *reply_len
 * when headers and Content-Length bytes of body are there; KB_NEED_MORE when
 * not yet; *until_close=1 when the reply has no Content-Length (then the body
 * ends when the server closes) or asks for Connection: close. */
int kb_reply_complete(const char *buf, size_t len, size_t *reply_len, int *until_close);

/* Turn a complete reply (status line and headers optional, then a blank
 * line, then the JSON object) into a BUTTONS word. Missing keys are 0, keys of
 * other types are ignored, buttons are pressed when non-zero, axes are
 * clamped to +-80; reserved bits stay 0. On error *word is 0. */
int kb_parse_reply(const char *buf, size_t len, uint32_t *word);

/* The JSON object alone (no headers). */
int kb_parse_json(const char *buf, size_t len, uint32_t *word);

#endif
