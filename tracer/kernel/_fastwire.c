/* proctrace.kernel._fastwire: the wire decoder of tracer/kernel/wire.py, compiled.
 *
 * Decoding is the hottest work of a live session: every event the kernel sends
 * is unpacked into one of the event records of tracer/model/events.py. In
 * Python that costs a struct unpack, a tuple and a dataclass __init__ per event
 * (two for an exec, whose ProcessContext is a record of its own), about as
 * much as everything else the session does with the event. This module does
 * the same for the kinds a storm is made of (fork, exec, exit, reap, signal)
 * and hands everything else (credential changes, cgroup events, and any
 * record that is short, inconsistent or of an unknown kind) to the Python
 * decoder, so errors and rare kinds have one implementation.
 *
 * What it shares with the Python decoder rather than copying:
 *   - the layout: it reads bpf/event.h's structs themselves, the one definition;
 *   - the records: it builds instances of the very classes wire.py builds,
 *     filling every slot (configure() checks that the fields it is given are
 *     all the slots a class has, so a field added to a record and not here
 *     refuses to load instead of decoding wrongly);
 *   - the caches (command names, wait statuses, credentials, directories,
 *     terminals, devices): wire.py's dicts, read here, filled on a miss by
 *     wire.py's own functions, so both decoders return the same shared objects
 *     (command names are looked up by their raw bytes in a table of what
 *     wire.py's cache gave, see comm_of; pids and other recurring numbers come
 *     from a table of ints, see recurring_long).
 * tests/test_fastwire.py decodes the same records with both and compares them.
 *
 * Building a record: a slotted class's instance is its object header followed
 * by one PyObject* per slot, at the offsets its member descriptors give. The
 * instance is allocated with tp_alloc (zeroed, GC-tracked) and each slot is
 * set to a new reference. No __init__ runs; the dataclasses here have no
 * __post_init__ and no validation, which configure() checks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>

#include "../../bpf/event.h"
#include "../_slots.h"

#define RING_BUSY_BIT (1u << 31)
#define RING_DISCARD_BIT (1u << 30)
#define RING_HEADER_SIZE 8
#define UNSET_ID 0xFFFFFFFFu

enum record_class {
    R_FORK,
    R_EXEC,
    R_EXIT,
    R_REAP,
    R_SIGNAL,
    R_CONTEXT,
    R_USAGE,
    R_CLASSES,
};

/* The field order each builder below fills; configure() maps it to slot offsets. */
static const char *const FIELDS_FORK[] = {
    "ts_ns", "pid", "tgid", "ppid", "uid", "comm", "start_ns", "cpu", "cgroup_id",
    "child_pid", "child_tgid", "child_ppid", "clone_flags", NULL};
static const char *const FIELDS_EXEC[] = {
    "ts_ns", "pid", "tgid", "ppid", "uid", "comm", "start_ns", "cpu", "cgroup_id",
    "filename", "argv", "argv_truncated", "filename_truncated", "argv_unreadable",
    "errno", "old_pid", "path_search", "context", NULL};
static const char *const FIELDS_EXIT[] = {
    "ts_ns", "pid", "tgid", "ppid", "uid", "comm", "start_ns", "cpu", "cgroup_id",
    "status", "task_exit_code", "process_exit", "task_start_ns", "usage",
    "oom_killed", "oom_memcg", "killed_by_pid", "killed_by_comm", NULL};
static const char *const FIELDS_REAP[] = {
    "ts_ns", "pid", "tgid", "ppid", "uid", "comm", "start_ns", "cpu", "cgroup_id",
    "reaped_pid", "status", "autoreaped", NULL};
static const char *const FIELDS_SIGNAL[] = {
    "ts_ns", "pid", "tgid", "ppid", "uid", "comm", "start_ns", "cpu", "cgroup_id",
    "stage", "signo", "code", "target_pid", "target_comm", "result", "group",
    "handler", "group_exit_signo", NULL};
static const char *const FIELDS_CONTEXT[] = {
    "cwd", "cwd_truncated", "cwd_deleted", "exe_dev", "exe_ino", "exe_memfd",
    "exe_deleted", "creds", "creds_before", "tty", "sid", "login_uid",
    "login_session", "pidns", "ns_pid", "mntns", "cgroup", "env", "env_truncated", NULL};
