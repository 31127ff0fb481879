/* kartbot: a mupen64plus input plugin that asks an input-bot server (kartplay
 * serve) for each controller's pad.
 *
 * Free-run: a plugin-owned thread per plugged controller keeps one HTTP/1.1
 * keep-alive connection and polls the server; GetKeys only copies the latest
 * word under a mutex, so emulation never waits on the network.
 * Lockstep: GetKeys does the request itself and waits (up to timeout_ms), so
 * the emulator advances only as fast as the agent acts.
 * Server down: neutral pad, one log line, reconnect with backoff. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define M64P_PLUGIN_PROTOTYPES 1
#include <m64p_common.h>
#include <m64p_config.h>
#include <m64p_debugger.h>
#include <m64p_frontend.h>
#include <m64p_plugin.h>
#include <m64p_types.h>

#include "frames.h"
#include "reply.h"

#define PLUGIN_NAME "kartbot input plugin"
#define PLUGIN_VERSION 0x010000
#define INPUT_API_VERSION 0x020100
#define N_CONTROLLERS 4

enum mode { MODE_FREE_RUN = 0, MODE_LOCKSTEP = 1 };

typedef struct {
    /* config */
    int plugged;
    char host[256];
    int port;
    enum mode mode;
    int timeout_ms;   /* one request's I/O budget */
    int interval_us;  /* free-run: pause between polls */
    /* state */
    int fd;
    char buf[KB_MAX_REPLY + 1];
    size_t buf_len;
    pthread_t thread;
    int thread_running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    uint32_t word;    /* latest pad; guarded by lock */
    int down;         /* logged "server down" and not yet recovered */
    int backoff_ms;
    int64_t retry_at_ms; /* lockstep: no request before this (server down) */
} controller;

static controller ctl[N_CONTROLLERS];
static int initialized;
static void *debug_context;
static void (*debug_callback)(void *, int, const char *);
static m64p_dynlib_handle core_handle;
static ptr_CoreDoCommand core_do_command;
static ptr_DebugMemGetPointer debug_mem_get_pointer;

/* Frames (off unless a ring path is configured): published on the pad poll of
 * the first plugged controller, numbered by those polls. */
static char frames_path[1024];
static int frames_slots;
static int frames_controller = -1;
static kb_frames *frames;
static uint64_t frame_no;

#ifdef KARTBOT_TEST_HOOKS
/* The tests' build only (make -C plugin test-plugin): environment-driven
 * trace, RDRAM dump and stop, so a test can read what the ROM logged. */
static long stop_after = -1;      /* KARTBOT_STOP_AFTER: GetKeys(0) calls, then stop */
static long getkeys_calls;
static FILE *trace_file;          /* KARTBOT_TRACE */
static long trace_addr = -1;      /* KARTBOT_TRACE_ADDR: RDRAM word to log per call */
static char dump_path[1024];      /* KARTBOT_DUMP */
static long dump_off, dump_len;   /* KARTBOT_DUMP_RANGE=off:len */
static int stopping;
#endif

