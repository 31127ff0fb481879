/* A fake mupen64plus core for the kartbot plugin.
 *
 * It dlopens the plugin, hands it this executable as the "core library"
 * (linked with -rdynamic so that dlsym finds the Config* and CoreDoCommand
 * functions below), and drives the plugin API the way the core does.
 *
 *   harness version PLUGIN                 symbols and PluginGetVersion
 *   harness parse FILE                     kb-parse a reply read from FILE
 *   harness run PLUGIN COUNT INTERVAL_US [-c Section.key=value]...
 *       COUNT frames: GetKeys(0..3) each, printing "i w0 w1 w2 w3" (hex) per
 *       frame, then "getkeys_ns p50 p99 max" for controller 0 on stderr. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <m64p_common.h>
#include <m64p_config.h>
#include <m64p_plugin.h>
#include <m64p_types.h>

#include "../src/reply.h"

/* ---- the fake core's config store -------------------------------------- */

#define MAX_PARAMS 128
static struct { char section[64], key[64], value[256]; int set; } params[MAX_PARAMS];
static int n_params;

static int find_param(const char *section, const char *key) {
    for (int i = 0; i < n_params; i++)
        if (!strcmp(params[i].section, section) && !strcmp(params[i].key, key)) return i;
    return -1;
}

static int add_param(const char *section, const char *key) {
    int i = find_param(section, key);
    if (i >= 0 || n_params >= MAX_PARAMS) return i;
    i = n_params++;
    snprintf(params[i].section, sizeof params[i].section, "%s", section);
    snprintf(params[i].key, sizeof params[i].key, "%s", key);
    params[i].value[0] = 0;
    return i;
}

static void set_default(m64p_handle h, const char *key, const char *value) {
    int i = add_param((const char *)h, key);
    if (i >= 0 && !params[i].set) snprintf(params[i].value, sizeof params[i].value, "%s", value);
}

static const char *get_value(m64p_handle h, const char *key) {
    int i = find_param((const char *)h, key);
    return i >= 0 ? params[i].value : "";
}

static char section_names[8][64];
static int n_sections;

m64p_error ConfigOpenSection(const char *name, m64p_handle *handle) {
    for (int i = 0; i < n_sections; i++)
        if (!strcmp(section_names[i], name)) { *handle = section_names[i]; return M64ERR_SUCCESS; }
    if (n_sections >= 8) return M64ERR_NO_MEMORY;
    snprintf(section_names[n_sections], 64, "%s", name);
    *handle = section_names[n_sections++];
    return M64ERR_SUCCESS;
}
m64p_error ConfigSetDefaultInt(m64p_handle h, const char *k, int v, const char *help) {
    (void)help;
    char s[32];
    snprintf(s, sizeof s, "%d", v);
    set_default(h, k, s);
    return M64ERR_SUCCESS;
}
m64p_error ConfigSetDefaultBool(m64p_handle h, const char *k, int v, const char *help) {
    return ConfigSetDefaultInt(h, k, v != 0, help);
}
m64p_error ConfigSetDefaultString(m64p_handle h, const char *k, const char *v, const char *help) {
    (void)help;
    set_default(h, k, v);
    return M64ERR_SUCCESS;
}
int ConfigGetParamInt(m64p_handle h, const char *k) { return atoi(get_value(h, k)); }
int ConfigGetParamBool(m64p_handle h, const char *k) {
    const char *v = get_value(h, k);
    return !strcmp(v, "True") || !strcmp(v, "true") || atoi(v) != 0;
}
const char *ConfigGetParamString(m64p_handle h, const char *k) { return get_value(h, k); }

static int stop_requested;
m64p_error CoreDoCommand(m64p_command cmd, int p, void *ptr) {
    (void)p;
    (void)ptr;
    if (cmd == M64CMD_STOP) stop_requested = 1;
    return M64ERR_SUCCESS;
}

static void debug_cb(void *ctx, int level, const char *msg) {
    (void)ctx;
    fprintf(stderr, "plugin[%d]: %s\n", level, msg);
}

/* ---- driving the plugin ------------------------------------------------ */

static const char *REQUIRED[] = {
    "PluginStartup",   "PluginShutdown", "PluginGetVersion", "ControllerCommand",
    "GetKeys",         "InitiateControllers", "ReadController", "RomOpen",
    "RomClosed",       "SDL_KeyDown",    "SDL_KeyUp",
};