static const char *const FIELDS_USAGE[] = {
    "cpu_user_ns", "cpu_sys_ns", "max_rss_kb", "minflt", "majflt", "nvcsw", "nivcsw",
    "read_bytes", "write_bytes", NULL};

static const char *const *const FIELDS[R_CLASSES] = {
    FIELDS_FORK, FIELDS_EXEC, FIELDS_EXIT, FIELDS_REAP, FIELDS_SIGNAL, FIELDS_CONTEXT, FIELDS_USAGE};
static const char *const CLASS_KEYS[R_CLASSES] = {
    "ForkEvent", "ExecEvent", "ExitEvent", "ReapEvent", "SignalEvent", "ProcessContext", "ResourceUsage"};

#define MAX_FIELDS 24

struct record_type {
    PyTypeObject *type;
    Py_ssize_t nfields;
    Py_ssize_t offsets[MAX_FIELDS];
};

/* Everything configure() is given; NULL until then. */
static struct {
    int ready;
    struct record_type records[R_CLASSES];
    PyObject *py_decode_at;   /* wire.decode_at_python: rare kinds and every error */
    PyObject *comms;          /* raw 16-byte comm -> bytes cut at the NUL */
    PyObject *comm_miss;      /* wire._comm */
    PyObject *statuses;       /* raw wait status -> WaitStatus */
    PyObject *status_miss;    /* events.wait_status */
    PyObject *creds;          /* raw pt_cred bytes -> Credentials */
    PyObject *creds_miss;     /* wire._credentials */
    PyObject *cwds;           /* cwd area -> path (complete directories only) */
    PyObject *cwd_miss;       /* wire._cwd_miss(area, truncated) */
    PyObject *ttys;           /* tty_dev -> name */
    PyObject *tty_miss;       /* wire._tty_miss(tty_dev) */
    PyObject *devs;           /* kernel dev -> st_dev */
    PyObject *dev_miss;       /* wire._dev_miss(exe_dev) */
    PyObject *split_env;      /* wire.split_env */
    PyObject *decode_error;   /* wire.DecodeError */
    unsigned long long page_kb;
} S;

/* ---------------------------------------------------------------- helpers */

static PyObject *
make_record(enum record_class which, PyObject **values)
{
    /* Steals every reference in values[], also on failure. */
    struct record_type *rt = &S.records[which];
    PyObject *obj = rt->type->tp_alloc(rt->type, 0);
    if (obj == NULL) {
        for (Py_ssize_t i = 0; i < rt->nfields; i++)
            Py_XDECREF(values[i]);
        return NULL;
    }
    int failed = 0;
    for (Py_ssize_t i = 0; i < rt->nfields; i++) {
        if (values[i] == NULL)
            failed = 1;
        *(PyObject **)((char *)obj + rt->offsets[i]) = values[i];
    }
    if (failed) {
        Py_DECREF(obj);
        return NULL;
    }
    /* Out of the cyclic collector's sight: a record refers only to numbers,
     * bytes, shared immutable records and lists of bytes, never to itself, so
     * it cannot be part of a cycle; reference counting frees it. Tracked, a
     * storm's records were scanned at every young collection for as long as
     * the batch lived, at about a third of the decoding time. Left tracked, a
     * cycle someone made through one would only leak, never be freed early. */
    if (PyObject_GC_IsTracked(obj))
        PyObject_GC_UnTrack(obj);
    return obj;
}

static inline PyObject *
new_bool(int value)
{
    return Py_NewRef(value ? Py_True : Py_False);
}

static inline PyObject *
new_none(void)
{
    return Py_NewRef(Py_None);
}

/* Numbers that recur (pids, start times, cgroup ids, clone flags, a binary's
 * peak memory) as ints from a small table indexed by the value. A storm's
 * events repeat the same few: the spawner's pid, its parent, its cgroup, its
 * start time; a child's pid comes back in its exec, exit and reap. Each int made anew is an allocation, and in a live
 * session that allocation is the cold memory of the batch freed 100 ms
 * before: making ~10 per event was a third of decoding. The table holds one
 * reference to each int it keeps; an int is immutable, so sharing one changes
 * nothing a reader can see. */
#define ID_SLOTS 4096
static struct {
    unsigned long long value;
    PyObject *number;
} ids[ID_SLOTS];