static void logf_(int level, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (debug_callback) debug_callback(debug_context, level, msg);
    else fprintf(stderr, "kartbot: %s\n", msg);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration: core config API, then environment overrides -------- */

static const char *env_for(const char *key, int n) {
    char name[64];
    snprintf(name, sizeof name, "KARTBOT_%s%d", key, n);
    const char *v = getenv(name);
    if (v && *v) return v;
    snprintf(name, sizeof name, "KARTBOT_%s", key);
    v = getenv(name);
    return (v && *v) ? v : NULL;
}

static enum mode parse_mode(const char *s, enum mode fallback) {
    if (!s) return fallback;
    if (strcmp(s, "lockstep") == 0) return MODE_LOCKSTEP;
    if (strcmp(s, "free-run") == 0 || strcmp(s, "freerun") == 0) return MODE_FREE_RUN;
    logf_(M64MSG_WARNING, "unknown mode '%s', using %s", s,
          fallback == MODE_LOCKSTEP ? "lockstep" : "free-run");
    return fallback;
}

static void load_config(void) {
    ptr_ConfigOpenSection open_section = NULL;
    ptr_ConfigSetDefaultBool set_bool = NULL;
    ptr_ConfigSetDefaultInt set_int = NULL;
    ptr_ConfigSetDefaultString set_string = NULL;
    ptr_ConfigGetParamBool get_bool = NULL;
    ptr_ConfigGetParamInt get_int = NULL;
    ptr_ConfigGetParamString get_string = NULL;
    if (core_handle) {
        open_section = (ptr_ConfigOpenSection)dlsym(core_handle, "ConfigOpenSection");
        set_bool = (ptr_ConfigSetDefaultBool)dlsym(core_handle, "ConfigSetDefaultBool");
        set_int = (ptr_ConfigSetDefaultInt)dlsym(core_handle, "ConfigSetDefaultInt");
        set_string = (ptr_ConfigSetDefaultString)dlsym(core_handle, "ConfigSetDefaultString");
        get_bool = (ptr_ConfigGetParamBool)dlsym(core_handle, "ConfigGetParamBool");
        get_int = (ptr_ConfigGetParamInt)dlsym(core_handle, "ConfigGetParamInt");
        get_string = (ptr_ConfigGetParamString)dlsym(core_handle, "ConfigGetParamString");
    }
    int have_config = open_section && set_bool && set_int && set_string && get_bool && get_int &&
                      get_string;
    for (int n = 0; n < N_CONTROLLERS; n++) {
        controller *c = &ctl[n];
        c->plugged = n == 0;
        snprintf(c->host, sizeof c->host, "127.0.0.1");
        c->port = 8082;
        c->mode = MODE_FREE_RUN;
        c->timeout_ms = 0;
        c->interval_us = 1000;
        m64p_handle section;
        char name[32];
        snprintf(name, sizeof name, "Input-Bot-Control%d", n);
        if (have_config && open_section(name, &section) == M64ERR_SUCCESS) {
            set_bool(section, "plugged", n == 0, "Ask the server for this controller's pad");
            set_string(section, "host", "127.0.0.1", "Server host name or address");
            set_int(section, "port", 8082, "Server TCP port");
            set_string(section, "mode", "free-run",
                       "free-run (never wait) or lockstep (wait for the agent)");
            set_int(section, "timeout_ms", 0,
                    "Request timeout in ms (0: 250 in free-run, 5000 in lockstep)");
            set_int(section, "interval_us", 1000, "Free-run: pause between polls in us");
            c->plugged = get_bool(section, "plugged");
            const char *h = get_string(section, "host");
            if (h && *h) snprintf(c->host, sizeof c->host, "%s", h);
            c->port = get_int(section, "port");
            c->mode = parse_mode(get_string(section, "mode"), MODE_FREE_RUN);
            c->timeout_ms = get_int(section, "timeout_ms");
            c->interval_us = get_int(section, "interval_us");
        }
        const char *v;
        if ((v = env_for("PLUGGED", n))) c->plugged = atoi(v) != 0;
        if ((v = env_for("HOST", n))) snprintf(c->host, sizeof c->host, "%s", v);
        if ((v = env_for("PORT", n))) c->port = atoi(v);
        if ((v = env_for("MODE", n))) c->mode = parse_mode(v, c->mode);
        if ((v = env_for("TIMEOUT_MS", n))) c->timeout_ms = atoi(v);
        if ((v = env_for("INTERVAL_US", n))) c->interval_us = atoi(v);
        if (c->timeout_ms <= 0) c->timeout_ms = c->mode == MODE_LOCKSTEP ? 5000 : 250;
        if (c->interval_us < 0) c->interval_us = 0;
        if (c->plugged)
            logf_(M64MSG_INFO, "controller %d: %s:%d, %s, timeout %d ms", n, c->host, c->port,
                  c->mode == MODE_LOCKSTEP ? "lockstep" : "free-run", c->timeout_ms);
    }
    frames_path[0] = 0;
    frames_slots = KB_FRAMES_DEFAULT_SLOTS;
    m64p_handle fsection;
    if (have_config && open_section("Input-Bot-Frames", &fsection) == M64ERR_SUCCESS) {
        set_string(fsection, "path", "",
                   "Publish every frame the VI shows to this ring file (e.g. "
                   "/dev/shm/kartbot-frames); empty: off");
        set_int(fsection, "slots", KB_FRAMES_DEFAULT_SLOTS, "Frames the ring holds");
        const char *fp = get_string(fsection, "path");
        if (fp) snprintf(frames_path, sizeof frames_path, "%s", fp);
        frames_slots = get_int(fsection, "slots");
    }
    const char *fv;
    if ((fv = getenv("KARTBOT_FRAMES"))) snprintf(frames_path, sizeof frames_path, "%s", fv);
    if ((fv = getenv("KARTBOT_FRAMES_SLOTS")) && *fv) frames_slots = atoi(fv);
    frames_controller = -1;
    for (int n = 0; n < N_CONTROLLERS && frames_controller < 0; n++)
        if (ctl[n].plugged) frames_controller = n;
#ifdef KARTBOT_TEST_HOOKS
    const char *v;
    stop_after = (v = getenv("KARTBOT_STOP_AFTER")) ? atol(v) : -1;
    trace_addr = (v = getenv("KARTBOT_TRACE_ADDR")) ? strtol(v, NULL, 0) : -1;
    if ((v = getenv("KARTBOT_TRACE")) && *v) {
        trace_file = fopen(v, "w");
        if (!trace_file) logf_(M64MSG_ERROR, "cannot open KARTBOT_TRACE file %s", v);
    }
    dump_path[0] = 0;
    if ((v = getenv("KARTBOT_DUMP")) && *v) snprintf(dump_path, sizeof dump_path, "%s", v);
    dump_off = 0;
    dump_len = 0;
    if ((v = getenv("KARTBOT_DUMP_RANGE"))) {
        char *end;
        dump_off = strtol(v, &end, 0);
        if (*end == ':') dump_len = strtol(end + 1, NULL, 0);
    }
#endif
}

/* ---- one HTTP request over the controller's connection ----------------- */

static void disconnect(controller *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->buf_len = 0;
}

static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, left);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1;
    }
}

