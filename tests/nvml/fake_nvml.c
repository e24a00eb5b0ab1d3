/* A scripted stand-in for libnvidia-ml.so.1: the NVML symbols nvidia-ml-py resolves on our paths,
 * answering from a JSON script named by $MATHPERF_NVML_SCRIPT, so that the real pynvml and our code
 * above it run on a machine without a card (README, "NVML without a card"). The script:
 *
 *   {"driver": "550.54.15", "nvml_version": "12.550.54.15", "start_epoch": 1764900000.0,
 *    "init_error": 9, "errors": {"nvmlDeviceGetPciInfo_v3": 15},
 *    "devices": [{"name": ..., "uuid": "GPU-...", "bus_id": "00000000:07:00.0",
 *                 "memory_total": N, "memory_used": N, "clocks_event_reasons": MASK,
 *                 "processes": [{"pid": 4242 | "self" | "host_self", "used": N | null,
 *                                "from_ms": T, "until_ms": T}],
 *                 "mig_mode": 1, "max_mig_devices": 7,
 *                 "mig_devices": [{"slot": 1, "name": ..., "uuid": "MIG-...", "memory_total": N,
 *                                  "memory_used": N, "processes": [...]}]}]}
 *
 * Any number may be a timeline [[ms, value], ...]: the value of the last step whose time since
 * start_epoch (else since the script was first read) has come. The file is read again when it
 * changes. Without a script the library answers as if it were not there (LibraryNotFound).
 *
 * Any exported function can be left out at compile time with -DHIDE_<symbol> (a driver older than the
 * function), and made to fail at run time with the script's "errors": {"<symbol>": code}. Every call
 * is logged, one symbol a line, to $MATHPERF_NVML_CALLS where it is set.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
enum {
    OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6,
    INSUFFICIENT_SIZE = 7, LIBRARY_NOT_FOUND = 12
};
#define NOT_AVAILABLE ULLONG_MAX

/* --- a small JSON reader ---------------------------------------------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } JsonKind;
typedef struct Json {
    JsonKind kind;
    double number;
    char *text;            /* J_STRING */
    char *key;             /* set when this value is an object member */
    struct Json *children; /* J_ARRAY, J_OBJECT */
    int count;
} Json;

static const char *cursor;
static int json_failed;

static void skip_space(void) { while (*cursor && isspace((unsigned char)*cursor)) cursor++; }

static char *read_string(void) {
    size_t capacity = 16, length = 0;
    char *out = malloc(capacity);
    cursor++; /* the opening quote */
    while (*cursor && *cursor != '"') {
        char c = *cursor++;
        if (c == '\\' && *cursor) {
            c = *cursor++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'u') { c = '?'; cursor += strnlen(cursor, 4); } /* scripts are ASCII: no \u escapes kept */
        }
        if (length + 2 > capacity) out = realloc(out, capacity *= 2);
        out[length++] = c;
    }
    if (*cursor != '"') json_failed = 1; else cursor++;
    out[length] = 0;
    return out;
}

static void read_value(Json *value);

static void read_items(Json *value, char close, int members) {
    int capacity = 4;
    value->children = calloc(capacity, sizeof(Json));
    cursor++;
    skip_space();
    if (*cursor == close) { cursor++; return; }
    while (!json_failed) {
        if (value->count == capacity) {
            value->children = realloc(value->children, (capacity *= 2) * sizeof(Json));
            memset(value->children + value->count, 0, (capacity - value->count) * sizeof(Json));
        }
        Json *item = &value->children[value->count++];
        skip_space();
        if (members) {
            if (*cursor != '"') { json_failed = 1; return; }
            item->key = read_string();
            skip_space();
            if (*cursor++ != ':') { json_failed = 1; return; }
        }
        read_value(item);
        skip_space();
        if (*cursor == ',') { cursor++; continue; }
        if (*cursor == close) { cursor++; return; }
        json_failed = 1;
    }
}