static PyObject *
recurring_long(unsigned long long value)
{
    size_t at = (size_t)((value * 0x9E3779B97F4A7C15ull) >> 52); /* the top 12 bits */
    PyObject *known = ids[at].number;
    if (known != NULL && ids[at].value == value)
        return Py_NewRef(known);
    PyObject *number = PyLong_FromUnsignedLongLong(value);
    if (number == NULL)
        return NULL;
    Py_XSETREF(ids[at].number, Py_NewRef(number));
    ids[at].value = value;
    return number;
}

/* cache[key] when present, else miss(key); a new reference, or NULL with an exception. */
static PyObject *
cached(PyObject *cache, PyObject *key, PyObject *miss)
{
    if (key == NULL)
        return NULL;
    PyObject *value = PyDict_GetItemWithError(cache, key);
    if (value != NULL) {
        Py_DECREF(key);
        return Py_NewRef(value);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    value = PyObject_CallOneArg(miss, key);
    Py_DECREF(key);
    return value;
}

/* Command names by their raw 16 bytes: every event has one, and looking it up
 * in wire.py's cache first needs a bytes object made (and hashed, and freed)
 * for the key. This table, in front of that cache, compares the raw bytes and
 * holds a reference to what the cache gave for them: the same object while
 * wire.py keeps it, an equal one after wire.py has cleared its cache. */
#define COMM_SLOTS 256
static struct {
    char raw[PT_COMM_LEN];
    PyObject *comm;
} comms[COMM_SLOTS];

static PyObject *
comm_of(const char *raw)
{
    unsigned long long a, b;
    memcpy(&a, raw, sizeof a);
    memcpy(&b, raw + sizeof a, sizeof b);
    size_t at = (size_t)(((a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full)) >> 56); /* the top 8 bits */
    if (comms[at].comm != NULL && memcmp(comms[at].raw, raw, PT_COMM_LEN) == 0)
        return Py_NewRef(comms[at].comm);
    PyObject *comm = cached(S.comms, PyBytes_FromStringAndSize(raw, PT_COMM_LEN), S.comm_miss);
    if (comm == NULL)
        return NULL;
    Py_XSETREF(comms[at].comm, Py_NewRef(comm));
    memcpy(comms[at].raw, raw, PT_COMM_LEN);
    return comm;
}

static inline PyObject *
status_of(__u32 raw)
{
    return cached(S.statuses, PyLong_FromUnsignedLong(raw), S.status_miss);
}

static inline PyObject *
creds_of(const struct pt_cred *cred)
{
    return cached(S.creds, PyBytes_FromStringAndSize((const char *)cred, sizeof *cred), S.creds_miss);
}

/* The header's fields, the first nine of every event record, in FIELDS_* order. */
static void
header_values(const struct pt_header *h, PyObject **v)
{
    v[0] = PyLong_FromUnsignedLongLong(h->ts_ns);
    v[1] = recurring_long(h->pid);
    v[2] = recurring_long(h->tgid);
    v[3] = recurring_long(h->ppid);
    v[4] = recurring_long(h->uid);
    v[5] = comm_of(h->comm);
    v[6] = recurring_long(h->start_ns);
    v[7] = PyLong_FromUnsignedLong(h->cpu);
    v[8] = recurring_long(h->cgroup_id);
}

/* Short byte strings an exec carries (its file name, each argument) by their
 * content: a build or a storm execs the same few files with the same few
 * words, and each bytes object made is an allocation into memory gone cold
 * since the last batch, and a free. Bytes cannot change, so one object may
 * stand in every event that carries the same bytes. A miss makes the object
 * and keeps it in place of the slot's last one: at most SHORT_SLOTS objects
 * of at most SHORT_MAX bytes are held. */
#define SHORT_SLOTS 512
#define SHORT_MAX 64
static PyObject *shorts[SHORT_SLOTS];

static PyObject *
short_bytes(const char *p, Py_ssize_t n)
{
    if (n == 0 || n > SHORT_MAX)
        return PyBytes_FromStringAndSize(p, n);
    unsigned long long h = (unsigned long long)n * 0x9E3779B97F4A7C15ull, w;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, sizeof w);
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, (size_t)(n - i));
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
    }
    size_t at = (size_t)(h >> 55); /* the top 9 bits */
    PyObject *held = shorts[at];
    if (held != NULL && PyBytes_GET_SIZE(held) == n && memcmp(PyBytes_AS_STRING(held), p, (size_t)n) == 0)
        return Py_NewRef(held);
    PyObject *made = PyBytes_FromStringAndSize(p, n);
    if (made != NULL)
        Py_XSETREF(shorts[at], Py_NewRef(made));
    return made;
}