static int connect_to(controller *c, int64_t deadline) {
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(c->host, port, &hints, &res) != 0 || !res) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 1) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    c->fd = fd;
    c->buf_len = 0;
    return fd >= 0 ? 0 : -1;
}

/* One poll: send GET /n, read one reply, parse it. 0 on success. */
static int request(controller *c, int n, uint32_t *word) {
    int64_t deadline = now_ms() + c->timeout_ms;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = c->fd < 0;
        if (fresh && connect_to(c, deadline) != 0) return -1;
        char req[320];
        int len = snprintf(req, sizeof req, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", n, c->host);
        if (send(c->fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
            disconnect(c);
            if (fresh) return -1;
            continue; /* a kept-alive connection the server closed: reconnect once */
        }
        c->buf_len = 0;
        for (;;) {
            size_t reply_len;
            int until_close;
            int st = kb_reply_complete(c->buf, c->buf_len, &reply_len, &until_close);
            if (st == KB_OK) {
                int r = kb_parse_reply(c->buf, reply_len, word);
                /* Bytes after the reply were not asked for; drop them. */
                c->buf_len = 0;
                if (until_close) disconnect(c);
                return r == KB_OK ? 0 : -1;
            }
            if (st < 0 || wait_fd(c->fd, POLLIN, deadline) != 1) {
                disconnect(c);
                return -1;
            }
            ssize_t got = recv(c->fd, c->buf + c->buf_len, KB_MAX_REPLY + 1 - c->buf_len, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got < 0) {
                disconnect(c);
                return -1;
            }
            if (got == 0) {
                if (c->buf_len == 0 && !fresh) break; /* stale keep-alive: reconnect once */
                /* A close-delimited reply (no Content-Length) ends here. */
                int r = c->buf_len > 0 && kb_parse_reply(c->buf, c->buf_len, word) == KB_OK ? 0 : -1;
                disconnect(c);
                return r;
            }
            c->buf_len += (size_t)got;
        }
        disconnect(c);
    }
    return -1;
}

static void mark_down(controller *c, int n) {
    if (!c->down) logf_(M64MSG_WARNING, "controller %d: server %s:%d not answering; neutral pad until it does",
                        n, c->host, c->port);
    c->down = 1;
    c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > 1000 ? 1000 : c->backoff_ms * 2) : 20;
}

static void mark_up(controller *c, int n) {
    if (c->down) logf_(M64MSG_INFO, "controller %d: server %s:%d is back", n, c->host, c->port);
    c->down = 0;
    c->backoff_ms = 0;
}

static void *poll_thread(void *arg) {
    int n = (int)(intptr_t)arg;
    controller *c = &ctl[n];
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        pthread_mutex_unlock(&c->lock);
        uint32_t word;
        int ok = request(c, n, &word) == 0;
        pthread_mutex_lock(&c->lock);
        int pause_us;
        if (ok) {
            c->word = word;
            mark_up(c, n);
            pause_us = c->interval_us;
        } else {
            c->word = 0;
            mark_down(c, n);
            pause_us = c->backoff_ms * 1000;
        }
        if (pause_us > 0 && !c->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)pause_us * 1000;
            ts.tv_sec += ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            pthread_cond_timedwait(&c->wake, &c->lock, &ts);
        }
    }
    pthread_mutex_unlock(&c->lock);
    disconnect(c);
    return NULL;
}