static void read_value(Json *value) {
    skip_space();
    char *key = value->key;
    memset(value, 0, sizeof *value);
    value->key = key;
    if (*cursor == '{') { value->kind = J_OBJECT; read_items(value, '}', 1); }
    else if (*cursor == '[') { value->kind = J_ARRAY; read_items(value, ']', 0); }
    else if (*cursor == '"') { value->kind = J_STRING; value->text = read_string(); }
    else if (!strncmp(cursor, "null", 4)) { value->kind = J_NULL; cursor += 4; }
    else if (!strncmp(cursor, "true", 4)) { value->kind = J_BOOL; value->number = 1; cursor += 4; }
    else if (!strncmp(cursor, "false", 5)) { value->kind = J_BOOL; cursor += 5; }
    else {
        char *end;
        value->kind = J_NUMBER;
        value->number = strtod(cursor, &end);
        if (end == cursor) json_failed = 1;
        cursor = end;
    }
}

static const Json *member(const Json *object, const char *key) {
    if (!object || object->kind != J_OBJECT) return NULL;
    for (int i = 0; i < object->count; i++)
        if (!strcmp(object->children[i].key, key)) return &object->children[i];
    return NULL;
}

static const char *text_of(const Json *object, const char *key, const char *fallback) {
    const Json *value = member(object, key);
    return value && value->kind == J_STRING ? value->text : fallback;
}

/* --- the script and its clock ----------------------------------------------------------------- */

static Json script;
static int loaded, initialised;
static double origin_ms;

static double now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

static double elapsed_ms(void) { return now_ms() - origin_ms; }

/* A number, or a timeline [[ms, value], ...]: the value of the last step whose time has come. */
static unsigned long long scripted(const Json *value, unsigned long long fallback) {
    if (!value || value->kind == J_NULL) return value ? NOT_AVAILABLE : fallback;
    if (value->kind != J_ARRAY) return (unsigned long long)value->number;
    double elapsed = elapsed_ms();
    const Json *chosen = NULL;
    for (int i = 0; i < value->count; i++) {
        const Json *step = &value->children[i];
        if (step->kind == J_ARRAY && step->count == 2 && (!chosen || step->children[0].number <= elapsed))
            chosen = step;
    }
    if (!chosen) return fallback;
    return chosen->children[1].kind == J_NULL ? NOT_AVAILABLE : (unsigned long long)chosen->children[1].number;
}

/* The script is read again whenever its file changes, so a test can change the card under a running process. */
static int load_script(void) {
    static struct stat seen;
    struct stat now;
    const char *path = getenv("MATHPERF_NVML_SCRIPT");
    if (!path || stat(path, &now) != 0) return loaded = 0;
    if (loaded && now.st_ino == seen.st_ino && now.st_dev == seen.st_dev && now.st_size == seen.st_size
        && now.st_mtim.tv_sec == seen.st_mtim.tv_sec && now.st_mtim.tv_nsec == seen.st_mtim.tv_nsec)
        return 1;
    FILE *file = fopen(path, "rb");
    if (!file) return loaded;
    char *buffer = calloc(now.st_size + 1, 1);
    size_t got = fread(buffer, 1, now.st_size, file);
    fclose(file);
    buffer[got] = 0;
    Json parsed = {0};
    cursor = buffer;
    json_failed = 0;
    read_value(&parsed);
    if (json_failed || parsed.kind != J_OBJECT) return loaded; /* half-written: keep the last good one */
    script = parsed; /* the old tree is left as it is: handles may still point into it */
    seen = now;
    const Json *start = member(&script, "start_epoch");
    origin_ms = start && start->kind == J_NUMBER ? start->number * 1e3 : loaded ? origin_ms : now_ms();
    loaded = 1;
    return 1;
}

/* Each call's symbol, one a line, to $MATHPERF_NVML_CALLS where it is set: which functions a run used. */
static void log_call(const char *function) {
    const char *path = getenv("MATHPERF_NVML_CALLS");
    FILE *log = path ? fopen(path, "a") : NULL;
    if (!log) return;
    fprintf(log, "%s\n", function);
    fclose(log);
}

/* The script's "errors": {"nvmlSomething": code} make that function fail. */
static nvmlReturn_t scripted_error(const char *function) {
    const Json *code = member(member(&script, "errors"), function);
    return code && code->kind == J_NUMBER ? (nvmlReturn_t)code->number : OK;
}

#define ENTER(name)                                              \
    do {                                                         \
        log_call(name);                                          \
        if (!initialised) return UNINITIALIZED;                  \
        if (load_script()) index_devices();                      \
        nvmlReturn_t failure_ = scripted_error(name);            \
        if (failure_ != OK) return failure_;                     \
    } while (0)

