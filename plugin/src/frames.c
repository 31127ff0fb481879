/* The frame ring (see frames.h): the writer side, called on the emulation
 * thread, so nothing here waits, allocates or makes a system call per frame
 * except reading the clock. */
#define _GNU_SOURCE
#include "frames.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint32_t slot_count;
    uint32_t slot_bytes;
    uint32_t writer_pid;
    uint32_t state;
    uint64_t published;
    uint64_t skipped;
} ring_header;

typedef struct {
    uint64_t seq;
    uint64_t index;
    uint64_t frame;
    uint64_t t_ns;
    uint32_t pad;
    uint32_t flags;
    uint32_t width;
    uint32_t height;
    uint32_t bits;
    uint32_t origin;
    uint32_t publish_ns;
    uint32_t vi_status;
} slot_header;

_Static_assert(sizeof(ring_header) <= KB_FRAMES_HEADER_BYTES, "header fits");
_Static_assert(sizeof(slot_header) == KB_FRAMES_SLOT_HEADER, "slot header is 64 bytes");

#define FLAG_PAD_KNOWN 1u
#define STATE_OPEN 1u
#define STATE_CLOSED 2u

struct kb_frames {
    unsigned char *map;
    size_t map_bytes;
    ring_header *hdr;
    uint32_t slots;
    uint32_t slot_bytes;
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static slot_header *slot_at(const kb_frames *r, uint64_t index) {
    return (slot_header *)(r->map + KB_FRAMES_HEADER_BYTES +
                           (size_t)(index % r->slots) * r->slot_bytes);
}

kb_frames *kb_frames_open(const char *path, int slots) {
    if (slots < 2 || slots > KB_FRAMES_MAX_SLOTS) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t slot_bytes = KB_FRAMES_SLOT_HEADER + KB_FRAMES_MAX_PIXEL_BYTES;
    size_t bytes = KB_FRAMES_HEADER_BYTES + (size_t)slots * slot_bytes;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return NULL;
    /* A reader may map an old ring at this path: shrinking it under them
     * would fault them, so the file only ever grows to the size needed. */
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_size < (off_t)bytes && ftruncate(fd, (off_t)bytes) != 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    /* MAP_POPULATE: fault every page in now, not on the emulation thread. */
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        errno = e;
        return NULL;
    }
    kb_frames *r = calloc(1, sizeof *r);
    if (!r) {
        munmap(map, bytes);
        errno = ENOMEM;
        return NULL;
    }
    r->map = map;
    r->map_bytes = bytes;
    r->hdr = map;
    r->slots = (uint32_t)slots;
    r->slot_bytes = slot_bytes;
    /* Readers check the magic last: fill everything, then publish it. */
    __atomic_store_n(&r->hdr->state, 0, __ATOMIC_RELEASE);
    memset(r->hdr->magic, 0, sizeof r->hdr->magic);
    r->hdr->version = KB_FRAMES_VERSION;
    r->hdr->header_bytes = KB_FRAMES_HEADER_BYTES;
    r->hdr->slot_count = r->slots;
    r->hdr->slot_bytes = slot_bytes;
    r->hdr->writer_pid = (uint32_t)getpid();
    r->hdr->published = 0;
    r->hdr->skipped = 0;
    for (uint32_t i = 0; i < r->slots; i++) memset(slot_at(r, i), 0, KB_FRAMES_SLOT_HEADER);
    memcpy(r->hdr->magic, "KBFRAMES", 8);
    __atomic_store_n(&r->hdr->state, STATE_OPEN, __ATOMIC_RELEASE);
    return r;
}

int kb_vi_geometry(const uint32_t *vi, uint32_t *width, uint32_t *height, uint32_t *bits,
                   uint32_t *origin) {
    uint32_t type = vi[KB_VI_STATUS] & 3;
    if (type < 2) return -1; /* blank (0) or reserved (1) */
    uint32_t b = type == 2 ? 16 : 32;
    uint32_t w = vi[KB_VI_WIDTH] & 0xfff;
    if (w == 0) return -1;
    /* Half-lines between V_START's start and end, scaled by Y_SCALE (2.10). */
    uint32_t v_start = (vi[KB_VI_V_START] >> 16) & 0x3ff, v_end = vi[KB_VI_V_START] & 0x3ff;
    uint32_t y_scale = vi[KB_VI_Y_SCALE] & 0xfff;
    uint32_t h = v_end > v_start && y_scale ? ((v_end - v_start) / 2) * y_scale / 1024 : 0;
    if (h == 0) h = w * 3 / 4; /* registers not set up: the usual 4:3 */
    uint32_t o = vi[KB_VI_ORIGIN] & 0xffffff;
    if (o & 3) return -1;
    if ((uint64_t)w * h * (b / 8) > KB_FRAMES_MAX_PIXEL_BYTES) return -1;
    if (o + (uint64_t)w * h * (b / 8) > KB_RDRAM_BYTES) return -1;
    *width = w;
    *height = h;
    *bits = b;
    *origin = o;
    return 0;
}

int64_t kb_frames_publish(kb_frames *r, const uint32_t *rdram, const uint32_t *vi,
                          uint64_t frame, uint32_t pad, int pad_known) {
    uint64_t t0 = mono_ns();
    uint32_t w, h, bits, origin;
    if (!rdram || !vi || kb_vi_geometry(vi, &w, &h, &bits, &origin) != 0) {
        __atomic_store_n(&r->hdr->skipped, r->hdr->skipped + 1, __ATOMIC_RELEASE);
        return -1;
    }
    uint64_t index = r->hdr->published;
    slot_header *s = slot_at(r, index);
    uint64_t seq = s->seq;
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    s->index = index;
    s->frame = frame;
    s->t_ns = t0;
    s->pad = pad;
    s->flags = pad_known ? FLAG_PAD_KNOWN : 0;
    s->width = w;
    s->height = h;
    s->bits = bits;
    s->origin = origin;
    s->vi_status = vi[KB_VI_STATUS];
    size_t bytes = ((size_t)w * h * (bits / 8) + 3) & ~(size_t)3;
    memcpy((unsigned char *)s + KB_FRAMES_SLOT_HEADER, (const unsigned char *)rdram + origin,
           bytes);
    uint64_t cost = mono_ns() - t0;
    s->publish_ns = cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost;
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
    __atomic_store_n(&r->hdr->published, index + 1, __ATOMIC_RELEASE);
    return (int64_t)index;
}

void kb_frames_set_pad(kb_frames *r, int64_t index, uint32_t pad) {
    if (index < 0) return;
    slot_header *s = slot_at(r, (uint64_t)index);
    if (s->index != (uint64_t)index) return; /* long overwritten */
    uint64_t seq = s->seq;
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    s->pad = pad;
    s->flags |= FLAG_PAD_KNOWN;
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

uint64_t kb_frames_published(const kb_frames *r) { return r->hdr->published; }
uint64_t kb_frames_skipped(const kb_frames *r) { return r->hdr->skipped; }

void kb_frames_close(kb_frames *r) {
    if (!r) return;
    __atomic_store_n(&r->hdr->state, STATE_CLOSED, __ATOMIC_RELEASE);
    munmap(r->map, r->map_bytes);
    free(r);
}