static void start_threads(void) {
    for (int n = 0; n < N_CONTROLLERS; n++) {
        controller *c = &ctl[n];
        if (!c->plugged || c->mode != MODE_FREE_RUN || c->thread_running) continue;
        c->stop = 0;
        if (pthread_create(&c->thread, NULL, poll_thread, (void *)(intptr_t)n) == 0)
            c->thread_running = 1;
        else
            logf_(M64MSG_ERROR, "controller %d: cannot start poll thread", n);
    }
}

static void stop_threads(void) {
    for (int n = 0; n < N_CONTROLLERS; n++) {
        controller *c = &ctl[n];
        if (c->thread_running) {
            pthread_mutex_lock(&c->lock);
            c->stop = 1;
            pthread_cond_signal(&c->wake);
            pthread_mutex_unlock(&c->lock);
            pthread_join(c->thread, NULL);
            c->thread_running = 0;
        }
        disconnect(c);
    }
}

/* ---- test build: trace, RDRAM dump, stop after N frames ----------------- */

#ifdef KARTBOT_TEST_HOOKS
static uint32_t *rdram(void) {
    return debug_mem_get_pointer ? (uint32_t *)debug_mem_get_pointer(M64P_DBG_PTR_RDRAM) : NULL;
}

static void test_hooks(int n, uint32_t word) {
    if (n != 0) return;
    getkeys_calls++;
    if (trace_file) {
        uint32_t *ram = trace_addr >= 0 ? rdram() : NULL;
        fprintf(trace_file, "%ld %08x %08x\n", getkeys_calls, word,
                ram ? ram[trace_addr / 4] : 0);
        fflush(trace_file);
    }
    if (stop_after >= 0 && getkeys_calls >= stop_after && !stopping) {
        stopping = 1;
        uint32_t *ram = rdram();
        if (dump_path[0] && ram && dump_len > 0) {
            FILE *f = fopen(dump_path, "wb");
            if (f) {
                /* RDRAM words are host-order; write them as such. */
                fwrite((char *)ram + dump_off, 1, (size_t)dump_len, f);
                fclose(f);
            }
        } else if (dump_path[0]) {
            logf_(M64MSG_ERROR, "KARTBOT_DUMP: no RDRAM pointer or empty KARTBOT_DUMP_RANGE");
        }
        if (core_do_command) core_do_command(M64CMD_STOP, 0, NULL);
    }
}
#endif

/* ---- the plugin API ---------------------------------------------------- */

EXPORT m64p_error CALL PluginStartup(m64p_dynlib_handle CoreLibHandle, void *Context,
                                     void (*DebugCallback)(void *, int, const char *)) {
    if (initialized) return M64ERR_ALREADY_INIT;
    core_handle = CoreLibHandle;
    debug_context = Context;
    debug_callback = DebugCallback;
    core_do_command = core_handle ? (ptr_CoreDoCommand)dlsym(core_handle, "CoreDoCommand") : NULL;
    debug_mem_get_pointer =
        core_handle ? (ptr_DebugMemGetPointer)dlsym(core_handle, "DebugMemGetPointer") : NULL;
    for (int n = 0; n < N_CONTROLLERS; n++) {
        memset(&ctl[n], 0, sizeof ctl[n]);
        ctl[n].fd = -1;
        pthread_mutex_init(&ctl[n].lock, NULL);
        pthread_cond_init(&ctl[n].wake, NULL);
    }
#ifdef KARTBOT_TEST_HOOKS
    getkeys_calls = 0;
    stopping = 0;
#endif
    load_config();
    initialized = 1;
    return M64ERR_SUCCESS;
}

EXPORT m64p_error CALL PluginShutdown(void) {
    if (!initialized) return M64ERR_NOT_INIT;
    stop_threads();
    for (int n = 0; n < N_CONTROLLERS; n++) {
        pthread_mutex_destroy(&ctl[n].lock);
        pthread_cond_destroy(&ctl[n].wake);
    }
#ifdef KARTBOT_TEST_HOOKS
    if (trace_file) fclose(trace_file);
    trace_file = NULL;
#endif
    initialized = 0;
    return M64ERR_SUCCESS;
}