/* split_argv: each argument followed by a NUL; the last NUL may be missing. */
static PyObject *
split_args(const char *area, Py_ssize_t len)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    PyObject_GC_UnTrack(list); /* it holds bytes only: see make_record */
    if (len == 0)
        return list;
    if (area[len - 1] == '\0')
        len--;
    const char *p = area, *end = area + len;
    for (;;) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *stop = nul ? nul : end;
        PyObject *arg = short_bytes(p, stop - p);
        if (arg == NULL || PyList_Append(list, arg) < 0) {
            Py_XDECREF(arg);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(arg);
        if (nul == NULL)
            return list;
        p = nul + 1;
    }
}

/* ---------------------------------------------------------------- kinds */

static PyObject *
decode_fork(const char *rec)
{
    struct pt_fork ev;
    memcpy(&ev, rec, sizeof ev);
    PyObject *v[MAX_FIELDS];
    header_values(&ev.h, v);
    v[9] = recurring_long(ev.child_pid);
    v[10] = recurring_long(ev.child_tgid);
    v[11] = recurring_long(ev.child_ppid);
    v[12] = recurring_long(ev.clone_flags);
    return make_record(R_FORK, v);
}

static PyObject *
optional_id(__u32 value)
{
    return value ? PyLong_FromUnsignedLong(value) : new_none();
}

/* wire._context: where and as whom the new image runs. `tail` is the start of
 * the env and cwd parts (after filename and argv). */
static PyObject *
decode_context(const struct pt_exec *ev, const char *tail)
{
    __u32 flags = ev->flags;
    int cwd_truncated = (flags & PT_EXEC_CWD_TRUNCATED) != 0;
    int has_exe = (flags & PT_EXEC_EXE) != 0;
    int login = (flags & PT_EXEC_LOGIN) != 0;
    PyObject *v[MAX_FIELDS];

    if (ev->cwd_len || !cwd_truncated) {
        PyObject *area = PyBytes_FromStringAndSize(tail + ev->env_len, ev->cwd_len);
        if (cwd_truncated) {
            v[0] = area == NULL ? NULL : PyObject_CallFunctionObjArgs(S.cwd_miss, area, Py_True, NULL);
            Py_XDECREF(area);
        } else {
            PyObject *known = area == NULL ? NULL : PyDict_GetItemWithError(S.cwds, area);
            if (known != NULL)
                v[0] = Py_NewRef(known);
            else if (area == NULL || PyErr_Occurred())
                v[0] = NULL;
            else
                v[0] = PyObject_CallFunctionObjArgs(S.cwd_miss, area, Py_False, NULL);
            Py_XDECREF(area);
        }
    } else {
        v[0] = new_none();
    }
    v[1] = new_bool(cwd_truncated);
    v[2] = new_bool(flags & PT_EXEC_CWD_DELETED);
    v[3] = has_exe ? cached(S.devs, PyLong_FromUnsignedLong(ev->exe_dev), S.dev_miss) : new_none();
    v[4] = has_exe ? PyLong_FromUnsignedLongLong(ev->exe_ino) : new_none();
    v[5] = new_bool(flags & PT_EXEC_EXE_MEMFD);
    v[6] = new_bool(flags & PT_EXEC_EXE_DELETED);
    v[7] = creds_of(&ev->cred);
    v[8] = (flags & PT_EXEC_CRED_BEFORE) ? creds_of(&ev->cred_before) : new_none();
    v[9] = ev->tty_dev ? cached(S.ttys, PyLong_FromUnsignedLong(ev->tty_dev), S.tty_miss) : new_none();
    v[10] = recurring_long(ev->sid);
    v[11] = login && ev->login_uid != UNSET_ID ? PyLong_FromUnsignedLong(ev->login_uid) : new_none();
    v[12] = login && ev->login_session != UNSET_ID ? PyLong_FromUnsignedLong(ev->login_session) : new_none();
    v[13] = optional_id(ev->pidns);
    v[14] = optional_id(ev->ns_pid);
    v[15] = optional_id(ev->mntns);
    v[16] = new_none(); /* the cgroup's path: user space knows it from the event's cgroup_id */
    if (flags & PT_EXEC_ENV) {
        PyObject *area = PyBytes_FromStringAndSize(tail, ev->env_len);
        v[17] = area == NULL ? NULL : PyObject_CallOneArg(S.split_env, area);
        Py_XDECREF(area);
    } else {
        v[17] = new_none();
    }
    v[18] = new_bool(flags & PT_EXEC_ENV_TRUNCATED);
    return make_record(R_CONTEXT, v);
}

