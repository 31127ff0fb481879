#include "reply.h"

#include <string.h>

static const struct { const char *key; uint32_t bit; } BUTTON_KEYS[] = {
    {"R_DPAD", 0x0001},    {"L_DPAD", 0x0002},    {"D_DPAD", 0x0004},
    {"U_DPAD", 0x0008},    {"START_BUTTON", 0x0010}, {"Z_TRIG", 0x0020},
    {"B_BUTTON", 0x0040},  {"A_BUTTON", 0x0080},  {"R_CBUTTON", 0x0100},
    {"L_CBUTTON", 0x0200}, {"D_CBUTTON", 0x0400}, {"U_CBUTTON", 0x0800},
    {"R_TRIG", 0x1000},    {"L_TRIG", 0x2000},
};
#define N_BUTTONS (sizeof BUTTON_KEYS / sizeof BUTTON_KEYS[0])

/* Index just past the first blank line (CRLF CRLF or LF LF), or 0. */
static size_t header_end(const char *buf, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n') return i + 2;
        if (i + 3 < len && buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' &&
            buf[i + 3] == '\n')
            return i + 4;
    }
    return 0;
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Case-insensitive: does line [p, end) start with name followed by ':'? Sets
 * *value to the first byte after the colon and blanks. */
static int header_is(const char *p, const char *end, const char *name, const char **value) {
    size_t n = strlen(name);
    if ((size_t)(end - p) <= n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != name[i]) return 0;
    if (p[n] != ':') return 0;
    p += n + 1;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    *value = p;
    return 1;
}

int kb_reply_complete(const char *buf, size_t len, size_t *reply_len, int *until_close) {
    *reply_len = 0;
    *until_close = 0;
    size_t hend = header_end(buf, len);
    if (hend == 0) return len > KB_MAX_REPLY ? KB_E_TOO_LARGE : KB_NEED_MORE;
    long content_length = -1;
    const char *p = buf, *end = buf + hend;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *v;
        if (header_is(p, eol, "content-length", &v)) {
            long n = 0;
            int digits = 0;
            while (v < eol && *v >= '0' && *v <= '9') {
                n = n * 10 + (*v++ - '0');
                if (n > KB_MAX_REPLY) return KB_E_TOO_LARGE;
                digits++;
            }
            if (!digits) return KB_E_BAD_HEADER;
            content_length = n;
        } else if (header_is(p, eol, "connection", &v)) {
            if ((size_t)(eol - v) >= 5 && lower(v[0]) == 'c' && lower(v[1]) == 'l' &&
                lower(v[2]) == 'o' && lower(v[3]) == 's' && lower(v[4]) == 'e')
                *until_close = 1;
        }
        p = eol + 1;
    }
    if (content_length < 0) {
        *until_close = 1;
        return len > KB_MAX_REPLY ? KB_E_TOO_LARGE : KB_NEED_MORE;
    }
    if (hend + (size_t)content_length > KB_MAX_REPLY) return KB_E_TOO_LARGE;
    if (len < hend + (size_t)content_length) return KB_NEED_MORE;
    *reply_len = hend + (size_t)content_length;
    return KB_OK;
}

/* --- a minimal JSON reader: one object, values we need are numbers ------ */

typedef struct {
    const char *p, *end;
    int depth;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A string; copies up to cap-1 bytes of it into out (escapes kept raw). */
static int read_string(cursor *c, char *out, size_t cap) {
    if (c->p >= c->end || *c->p != '"') return 0;
    c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\') {
            c->p++;
            if (c->p >= c->end) return 0;
        }
        if (out && n + 1 < cap) out[n++] = *c->p;
        c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    if (out) out[n] = 0;
    return 1;
}