EXPORT m64p_error CALL PluginGetVersion(m64p_plugin_type *PluginType, int *PluginVersion,
                                        int *APIVersion, const char **PluginNamePtr,
                                        int *Capabilities) {
    if (PluginType) *PluginType = M64PLUGIN_INPUT;
    if (PluginVersion) *PluginVersion = PLUGIN_VERSION;
    if (APIVersion) *APIVersion = INPUT_API_VERSION;
    if (PluginNamePtr) *PluginNamePtr = PLUGIN_NAME;
    if (Capabilities) *Capabilities = 0;
    return M64ERR_SUCCESS;
}

EXPORT void CALL InitiateControllers(CONTROL_INFO ControlInfo) {
    for (int n = 0; n < N_CONTROLLERS; n++) {
        ControlInfo.Controls[n].Present = initialized && ctl[n].plugged;
        ControlInfo.Controls[n].RawData = 0;
        ControlInfo.Controls[n].Plugin = PLUGIN_NONE;
    }
}

static void open_frames(void) {
    if (!frames_path[0] || frames) return;
    if (frames_controller < 0) {
        logf_(M64MSG_ERROR, "frames: no controller is plugged; not publishing to %s", frames_path);
        return;
    }
    if (!debug_mem_get_pointer) {
        logf_(M64MSG_ERROR, "frames: the core has no DebugMemGetPointer; not publishing to %s",
              frames_path);
        return;
    }
    frames = kb_frames_open(frames_path, frames_slots);
    if (!frames)
        logf_(M64MSG_ERROR, "frames: cannot create ring %s (%d slots): %s", frames_path,
              frames_slots, strerror(errno));
    else
        logf_(M64MSG_INFO, "frames: publishing to %s (%d slots)", frames_path, frames_slots);
    frame_no = 0;
}

static void close_frames(void) {
    if (!frames) return;
    logf_(M64MSG_INFO, "frames: %llu published, %llu polls without a frame to show",
          (unsigned long long)kb_frames_published(frames),
          (unsigned long long)kb_frames_skipped(frames));
    kb_frames_close(frames);
    frames = NULL;
}

/* The frame the VI shows now, for this poll; its slot index or -1. */
static int64_t publish_frame(uint32_t word, int known) {
    const uint32_t *ram = debug_mem_get_pointer(M64P_DBG_PTR_RDRAM);
    const uint32_t *vi = debug_mem_get_pointer(M64P_DBG_PTR_VI_REG);
    return kb_frames_publish(frames, ram, vi, frame_no++, word & ~KB_RESERVED_BITS, known);
}

EXPORT int CALL RomOpen(void) {
    open_frames();
    start_threads();
    return 1;
}

EXPORT void CALL RomClosed(void) {
    stop_threads();
    close_frames();
}

EXPORT void CALL GetKeys(int Control, BUTTONS *Keys) {
    if (Control < 0 || Control >= N_CONTROLLERS || !Keys) return;
    controller *c = &ctl[Control];
    uint32_t word = 0;
    int publish = frames && Control == frames_controller;
    if (initialized && c->plugged) {
        if (c->mode == MODE_FREE_RUN) {
            pthread_mutex_lock(&c->lock);
            word = c->word;
            pthread_mutex_unlock(&c->lock);
            if (publish) publish_frame(word, 1);
        } else {
            /* The agent sees this frame before it answers this poll; the pad
             * it answers is the one the frame is stored with. */
            int64_t slot = publish ? publish_frame(0, 0) : -1;
            if (now_ms() >= c->retry_at_ms) {
                if (request(c, Control, &word) == 0) {
                    mark_up(c, Control);
                } else {
                    word = 0;
                    mark_down(c, Control);
                    /* Don't pay the timeout on every frame while the server is down. */
                    c->retry_at_ms = now_ms() + c->backoff_ms;
                }
            }
            if (slot >= 0) kb_frames_set_pad(frames, slot, word & ~KB_RESERVED_BITS);
        }
    }
    Keys->Value = word & ~KB_RESERVED_BITS;
#ifdef KARTBOT_TEST_HOOKS
    test_hooks(Control, Keys->Value);
#endif
}

EXPORT void CALL ControllerCommand(int Control, unsigned char *Command) {
    (void)Control;
    (void)Command;
}

EXPORT void CALL ReadController(int Control, unsigned char *Command) {
    (void)Control;
    (void)Command;
}

EXPORT void CALL SDL_KeyDown(int keymod, int keysym) {
    (void)keymod;
    (void)keysym;
}

EXPORT void CALL SDL_KeyUp(int keymod, int keysym) {
    (void)keymod;
    (void)keysym;
}