/* NULL without an exception: not for this decoder (the Python one decides). */
static PyObject *
decode_exec(const char *rec, Py_ssize_t size)
{
    struct pt_exec ev;
    memcpy(&ev, rec, sizeof ev);
    unsigned long long parts = (unsigned long long)ev.filename_len + ev.argv_len + ev.cwd_len + ev.env_len;
    if (sizeof ev + parts > (unsigned long long)size)
        return NULL;
    const char *filename = rec + sizeof ev;
    const char *args = filename + ev.filename_len;
    const char *tail = args + ev.argv_len;
    PyObject *v[MAX_FIELDS];
    header_values(&ev.h, v);
    v[9] = short_bytes(filename, ev.filename_len);
    v[10] = split_args(args, ev.argv_len);
    v[11] = new_bool(ev.flags & PT_EXEC_ARGV_TRUNCATED);
    v[12] = new_bool(ev.flags & PT_EXEC_FILENAME_TRUNCATED);
    v[13] = new_bool(ev.flags & PT_EXEC_ARGV_UNREADABLE);
    v[14] = PyLong_FromLong(ev.err);
    v[15] = recurring_long(ev.old_pid);
    v[16] = new_bool(0);
    v[17] = (ev.flags & PT_EXEC_CONTEXT) ? decode_context(&ev, tail) : new_none();
    return make_record(R_EXEC, v);
}

/* wire.adjusted_cputime: the ticks only split the scheduler's precise runtime. */
static void
adjusted_cputime(__u64 utime, __u64 stime, __u64 runtime, __u64 *user, __u64 *system)
{
    if (stime == 0) {
        *user = runtime;
        *system = 0;
    } else if (utime == 0) {
        *user = 0;
        *system = runtime;
    } else {
        unsigned __int128 product = (unsigned __int128)runtime * stime;
        unsigned __int128 total = (unsigned __int128)stime + utime;
        *system = (__u64)(product / total);
        *user = runtime - *system;
    }
}

static PyObject *
decode_usage(const struct pt_exit *ev)
{
    __u64 user, system;
    adjusted_cputime(ev->utime_ns, ev->stime_ns, ev->runtime_ns, &user, &system);
    __u64 image = ev->hiwater_rss > ev->rss ? ev->hiwater_rss : ev->rss;
    __u64 peak = image * S.page_kb;
    if (ev->maxrss_kb > peak)
        peak = ev->maxrss_kb;
    int io = (ev->has_usage & PT_USAGE_IO) != 0;
    PyObject *v[MAX_FIELDS];
    v[0] = PyLong_FromUnsignedLongLong(user);
    v[1] = PyLong_FromUnsignedLongLong(system);
    v[2] = recurring_long(peak);
    v[3] = recurring_long(ev->min_flt);
    v[4] = PyLong_FromUnsignedLongLong(ev->maj_flt);
    v[5] = PyLong_FromUnsignedLongLong(ev->nvcsw);
    v[6] = PyLong_FromUnsignedLongLong(ev->nivcsw);
    v[7] = io ? PyLong_FromUnsignedLongLong(ev->read_bytes) : new_none();
    v[8] = io ? PyLong_FromUnsignedLongLong(ev->write_bytes) : new_none();
    return make_record(R_USAGE, v);
}