static void *open_plugin(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(2);
    }
    return h;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmd_version(const char *path) {
    void *h = open_plugin(path);
    int missing = 0;
    for (size_t i = 0; i < sizeof REQUIRED / sizeof REQUIRED[0]; i++)
        if (!dlsym(h, REQUIRED[i])) {
            printf("missing %s\n", REQUIRED[i]);
            missing++;
        }
    ptr_PluginGetVersion get_version = (ptr_PluginGetVersion)dlsym(h, "PluginGetVersion");
    m64p_plugin_type type;
    int version, api, caps;
    const char *name;
    if (get_version) {
        get_version(&type, &version, &api, &name, &caps);
        printf("type %d api %#x version %#x name %s\n", (int)type, api, version, name);
    }
    dlclose(h);
    return missing ? 1 : 0;
}

static int cmd_parse(const char *file) {
    static char buf[KB_MAX_REPLY * 4];
    FILE *f = fopen(file, "rb");
    if (!f) return 2;
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t reply_len;
    int until_close;
    int complete = kb_reply_complete(buf, len, &reply_len, &until_close);
    uint32_t word;
    int st = kb_parse_reply(buf, len, &word);
    printf("%d %08x %d %zu %d\n", st, word, complete, reply_len, until_close);
    return 0;
}

static int cmd_run(const char *path, long count, long interval_us, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") || i + 1 >= argc) continue;
        char section[64], key[64];
        const char *arg = argv[++i], *dot = strchr(arg, '.'), *eq = strchr(arg, '=');
        if (!dot || !eq || eq < dot) continue;
        snprintf(section, sizeof section, "%.*s", (int)(dot - arg), arg);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        m64p_handle hs;
        ConfigOpenSection(section, &hs);
        int p = add_param(section, key);
        snprintf(params[p].value, sizeof params[p].value, "%s", eq + 1);
        params[p].set = 1;
    }
    void *h = open_plugin(path);
    void *self = dlopen(NULL, RTLD_NOW);
    ptr_PluginStartup startup = (ptr_PluginStartup)dlsym(h, "PluginStartup");
    ptr_PluginShutdown shutdown_ = (ptr_PluginShutdown)dlsym(h, "PluginShutdown");
    ptr_InitiateControllers init = (ptr_InitiateControllers)dlsym(h, "InitiateControllers");
    ptr_RomOpen rom_open = (ptr_RomOpen)dlsym(h, "RomOpen");
    ptr_RomClosed rom_closed = (ptr_RomClosed)dlsym(h, "RomClosed");
    ptr_GetKeys get_keys = (ptr_GetKeys)dlsym(h, "GetKeys");
    if (startup(self, NULL, debug_cb) != M64ERR_SUCCESS) return 3;
    CONTROL controls[4];
    memset(controls, 0xff, sizeof controls);
    CONTROL_INFO info = {controls};
    init(info);
    printf("present %d %d %d %d\n", controls[0].Present, controls[1].Present,
           controls[2].Present, controls[3].Present);
    fflush(stdout);
    rom_open();
    int64_t *ns = calloc((size_t)count + 1, sizeof *ns);
    for (long i = 0; i < count && !stop_requested; i++) {
        uint32_t w[4];
        for (int c = 0; c < 4; c++) {
            BUTTONS keys;
            keys.Value = 0; /* the core zero-fills before GetKeys */
            int64_t t0 = now_ns();
            get_keys(c, &keys);
            if (c == 0) ns[i] = now_ns() - t0;
            w[c] = keys.Value;
        }
        printf("%ld %08x %08x %08x %08x\n", i, w[0], w[1], w[2], w[3]);
        fflush(stdout);
        if (interval_us > 0) usleep((useconds_t)interval_us);
    }
    rom_closed();
    shutdown_();
    qsort(ns, (size_t)count, sizeof *ns, cmp_i64);
    fprintf(stderr, "getkeys_ns %lld %lld %lld\n", (long long)ns[count / 2],
            (long long)ns[(count * 99) / 100], (long long)ns[count - 1]);
    printf("stopped %d\n", stop_requested);
    free(ns);
    dlclose(h);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "version")) return cmd_version(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "parse")) return cmd_parse(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "run"))
        return cmd_run(argv[2], atol(argv[3]), atol(argv[4]), argc - 5, argv + 5);
    fprintf(stderr, "usage: harness version PLUGIN | parse FILE | run PLUGIN COUNT INTERVAL_US [-c S.k=v]...\n");
    return 2;
}