/* --- devices: the cards of the script, then their MIG slices; a handle points at one ---------- */

typedef struct Device {
    const Json *spec;
    struct Device *parent; /* a MIG slice's card */
    int slot;              /* a MIG slice's index on its card */
} Device;
typedef Device *nvmlDevice_t;

#define MAX_DEVICES 64
static Device devices[MAX_DEVICES];
static int card_count, device_count;

static const Json *cards(void) {
    const Json *list = member(&script, "devices");
    return list && list->kind == J_ARRAY ? list : NULL;
}

static void index_devices(void) {
    const Json *list = cards();
    card_count = device_count = 0;
    if (!list) return;
    for (int i = 0; i < list->count && device_count < MAX_DEVICES; i++)
        devices[device_count++] = (Device){&list->children[i], NULL, -1};
    card_count = device_count;
    for (int i = 0; i < card_count; i++) {
        const Json *slices = member(devices[i].spec, "mig_devices");
        for (int j = 0; slices && j < slices->count && device_count < MAX_DEVICES; j++) {
            const Json *slot = member(&slices->children[j], "slot");
            int index = slot ? (int)slot->number : j;
            devices[device_count++] = (Device){&slices->children[j], &devices[i], index};
        }
    }
}

static int valid(nvmlDevice_t device) { return device >= devices && device < devices + device_count; }

#define DEVICE_ARGUMENT(device)                        \
    do {                                               \
        if (!valid(device)) return INVALID_ARGUMENT;   \
    } while (0)

static nvmlReturn_t copy_text(const char *text, char *buffer, unsigned int length) {
    if (!buffer) return INVALID_ARGUMENT;
    if (strlen(text) + 1 > length) return INSUFFICIENT_SIZE;
    strcpy(buffer, text);
    return OK;
}

/* --- init, versions, errors ------------------------------------------------------------------- */

__attribute__((unused)) static nvmlReturn_t initialise(void) {
    if (!load_script()) return LIBRARY_NOT_FOUND; /* without a script it stands in for no library at all */
    const Json *failure = member(&script, "init_error");
    if (failure && failure->kind == J_NUMBER) return (nvmlReturn_t)failure->number;
    index_devices();
    initialised = 1;
    return OK;
}

#ifndef HIDE_nvmlInitWithFlags
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    log_call("nvmlInitWithFlags");
    return initialise();
}
#endif

#ifndef HIDE_nvmlInit_v2
nvmlReturn_t nvmlInit_v2(void) { /* what nvidia-ml-py before nvmlInitWithFlags resolves */
    log_call("nvmlInit_v2");
    return initialise();
}
#endif

nvmlReturn_t nvmlShutdown(void) {
    log_call("nvmlShutdown");
    if (!initialised) return UNINITIALIZED;
    initialised = 0;
    return OK;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    static char text[64];
    log_call("nvmlErrorString");
    snprintf(text, sizeof text, "scripted NVML error %d", result);
    return text;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    ENTER("nvmlSystemGetDriverVersion");
    return copy_text(text_of(&script, "driver", "550.54.15"), version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    ENTER("nvmlSystemGetNVMLVersion");
    return copy_text(text_of(&script, "nvml_version", "12.550.54.15"), version, length);
}

/* --- cards and handles ------------------------------------------------------------------------ */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    ENTER("nvmlDeviceGetCount_v2");
    if (!count) return INVALID_ARGUMENT;
    *count = (unsigned int)card_count;
    return OK;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    ENTER("nvmlDeviceGetHandleByIndex_v2");
    if (!device || index >= (unsigned int)card_count) return INVALID_ARGUMENT;
    *device = &devices[index];
    return OK;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, nvmlDevice_t *device) {
    ENTER("nvmlDeviceGetHandleByPciBusId_v2");
    if (!bus_id || !device) return INVALID_ARGUMENT;
    for (int i = 0; i < card_count; i++)
        if (!strcasecmp(text_of(devices[i].spec, "bus_id", ""), bus_id)) {
            *device = &devices[i];
            return OK;
        }
    return NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    ENTER("nvmlDeviceGetHandleByUUID");
    if (!uuid || !device) return INVALID_ARGUMENT;
    for (int i = 0; i < device_count; i++)
        if (!strcmp(text_of(devices[i].spec, "uuid", ""), uuid)) {
            *device = &devices[i];
            return OK;
        }
    return NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    ENTER("nvmlDeviceGetName");
    DEVICE_ARGUMENT(device);
    return copy_text(text_of(device->spec, "name", "NVIDIA Scripted GPU"), name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    ENTER("nvmlDeviceGetUUID");
    DEVICE_ARGUMENT(device);
    return copy_text(text_of(device->spec, "uuid", "GPU-00000000-0000-0000-0000-000000000000"), uuid, length);
}

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    ENTER("nvmlDeviceGetPciInfo_v3");
    DEVICE_ARGUMENT(device);
    if (!pci) return INVALID_ARGUMENT;
    const char *bus_id = text_of((device->parent ? device->parent : device)->spec, "bus_id", "00000000:01:00.0");
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busId, sizeof pci->busId, "%s", bus_id);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%s", bus_id + (strlen(bus_id) > 12 ? 4 : 0));
    sscanf(bus_id, "%x:%x:%x", &pci->domain, &pci->bus, &pci->device);
    pci->pciDeviceId = (unsigned int)scripted(member(device->spec, "pci_device_id"), 0x20B210DE);
    return OK;
}