/* NULL without an exception: not for this decoder (the Python one decides). */
static PyObject *
decode_exit(const char *rec)
{
    struct pt_exit ev;
    memcpy(&ev, rec, sizeof ev);
    __u64 image = ev.hiwater_rss > ev.rss ? ev.hiwater_rss : ev.rss;
    if ((ev.has_usage & PT_USAGE) && image > UINT64_MAX / S.page_kb)
        return NULL; /* a page count no kernel reports, whose size in KiB needs more than 64 bits */
    int sent = (ev.death & PT_DEATH_SENT) != 0;
    PyObject *v[MAX_FIELDS];
    header_values(&ev.h, v);
    v[9] = status_of(ev.status);
    v[10] = PyLong_FromUnsignedLong(ev.task_exit_code);
    v[11] = new_bool(ev.group_dead);
    v[12] = recurring_long(ev.task_start_ns);
    v[13] = (ev.has_usage & PT_USAGE) ? decode_usage(&ev) : new_none();
    v[14] = new_bool(ev.death & PT_DEATH_OOM);
    v[15] = new_none();
    v[16] = sent ? PyLong_FromUnsignedLong(ev.killed_by_pid) : new_none();
    v[17] = sent ? comm_of(ev.killed_by_comm) : new_none();
    return make_record(R_EXIT, v);
}

static PyObject *
decode_reap(const char *rec)
{
    struct pt_reap ev;
    memcpy(&ev, rec, sizeof ev);
    PyObject *v[MAX_FIELDS];
    header_values(&ev.h, v);
    v[9] = recurring_long(ev.reaped_pid);
    v[10] = status_of(ev.status);
    v[11] = new_bool(ev.autoreaped);
    return make_record(R_REAP, v);
}

static PyObject *
decode_signal(const char *rec)
{
    struct pt_signal ev;
    memcpy(&ev, rec, sizeof ev);
    PyObject *v[MAX_FIELDS];
    header_values(&ev.h, v);
    v[9] = PyLong_FromUnsignedLong(ev.stage);
    v[10] = PyLong_FromLong(ev.signo);
    v[11] = PyLong_FromLong(ev.code);
    v[12] = recurring_long(ev.target_pid);
    v[13] = comm_of(ev.target_comm);
    v[14] = PyLong_FromLong(ev.result);
    v[15] = new_bool(ev.group);
    v[16] = PyLong_FromUnsignedLongLong(ev.handler);
    v[17] = PyLong_FromUnsignedLong(ev.group_exit_signo);
    return make_record(R_SIGNAL, v);
}

/* The event of `size` bytes at `rec`, which `data` (of `data_len` bytes) holds
 * at `offset`. Anything this decoder does not take goes to the Python one. */
static PyObject *
decode_record(PyObject *data, const char *rec, Py_ssize_t offset, Py_ssize_t size)
{
    PyObject *out = NULL;
    if (size >= (Py_ssize_t)sizeof(struct pt_header)) {
        __u32 kind;
        memcpy(&kind, rec + offsetof(struct pt_header, kind), sizeof kind);
        switch (kind) {
        case PT_FORK:
            if (size >= (Py_ssize_t)sizeof(struct pt_fork))
                return decode_fork(rec);
            break;
        case PT_EXEC:
            if (size >= (Py_ssize_t)sizeof(struct pt_exec)) {
                out = decode_exec(rec, size);
                if (out != NULL || PyErr_Occurred())
                    return out;
            }
            break;
        case PT_EXIT:
            if (size >= (Py_ssize_t)sizeof(struct pt_exit)) {
                out = decode_exit(rec);
                if (out != NULL || PyErr_Occurred())
                    return out;
            }
            break;
        case PT_REAP:
            if (size >= (Py_ssize_t)sizeof(struct pt_reap))
                return decode_reap(rec);
            break;
        case PT_SIGNAL:
            if (size >= (Py_ssize_t)sizeof(struct pt_signal))
                return decode_signal(rec);
            break;
        default:
            break;
        }
    }
    PyObject *args[3] = {data, PyLong_FromSsize_t(offset), PyLong_FromSsize_t(size)};
    if (args[1] != NULL && args[2] != NULL)
        out = PyObject_Vectorcall(S.py_decode_at, args, 3, NULL);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    return out;
}

static int
not_ready(void)
{
    if (!S.ready) {
        PyErr_SetString(PyExc_RuntimeError, "proctrace.kernel._fastwire is not configured");
        return 1;
    }
    return 0;
}