/* A JSON number, saturated to a long-ish double; 0 when not a number. */
static int read_number(cursor *c, double *out) {
    const char *p = c->p;
    int neg = 0;
    double v = 0;
    if (p < c->end && *p == '-') { neg = 1; p++; }
    if (p >= c->end || *p < '0' || *p > '9') return 0;
    while (p < c->end && *p >= '0' && *p <= '9') {
        if (v < 1e9) v = v * 10 + (*p - '0');
        p++;
    }
    if (p < c->end && *p == '.') {
        p++;
        double scale = 0.1;
        int any = 0;
        while (p < c->end && *p >= '0' && *p <= '9') { v += (*p - '0') * scale; scale /= 10; p++; any = 1; }
        if (!any) return 0;
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0, e = 0, any = 0;
        if (p < c->end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        while (p < c->end && *p >= '0' && *p <= '9') { if (e < 400) e = e * 10 + (*p - '0'); p++; any = 1; }
        if (!any) return 0;
        while (e-- > 0) {
            if (eneg) v /= 10;
            else if (v < 1e9) v *= 10;
        }
    }
    c->p = p;
    *out = neg ? -v : v;
    return 1;
}

static int skip_value(cursor *c);

static int skip_container(cursor *c, char open, char close) {
    if (++c->depth > 32) return 0;
    c->p++; /* open */
    skip_ws(c);
    if (c->p < c->end && *c->p == close) { c->p++; c->depth--; return 1; }
    for (;;) {
        skip_ws(c);
        if (open == '{') {
            if (!read_string(c, NULL, 0)) return 0;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return 0;
            c->p++;
            skip_ws(c);
        }
        if (!skip_value(c)) return 0;
        skip_ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == ',') { c->p++; continue; }
        if (*c->p == close) { c->p++; c->depth--; return 1; }
        return 0;
    }
}

static int literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int skip_value(cursor *c) {
    double d;
    if (c->p >= c->end) return 0;
    switch (*c->p) {
    case '"': return read_string(c, NULL, 0);
    case '{': return skip_container(c, '{', '}');
    case '[': return skip_container(c, '[', ']');
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default: return read_number(c, &d);
    }
}

static int clamp_axis(double v) {
    if (v > KB_AXIS_RANGE) return KB_AXIS_RANGE;
    if (v < -KB_AXIS_RANGE) return -KB_AXIS_RANGE;
    return (int)v; /* truncation toward zero, like the old plugin's atoi */
}

int kb_parse_json(const char *buf, size_t len, uint32_t *word) {
    cursor c = {buf, buf + len, 0};
    uint32_t buttons = 0;
    int x = 0, y = 0;
    *word = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') return KB_E_NOT_JSON;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') goto done;
    for (;;) {
        char key[24];
        skip_ws(&c);
        if (!read_string(&c, key, sizeof key)) return KB_E_NOT_JSON;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return KB_E_NOT_JSON;
        c.p++;
        skip_ws(&c);
        double v;
        cursor save = c;
        if (read_number(&c, &v)) {
            if (strcmp(key, "X_AXIS") == 0) x = clamp_axis(v);
            else if (strcmp(key, "Y_AXIS") == 0) y = clamp_axis(v);
            else
                for (size_t i = 0; i < N_BUTTONS; i++)
                    if (strcmp(key, BUTTON_KEYS[i].key) == 0) {
                        if (v != 0) buttons |= BUTTON_KEYS[i].bit;
                        else buttons &= ~BUTTON_KEYS[i].bit;
                    }
        } else {
            c = save;
            if (!skip_value(&c)) return KB_E_NOT_JSON; /* wrong type: ignored, like missing */
        }
        skip_ws(&c);
        if (c.p >= c.end) return KB_E_NOT_JSON;
        if (*c.p == ',') { c.p++; continue; }
        if (*c.p == '}') { c.p++; break; }
        return KB_E_NOT_JSON;
    }
done:
    buttons &= ~KB_RESERVED_BITS;
    *word = (buttons & 0xFFFFu) | ((uint32_t)(uint8_t)(int8_t)x << 16) |
            ((uint32_t)(uint8_t)(int8_t)y << 24);
    return KB_OK;
}

int kb_parse_reply(const char *buf, size_t len, uint32_t *word) {
    *word = 0;
    if (len > KB_MAX_REPLY) return KB_E_TOO_LARGE;
    size_t hend = header_end(buf, len);
    if (hend == 0) return KB_E_NO_SEPARATOR;
    /* "HTTP/1.x NNN": anything but 2xx is a failed poll. */
    if (len >= 12 && memcmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', hend);
        if (!sp || sp + 1 >= buf + hend || sp[1] != '2') return KB_E_STATUS;
    }
    return kb_parse_json(buf + hend, len - hend, word);
}