/* --- memory and processes --------------------------------------------------------------------- */

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;

static void memory_of(nvmlDevice_t device, unsigned long long *total, unsigned long long *used) {
    *total = scripted(member(device->spec, "memory_total"), 80ULL << 30);
    *used = scripted(member(device->spec, "memory_used"), 0);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    ENTER("nvmlDeviceGetMemoryInfo");
    DEVICE_ARGUMENT(device);
    if (!memory) return INVALID_ARGUMENT;
    memory_of(device, &memory->total, &memory->used);
    memory->free = memory->total - memory->used;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    ENTER("nvmlDeviceGetMemoryInfo_v2");
    DEVICE_ARGUMENT(device);
    if (!memory) return INVALID_ARGUMENT;
    memory_of(device, &memory->total, &memory->used);
    memory->reserved = 0;
    memory->free = memory->total - memory->used;
    return OK;
}

/* --- utilisation and power (a load profile samples the card while the server is under load) ------ */

typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    ENTER("nvmlDeviceGetUtilizationRates");
    DEVICE_ARGUMENT(device);
    if (!utilization) return INVALID_ARGUMENT;
    utilization->gpu = (unsigned int)scripted(member(device->spec, "utilization_gpu"), 0);
    utilization->memory = (unsigned int)scripted(member(device->spec, "utilization_memory"), 0);
    return OK;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts) {
    ENTER("nvmlDeviceGetPowerUsage");
    DEVICE_ARGUMENT(device);
    if (!milliwatts) return INVALID_ARGUMENT;
    *milliwatts = (unsigned int)scripted(member(device->spec, "power_mw"), 0);
    return OK;
}

/* One process as every version of the query lays it out (v2 and v3 share a layout). */
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; } nvmlProcessInfo_v1_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

/* This process's PID as the host sees it: the first NSpid entry (NVML knows no PID namespaces). */
static unsigned int host_pid(void) {
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    unsigned int pid = (unsigned int)getpid();
    while (status && fgets(line, sizeof line, status))
        if (!strncmp(line, "NSpid:", 6)) {
            sscanf(line + 6, "%u", &pid);
            break;
        }
    if (status) fclose(status);
    return pid;
}

/* The processes on the device now: those whose from_ms has come and until_ms has not. */
static int live_processes(nvmlDevice_t device, nvmlProcessInfo_v2_t *out, int room) {
    const Json *list = member(device->spec, "processes");
    double elapsed = elapsed_ms();
    int found = 0;
    for (int i = 0; list && list->kind == J_ARRAY && i < list->count; i++) {
        const Json *process = &list->children[i];
        const Json *from = member(process, "from_ms"), *until = member(process, "until_ms");
        if ((from && elapsed < from->number) || (until && elapsed >= until->number)) continue;
        if (found < room) {
            const Json *pid = member(process, "pid");
            const char *who = pid && pid->kind == J_STRING ? pid->text : "";
            out[found].pid = !strcmp(who, "self")        ? (unsigned int)getpid()
                             : !strcmp(who, "host_self") ? host_pid()
                                                         : (unsigned int)(pid ? pid->number : 0);
            out[found].usedGpuMemory = scripted(member(process, "used"), 0);
            out[found].gpuInstanceId = device->parent ? (unsigned int)device->slot : UINT_MAX;
            out[found].computeInstanceId = device->parent ? 0 : UINT_MAX;
        }
        found++;
    }
    return found;
}