/* decode_at(data, offset, size): wire.decode_at. */
static PyObject *
fastwire_decode_at(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (not_ready())
        return NULL;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode_at(data, offset, size)");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    Py_ssize_t size = PyLong_AsSsize_t(args[2]);
    if ((offset == -1 || size == -1) && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out;
    if (offset < 0 || size < 0 || offset > view.len || size > view.len - offset) {
        /* Past the end: the Python decoder raises what it raises for it. */
        PyObject *call[3] = {args[0], args[1], args[2]};
        out = PyObject_Vectorcall(S.py_decode_at, call, 3, NULL);
    } else {
        out = decode_record(args[0], (const char *)view.buf + offset, offset, size);
    }
    PyBuffer_Release(&view);
    return out;
}

/* walk_ring(chunk, out, errors) -> (consumed, records, busy): the records of a
 * copy of a BPF ring buffer's data, as RingReader.drain walks them: each is an
 * 8-byte header (u32 length with the busy and discard bits, u32 page offset)
 * and its data, 8-byte aligned. Each event is appended to `out`; a record the
 * decoder rejects with a ValueError is appended to `errors`. The walk stops at
 * a record still being written (busy is then True) or at the end; `consumed`
 * is how many bytes of the chunk were walked, `records` how many records
 * (discarded ones not counted). */
static PyObject *
fastwire_walk_ring(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (not_ready())
        return NULL;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyList_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "walk_ring(chunk: bytes, out: list, errors: list)");
        return NULL;
    }
    PyObject *chunk = args[0], *out = args[1], *errors = args[2];
    const char *base = PyBytes_AS_STRING(chunk);
    Py_ssize_t end = PyBytes_GET_SIZE(chunk), offset = 0, records = 0;
    int busy = 0;
    while (offset < end) {
        if (end - offset < RING_HEADER_SIZE)
            break; /* a torn header cannot come from the kernel: leave it */
        __u32 length;
        memcpy(&length, base + offset, sizeof length);
        if (length & RING_BUSY_BIT) {
            busy = 1;
            break;
        }
        Py_ssize_t size = length & ~(RING_BUSY_BIT | RING_DISCARD_BIT);
        if (!(length & RING_DISCARD_BIT)) {
            Py_ssize_t at = offset + RING_HEADER_SIZE;
            PyObject *event;
            if (size > end - at) {
                PyObject *call[3] = {chunk, PyLong_FromSsize_t(at), PyLong_FromSsize_t(size)};
                event = call[1] && call[2] ? PyObject_Vectorcall(S.py_decode_at, call, 3, NULL) : NULL;
                Py_XDECREF(call[1]);
                Py_XDECREF(call[2]);
            } else {
                event = decode_record(chunk, base + at, at, size);
            }
            if (event == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_ValueError))
                    return NULL;
                PyObject *type, *exc, *traceback;
                PyErr_Fetch(&type, &exc, &traceback);
                PyErr_NormalizeException(&type, &exc, &traceback);
                int failed = exc == NULL ? -1 : PyList_Append(errors, exc);
                Py_XDECREF(type);
                Py_XDECREF(exc);
                Py_XDECREF(traceback);
                if (failed < 0)
                    return NULL;
            } else {
                int failed = PyList_Append(out, event);
                Py_DECREF(event);
                if (failed < 0)
                    return NULL;
            }
            records++;
        }
        offset += (size + RING_HEADER_SIZE + 7) & ~(Py_ssize_t)7;
    }
    return Py_BuildValue("nnO", offset, records, busy ? Py_True : Py_False);
}

/* ---------------------------------------------------------------- configure */

static int
slot_offsets(enum record_class which, PyObject *type_obj)
{
    struct record_type *rt = &S.records[which];
    rt->nfields = 0;
    for (const char *const *name = FIELDS[which]; *name != NULL; name++) {
        if (rt->nfields == MAX_FIELDS) {
            PyErr_SetString(PyExc_ValueError, "too many fields");
            return -1;
        }
        if (slot_offset(type_obj, *name, &rt->offsets[rt->nfields]) < 0)
            return -1;
        rt->nfields++;
    }
    rt->type = (PyTypeObject *)Py_NewRef(type_obj);
    return 0;
}

