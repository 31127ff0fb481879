/* The frame ring: the plugin publishes each frame the VI shows (taken from
 * RDRAM at the game's pad poll) with its frame number and the pad word the
 * game read, into a file in /dev/shm that kartkit maps (kartplay/emuframes.py).
 *
 * One writer (the emulation thread), any number of readers, nobody waits:
 * every slot has a sequence counter, odd while the slot is being written
 * (a seqlock). The writer always overwrites the oldest slot; a reader that
 * falls more than KB_FRAMES slots behind loses frames and counts them.
 *
 * Layout (host byte order, x86-64 little-endian), mirrored in emuframes.py:
 *   header, KB_FRAMES_HEADER_BYTES:
 *     0 char[8] magic "KBFRAMES"    8 u32 version        12 u32 header_bytes
 *    16 u32 slot_count             20 u32 slot_bytes     24 u32 writer_pid
 *    28 u32 state (1 open, 2 closed)
 *    32 u64 published (slots written; the next frame's index)
 *    40 u64 skipped (polls with no frame to show: VI blank or out of RDRAM)
 *   slot i at header_bytes + i * slot_bytes; its first 64 bytes:
 *     0 u64 seq       8 u64 index (0, 1, 2, ... over published frames)
 *    16 u64 frame (the frame number: pad polls since the ROM opened)
 *    24 u64 t_ns (CLOCK_MONOTONIC when the frame was taken)
 *    32 u32 pad (BUTTONS.Value the game read)   36 u32 flags (1: pad known)
 *    40 u32 width   44 u32 height   48 u32 bits (16 or 32)   52 u32 origin
 *    56 u32 publish_ns (what taking this frame cost)   60 u32 vi_status
 *   then width * height * bits / 8 bytes of pixels: RDRAM's words as the
 *   core keeps them (host-order 32-bit words of the big-endian frame buffer).
 */
#ifndef KARTBOT_FRAMES_H
#define KARTBOT_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#define KB_FRAMES_VERSION 1
#define KB_FRAMES_HEADER_BYTES 4096
#define KB_FRAMES_SLOT_HEADER 64
/* The largest frame buffer the VI can show: 640x480 at 32 bits. */
#define KB_FRAMES_MAX_PIXEL_BYTES (640 * 480 * 4)
#define KB_FRAMES_DEFAULT_SLOTS 16
#define KB_FRAMES_MAX_SLOTS 1024
/* RDRAM with the expansion pak; the core reserves this much either way. */
#define KB_RDRAM_BYTES 0x800000u

/* VI registers, as M64P_DBG_PTR_VI_REG lays them out. */
enum {
    KB_VI_STATUS = 0,
    KB_VI_ORIGIN = 1,
    KB_VI_WIDTH = 2,
    KB_VI_H_START = 9,
    KB_VI_V_START = 10,
    KB_VI_X_SCALE = 12,
    KB_VI_Y_SCALE = 13,
    KB_VI_REGS = 14,
};

typedef struct kb_frames kb_frames;

/* Create (or take over) the ring file at path with `slots` slots; NULL and
 * errno on failure. */
kb_frames *kb_frames_open(const char *path, int slots);

/* Take the frame the VI registers point at out of RDRAM into the next slot.
 * Returns the slot's index (>= 0), or -1 when there is nothing to show (VI
 * blank, frame buffer outside RDRAM), which is counted as skipped. */
int64_t kb_frames_publish(kb_frames *r, const uint32_t *rdram, const uint32_t *vi,
                          uint64_t frame, uint32_t pad, int pad_known);

/* Lockstep: the pad of a frame published before the agent answered. */
void kb_frames_set_pad(kb_frames *r, int64_t index, uint32_t pad);

/* The frame geometry the VI registers describe: 0 if showable. */
int kb_vi_geometry(const uint32_t *vi, uint32_t *width, uint32_t *height, uint32_t *bits,
                   uint32_t *origin);

uint64_t kb_frames_published(const kb_frames *r);
uint64_t kb_frames_skipped(const kb_frames *r);

/* Mark the ring closed and unmap it (the file stays for late readers). */
void kb_frames_close(kb_frames *r);

#endif