/* NVML's two-call protocol: no room → INSUFFICIENT_SIZE with the count (OK when there are none). */
static nvmlReturn_t processes_query(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v2_t *infos) {
    DEVICE_ARGUMENT(device);
    if (!count) return INVALID_ARGUMENT;
    nvmlProcessInfo_v2_t listed[256];
    int found = live_processes(device, listed, 256);
    if (!infos || *count < (unsigned int)found) {
        *count = (unsigned int)found;
        return found == 0 ? OK : INSUFFICIENT_SIZE;
    }
    memcpy(infos, listed, found * sizeof *listed);
    *count = (unsigned int)found;
    return OK;
}

#ifndef HIDE_nvmlDeviceGetComputeRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v2_t *infos) {
    ENTER("nvmlDeviceGetComputeRunningProcesses_v3");
    return processes_query(device, count, infos);
}
#endif

#ifndef HIDE_nvmlDeviceGetComputeRunningProcesses_v2
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v2_t *infos) {
    ENTER("nvmlDeviceGetComputeRunningProcesses_v2");
    return processes_query(device, count, infos);
}
#endif

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v1_t *infos) {
    ENTER("nvmlDeviceGetComputeRunningProcesses");
    nvmlProcessInfo_v2_t listed[256];
    unsigned int room = infos ? (*count < 256 ? *count : 256) : 0;
    nvmlReturn_t result = processes_query(device, &room, infos ? listed : NULL);
    for (unsigned int i = 0; result == OK && infos && i < room; i++)
        infos[i] = (nvmlProcessInfo_v1_t){listed[i].pid, listed[i].usedGpuMemory};
    if (count) *count = room;
    return result;
}

/* --- MIG -------------------------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    ENTER("nvmlDeviceGetMigMode");
    DEVICE_ARGUMENT(device);
    const Json *mode = member(device->spec, "mig_mode");
    if (!mode || device->parent) return NOT_SUPPORTED; /* a card without MIG, or a slice */
    if (!current || !pending) return INVALID_ARGUMENT;
    *current = *pending = (unsigned int)scripted(mode, 0);
    return OK;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    ENTER("nvmlDeviceGetMaxMigDeviceCount");
    DEVICE_ARGUMENT(device);
    if (!count) return INVALID_ARGUMENT;
    if (device->parent || !member(device->spec, "mig_mode")) return NOT_SUPPORTED;
    *count = (unsigned int)scripted(member(device->spec, "max_mig_devices"), 7);
    return OK;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *slice) {
    ENTER("nvmlDeviceGetMigDeviceHandleByIndex");
    DEVICE_ARGUMENT(device);
    if (!slice) return INVALID_ARGUMENT;
    for (int i = card_count; i < device_count; i++)
        if (devices[i].parent == device && devices[i].slot == (int)index) {
            *slice = &devices[i];
            return OK;
        }
    return NOT_FOUND; /* an empty slot */
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t slice, nvmlDevice_t *device) {
    ENTER("nvmlDeviceGetDeviceHandleFromMigDeviceHandle");
    DEVICE_ARGUMENT(slice);
    if (!device) return INVALID_ARGUMENT;
    if (!slice->parent) return INVALID_ARGUMENT;
    *device = slice->parent;
    return OK;
}

/* --- clocks ----------------------------------------------------------------------------------- */

static nvmlReturn_t clock_reasons(nvmlDevice_t device, unsigned long long *reasons) {
    DEVICE_ARGUMENT(device);
    if (!reasons) return INVALID_ARGUMENT;
    *reasons = scripted(member((device->parent ? device->parent : device)->spec, "clocks_event_reasons"), 0);
    return OK;
}

#ifndef HIDE_nvmlDeviceGetCurrentClocksEventReasons
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
    ENTER("nvmlDeviceGetCurrentClocksEventReasons");
    return clock_reasons(device, reasons);
}
#endif

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
    ENTER("nvmlDeviceGetCurrentClocksThrottleReasons");
    return clock_reasons(device, reasons);
}