static int
take(PyObject *spec, const char *key, PyObject **slot, int must_be_dict)
{
    PyObject *value = PyDict_GetItemString(spec, key);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "configure() needs %s", key);
        return -1;
    }
    if (must_be_dict ? !PyDict_CheckExact(value) : !PyCallable_Check(value)) {
        PyErr_Format(PyExc_TypeError, "configure(): %s must be a %s", key, must_be_dict ? "dict" : "callable");
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

/* configure(spec): the classes, caches and Python functions this decoder shares
 * with wire.py. The field names of each class are checked by wire.py against
 * all its slots (fields()); here, that each one is a writable object slot. */
static PyObject *
fastwire_configure(PyObject *self, PyObject *spec)
{
    (void)self;
    if (!PyDict_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "configure(spec: dict)");
        return NULL;
    }
    S.ready = 0;
    for (int i = 0; i < R_CLASSES; i++) {
        PyObject *type = PyDict_GetItemString(spec, CLASS_KEYS[i]);
        if (type == NULL) {
            PyErr_Format(PyExc_KeyError, "configure() needs %s", CLASS_KEYS[i]);
            return NULL;
        }
        if (slot_offsets((enum record_class)i, type) < 0)
            return NULL;
    }
    if (take(spec, "decode_at", &S.py_decode_at, 0) < 0 || take(spec, "comms", &S.comms, 1) < 0 ||
        take(spec, "comm_miss", &S.comm_miss, 0) < 0 || take(spec, "statuses", &S.statuses, 1) < 0 ||
        take(spec, "status_miss", &S.status_miss, 0) < 0 || take(spec, "creds", &S.creds, 1) < 0 ||
        take(spec, "creds_miss", &S.creds_miss, 0) < 0 || take(spec, "cwds", &S.cwds, 1) < 0 ||
        take(spec, "cwd_miss", &S.cwd_miss, 0) < 0 || take(spec, "ttys", &S.ttys, 1) < 0 ||
        take(spec, "tty_miss", &S.tty_miss, 0) < 0 || take(spec, "devs", &S.devs, 1) < 0 ||
        take(spec, "dev_miss", &S.dev_miss, 0) < 0 || take(spec, "split_env", &S.split_env, 0) < 0)
        return NULL;
    long page = sysconf(_SC_PAGESIZE);
    S.page_kb = page > 0 ? (unsigned long long)page / 1024 : 4;
    S.ready = 1;
    Py_RETURN_NONE;
}

/* fields() -> {class key: field names}: what configure() fills, for wire.py to
 * check against each class's slots. */
static PyObject *
fastwire_fields(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int i = 0; i < R_CLASSES; i++) {
        PyObject *names = PyList_New(0);
        if (names == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (const char *const *name = FIELDS[i]; *name != NULL; name++) {
            PyObject *s = PyUnicode_FromString(*name);
            if (s == NULL || PyList_Append(names, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(names);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(s);
        }
        PyObject *tuple = PyList_AsTuple(names);
        Py_DECREF(names);
        if (tuple == NULL || PyDict_SetItemString(out, CLASS_KEYS[i], tuple) < 0) {
            Py_XDECREF(tuple);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(tuple);
    }
    return out;
}

/* layout() -> {name: size}: the struct sizes this module was compiled with,
 * for the drift test beside wire.LAYOUTS. */
static PyObject *
fastwire_layout(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue(
        "{s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "pt_header", (Py_ssize_t)sizeof(struct pt_header), "pt_cred",
        (Py_ssize_t)sizeof(struct pt_cred), "pt_fork", (Py_ssize_t)sizeof(struct pt_fork), "pt_exec",
        (Py_ssize_t)sizeof(struct pt_exec), "pt_exit", (Py_ssize_t)sizeof(struct pt_exit), "pt_signal",
        (Py_ssize_t)sizeof(struct pt_signal), "pt_reap", (Py_ssize_t)sizeof(struct pt_reap));
}

static PyMethodDef fastwire_methods[] = {
    {"configure", fastwire_configure, METH_O, "Share wire.py's classes, caches and fallbacks."},
    {"fields", fastwire_fields, METH_NOARGS, "The fields each class's builder fills."},
    {"layout", fastwire_layout, METH_NOARGS, "Struct sizes as compiled from bpf/event.h."},
    {"decode_at", (PyCFunction)(void (*)(void))fastwire_decode_at, METH_FASTCALL, "wire.decode_at, compiled."},
    {"walk_ring", (PyCFunction)(void (*)(void))fastwire_walk_ring, METH_FASTCALL,
     "Decode the records of a copy of ring buffer data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastwire_module = {
    PyModuleDef_HEAD_INIT, "proctrace.kernel._fastwire",
    "The wire decoder of tracer/kernel/wire.py, compiled (optional: wire.py falls back to Python).", -1,
    fastwire_methods,
};

PyMODINIT_FUNC
PyInit__fastwire(void)
{
    return PyModule_Create(&fastwire_module);
}
