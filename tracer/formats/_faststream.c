/* proctrace.formats._faststream: the pretty stream's lines (formats/stream.py), compiled.
 *
 * StreamRenderer.lines() is the reference. This module renders, a batch at a
 * time, the events a storm is made of when nothing about them is unusual: a
 * fork, an exec that succeeded with arguments that fit, an exit that is not
 * a kill to explain, a reap. Every other event, and every event whose words
 * are not yet in the renderer's caches, is rendered by the Python renderer
 * (its one-event batch), so that the words live in Python:
 *   - what a column holds and how it is padded: the renderer's caches (pid
 *     columns, comm columns, quoted arguments, outcome words, cgroup tags),
 *     filled by stream.py's own functions on a miss;
 *   - durations: text.format_duration's rules, rewritten here as line_duration
 *     (tests/test_faststream.py compares the two over every unit's edges);
 *   - the few literal words below ("process", "thread", "after", "reaped")
 *     and the layout of a line, which tests/test_faststream.py checks line for
 *     line against the Python renderer, with and without colour, on every
 *     kind of event and on a recorded storm.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "../_slots.h"

#include <sched.h> /* CLONE_THREAD, CLONE_VFORK: the clone flags the kernel reports */
#include <stdint.h>
#include <string.h>

enum cls { C_FORK, C_EXEC, C_EXIT, C_REAP, C_CLASSES };
static const char *const CLASS_KEYS[C_CLASSES] = {"ForkEvent", "ExecEvent", "ExitEvent", "ReapEvent"};

/* Slots read, by name; their offsets are found in each class at construction. */
enum field {
    F_TS, F_PID, F_TGID, F_PPID, F_COMM, F_START,
    F_CHILD_PID, F_CHILD_PPID, F_CLONE_FLAGS,
    F_FILENAME, F_ARGV, F_ARGV_TRUNCATED, F_FILENAME_TRUNCATED, F_ARGV_UNREADABLE, F_ERRNO, F_OLD_PID,
    F_PATH_SEARCH, F_CONTEXT,
    F_STATUS, F_PROCESS_EXIT, F_TASK_START, F_OOM_KILLED, F_KILLED_BY_PID,
    F_REAPED_PID,
    F_FIELDS
};
static const char *const FIELD_NAMES[F_FIELDS] = {
    "ts_ns", "pid", "tgid", "ppid", "comm", "start_ns",
    "child_pid", "child_ppid", "clone_flags",
    "filename", "argv", "argv_truncated", "filename_truncated", "argv_unreadable", "errno", "old_pid",
    "path_search", "context",
    "status", "process_exit", "task_start_ns", "oom_killed", "killed_by_pid",
    "reaped_pid",
};
/* Which class each field is read from: -1 every class (the header's fields),
 * -2 an exit's and a reap's (their status). */
static const signed char FIELD_CLASS[F_FIELDS] = {
    -1, -1, -1, -1, -1, -1,
    C_FORK, C_FORK, C_FORK,
    C_EXEC, C_EXEC, C_EXEC, C_EXEC, C_EXEC, C_EXEC, C_EXEC, C_EXEC, C_EXEC,
    -2, C_EXIT, C_EXIT, C_EXIT, C_EXIT,
    C_REAP,
};

enum role { R_FORK, R_EXEC, R_REAP, R_ROLES }; /* an exit's role is its outcome's */

typedef struct {
    PyObject_HEAD
    PyTypeObject *classes[C_CLASSES];
    Py_ssize_t offsets[C_CLASSES][F_FIELDS]; /* 0: not a field of that class */
    Py_ssize_t ctx_creds, ctx_creds_before, ctx_cgroup, status_raw;
    PyTypeObject *context_type, *status_type;
    long long offset_ns;
    int color;
    int pid_width; /* the pid columns' width, padded with spaces */
    Py_ssize_t detail_max;
    PyObject *kind_columns[C_CLASSES];
    PyObject *comms, *outcomes, *quoted, *tags, *path_misses; /* the Python renderer's caches */
    PyObject *comm_miss, *quote, *hms_of, *python_lines;
    PyObject *time_on, *time_off, *comm_on, *comm_off;
    PyObject *roles; /* role name -> (on, off) */
    PyObject *role_names[R_ROLES];
    PyObject *role_codes[R_ROLES][2];
    long long second; /* the second whose "HH:MM:SS." is in hms */
    PyObject *hms;
    char *text;       /* text()'s UTF-8, kept from batch to batch */
    Py_ssize_t text_used, text_cap;
} Renderer;

/* ---------------------------------------------------------------- a line */

#define MAX_PIECES 96
#define ASCII_MAX 256

/* A line made of pieces: strings (borrowed) and ASCII bytes (copied in). */
typedef struct {
    PyObject *str[MAX_PIECES]; /* NULL: the piece is ascii[at..at+len] */
    Py_ssize_t at[MAX_PIECES], len[MAX_PIECES];
    int n;
    char ascii[ASCII_MAX];
    Py_ssize_t ascii_used;
    int overflow;
} Line;

/* Not `Line l = {0}`: that would clear all its arrays for every event. */
static inline void
line_init(Line *l)
{
    l->n = 0;
    l->ascii_used = 0;
    l->overflow = 0;
}

static void
line_str(Line *l, PyObject *s)
{
    if (l->n == MAX_PIECES) {
        l->overflow = 1;
        return;
    }
    l->str[l->n] = s;
    l->len[l->n] = PyUnicode_GET_LENGTH(s);
    l->n++;
}

static void
line_ascii(Line *l, const char *text, Py_ssize_t len)
{
    if (l->n == MAX_PIECES || l->ascii_used + len > ASCII_MAX) {
        l->overflow = 1;
        return;
    }
    memcpy(l->ascii + l->ascii_used, text, (size_t)len);
    l->str[l->n] = NULL;
    l->at[l->n] = l->ascii_used;
    l->len[l->n] = len;
    l->ascii_used += len;
    l->n++;
}

static void
line_u64(Line *l, unsigned long long value)
{
    char digits[24];
    int i = (int)sizeof digits;
    do {
        digits[--i] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    line_ascii(l, digits + i, (Py_ssize_t)sizeof digits - i);
}

/* Spaces until the line's ASCII holds `width` bytes: str.ljust for a column
 * of ASCII pieces. */
static void
line_pad(Line *l, Py_ssize_t width)
{
    static const char spaces[] = "                                ";
    Py_ssize_t missing = width - l->ascii_used;
    if (missing > 0)
        line_ascii(l, spaces, missing < (Py_ssize_t)sizeof spaces - 1 ? missing : (Py_ssize_t)sizeof spaces - 1);
}

/* Two digits, zero-padded: the "05" of "2m05s". */
static void
line_2digits(Line *l, unsigned long long value)
{
    char two[2] = {(char)('0' + value / 10 % 10), (char)('0' + value % 10)};
    line_ascii(l, two, 2);
}

/* `scaled` with its last `decimals` (1 or 2) digits after the point: 123 -> "12.3". */
static void
line_decimal(Line *l, unsigned long long scaled, int decimals)
{
    unsigned long long unit = decimals == 1 ? 10 : 100;
    line_u64(l, scaled / unit);
    line_ascii(l, ".", 1);
    if (decimals == 1)
        line_u64(l, scaled % unit);
    else
        line_2digits(l, scaled % unit);
}

/* Two units in one: "2m05s", "4h07m", "3d02h". */
static void
line_pair(Line *l, unsigned long long major, unsigned long long per, const char *units)
{
    line_u64(l, major / per);
    line_ascii(l, units, 1);
    line_2digits(l, major % per);
    line_ascii(l, units + 1, 1);
}

static PyObject *MICRO_SECONDS; /* "µs": the one unit that is not ASCII */

/* text.format_duration(ns), rule for rule: 850ns, 12.3µs, 1.2ms, 3.40s, 2m05s, 4h07m, 3d02h. */
static void
line_duration(Line *l, long long signed_ns)
{
    unsigned long long ns = signed_ns < 0 ? 0 : (unsigned long long)signed_ns;
    if (ns < 1000ULL) {
        line_u64(l, ns);
        line_ascii(l, "ns", 2);
    } else if (ns < 999950ULL) {
        line_decimal(l, (ns + 50) / 100, 1);
        line_str(l, MICRO_SECONDS);
    } else if (ns < 999950000ULL) {
        line_decimal(l, (ns + 50000) / 100000, 1);
        line_ascii(l, "ms", 2);
    } else if (ns < 59995000000ULL) {
        line_decimal(l, (ns + 5000000) / 10000000, 2);
        line_ascii(l, "s", 1);
    } else if ((ns + 500000000ULL) / 1000000000ULL < 3600) {
        line_pair(l, (ns + 500000000ULL) / 1000000000ULL, 60, "ms");
    } else if ((ns + 30000000000ULL) / 60000000000ULL < 24 * 60) {
        line_pair(l, (ns + 30000000000ULL) / 60000000000ULL, 60, "hm");
    } else {
        line_pair(l, (ns + 1800000000000ULL) / 3600000000000ULL, 24, "dh");
    }
}

static PyObject *
line_finish(Line *l)
{
    Py_ssize_t total = 0;
    Py_UCS4 maxchar = 127;
    for (int i = 0; i < l->n; i++) {
        total += l->len[i];
        if (l->str[i] != NULL) {
            Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(l->str[i]);
            if (m > maxchar)
                maxchar = m;
        }
    }
    PyObject *out = PyUnicode_New(total, maxchar);
    if (out == NULL)
        return NULL;
    int kind = PyUnicode_KIND(out);
    void *data = PyUnicode_DATA(out);
    Py_ssize_t pos = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->str[i] != NULL) {
            if (PyUnicode_CopyCharacters(out, pos, l->str[i], 0, l->len[i]) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        } else if (kind == PyUnicode_1BYTE_KIND) {
            memcpy((char *)data + pos, l->ascii + l->at[i], (size_t)l->len[i]);
        } else {
            for (Py_ssize_t j = 0; j < l->len[i]; j++)
                PyUnicode_WRITE(kind, data, pos + j, (Py_UCS4)(unsigned char)l->ascii[l->at[i] + j]);
        }
        pos += l->len[i];
    }
    return out;
}

/* ---------------------------------------------------------------- reading events */

static inline PyObject *
slot(PyObject *obj, Py_ssize_t offset)
{
    return offset ? *(PyObject **)((char *)obj + offset) : NULL;
}

/* An int slot as unsigned 64 bits; -1 when unset, not an int or out of range. */
static int
slot_u64(PyObject *obj, Py_ssize_t offset, unsigned long long *value)
{
    PyObject *v = slot(obj, offset);
    if (v == NULL || !PyLong_CheckExact(v))
        return -1;
    *value = PyLong_AsUnsignedLongLong(v);
    if (*value == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

static inline int
slot_is(PyObject *obj, Py_ssize_t offset, PyObject *expected)
{
    return slot(obj, offset) == expected;
}

/* cache[key], or on a miss miss(key) (which the Python side remembers): a new
 * reference, since a later miss may clear the cache; NULL with an exception. */
static PyObject *
through(PyObject *cache, PyObject *key, PyObject *miss)
{
    PyObject *value = PyDict_GetItemWithError(cache, key);
    if (value != NULL)
        return Py_NewRef(value);
    if (PyErr_Occurred())
        return NULL;
    value = PyObject_CallOneArg(miss, key);
    if (value != NULL && !PyUnicode_Check(value)) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_TypeError, "a column must be a str");
        return NULL;
    }
    return value;
}

/* ---------------------------------------------------------------- the kinds
 * Each returns 1 when it rendered the detail into `l` and chose `*role`, 0 when
 * the Python renderer is to render the event, -1 on an error. Owned references
 * it made go to keep[], released by the caller. */

#define MAX_ARGS 24 /* more go through the Python renderer */
#define KEEP_MAX (MAX_ARGS + 16)

typedef struct {
    PyObject *items[KEEP_MAX];
    int n;
} Keep;

/* Hold `obj` (a new reference) until the line is made; -1 when it is NULL
 * (an error) or there is no room (an error set). */
static int
keep(Keep *k, PyObject *obj)
{
    if (obj == NULL)
        return -1;
    if (k->n == KEEP_MAX) {
        Py_DECREF(obj);
        PyErr_SetString(PyExc_OverflowError, "too many pieces in one line");
        return -1;
    }
    k->items[k->n++] = obj;
    return 0;
}

static void
keep_release(Keep *k)
{
    for (int i = 0; i < k->n; i++)
        Py_DECREF(k->items[i]);
    k->n = 0;
}

static int
fork_detail(Renderer *r, PyObject *ev, Line *l, enum role *role)
{
    Py_ssize_t *off = r->offsets[C_FORK];
    unsigned long long flags, child, child_ppid, tgid;
    if (slot_u64(ev, off[F_CLONE_FLAGS], &flags) < 0 || slot_u64(ev, off[F_CHILD_PID], &child) < 0 ||
        slot_u64(ev, off[F_CHILD_PPID], &child_ppid) < 0 || slot_u64(ev, off[F_TGID], &tgid) < 0)
        return 0;
    *role = R_FORK;
    if (flags & CLONE_THREAD) {
        line_ascii(l, "thread ", 7);
    } else {
        if ((flags & CLONE_VFORK) || child_ppid != tgid)
            return 0; /* with notes */
        line_ascii(l, "process ", 8);
    }
    line_u64(l, child);
    return 1;
}

static int
exec_detail(Renderer *r, PyObject *ev, Line *l, enum role *role, Keep *k)
{
    Py_ssize_t *off = r->offsets[C_EXEC];
    unsigned long long err, old_pid, pid;
    if (!slot_is(ev, off[F_PATH_SEARCH], Py_False) || !slot_is(ev, off[F_FILENAME_TRUNCATED], Py_False) ||
        !slot_is(ev, off[F_ARGV_TRUNCATED], Py_False) || !slot_is(ev, off[F_ARGV_UNREADABLE], Py_False) ||
        slot_u64(ev, off[F_ERRNO], &err) < 0 || err != 0 || slot_u64(ev, off[F_OLD_PID], &old_pid) < 0 ||
        slot_u64(ev, off[F_PID], &pid) < 0 || old_pid != pid || PyDict_GET_SIZE(r->path_misses) != 0)
        return 0;
    PyObject *filename = slot(ev, off[F_FILENAME]);
    PyObject *argv = slot(ev, off[F_ARGV]);
    PyObject *ctx = slot(ev, off[F_CONTEXT]);
    if (filename == NULL || !PyBytes_CheckExact(filename) || argv == NULL || !PyList_CheckExact(argv) || ctx == NULL)
        return 0;
    PyObject *tag = NULL;
    if (ctx != Py_None) {
        if (Py_TYPE(ctx) != r->context_type)
            return 0;
        PyObject *creds = slot(ctx, r->ctx_creds), *before = slot(ctx, r->ctx_creds_before);
        PyObject *cgroup = slot(ctx, r->ctx_cgroup);
        if (creds == NULL || before == NULL || cgroup == NULL)
            return 0;
        if (before != Py_None && creds != Py_None && before != creds)
            return 0; /* maybe a privilege gain: the Python renderer says */
        if (cgroup != Py_None) {
            tag = PyDict_GetItemWithError(r->tags, cgroup);
            if (tag == NULL)
                return PyErr_Occurred() ? -1 : 0;
        }
    }
    if (tag != NULL && keep(k, Py_NewRef(tag)) < 0)
        return -1;
    PyObject *quoted = through(r->quoted, filename, r->quote);
    if (keep(k, quoted) < 0)
        return -1;
    line_str(l, quoted);
    Py_ssize_t used = PyUnicode_GET_LENGTH(quoted);
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (argc > MAX_ARGS)
        return 0;
    for (Py_ssize_t i = 0; i < argc; i++) {
        PyObject *arg = PyList_GET_ITEM(argv, i);
        Py_ssize_t room = r->detail_max - used - 1;
        if (!PyBytes_CheckExact(arg) || PyBytes_GET_SIZE(arg) > room)
            return 0; /* to be cut: the Python renderer cuts it */
        quoted = through(r->quoted, arg, r->quote);
        if (keep(k, quoted) < 0)
            return -1;
        if (PyUnicode_GET_LENGTH(quoted) > room)
            return 0;
        line_ascii(l, " ", 1);
        line_str(l, quoted);
        used += PyUnicode_GET_LENGTH(quoted) + 1;
    }
    if (tag != NULL)
        line_str(l, tag);
    *role = R_EXEC;
    return 1;
}

/* The outcome words of a WaitStatus, and their role, from the renderer's cache
 * (held in `k`). */
static int
outcome_of(Renderer *r, PyObject *status, PyObject **words, PyObject **role_name, Keep *k)
{
    if (status == NULL || Py_TYPE(status) != r->status_type)
        return 0;
    PyObject *raw = slot(status, r->status_raw);
    if (raw == NULL)
        return 0;
    PyObject *known = PyDict_GetItemWithError(r->outcomes, raw);
    if (known == NULL)
        return PyErr_Occurred() ? -1 : 0; /* the Python renderer words it, and remembers */
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(known, 0)))
        return 0;
    if (keep(k, Py_NewRef(known)) < 0)
        return -1;
    *words = PyTuple_GET_ITEM(known, 0);
    *role_name = PyTuple_GET_ITEM(known, 1);
    return 1;
}

static int
exit_detail(Renderer *r, PyObject *ev, Line *l, PyObject **role_name, Keep *k)
{
    Py_ssize_t *off = r->offsets[C_EXIT];
    if (!slot_is(ev, off[F_OOM_KILLED], Py_False) || !slot_is(ev, off[F_KILLED_BY_PID], Py_None))
        return 0; /* a death to explain */
    PyObject *words;
    int found = outcome_of(r, slot(ev, off[F_STATUS]), &words, role_name, k);
    if (found <= 0)
        return found;
    PyObject *process_exit = slot(ev, off[F_PROCESS_EXIT]);
    if (process_exit != Py_True && process_exit != Py_False)
        return 0;
    int whole = process_exit == Py_True;
    unsigned long long ts, start;
    if (slot_u64(ev, off[F_TS], &ts) < 0 || slot_u64(ev, whole ? off[F_START] : off[F_TASK_START], &start) < 0)
        return 0;
    line_ascii(l, whole ? "process " : "thread ", whole ? 8 : 7);
    line_str(l, words);
    if (start) {
        if (ts > INT64_MAX || start > INT64_MAX)
            return 0;
        line_ascii(l, " after ", 7);
        line_duration(l, (long long)ts - (long long)start);
    }
    return 1;
}

static int
reap_detail(Renderer *r, PyObject *ev, Line *l, enum role *role, Keep *k)
{
    Py_ssize_t *off = r->offsets[C_REAP];
    PyObject *words, *role_name;
    unsigned long long reaped;
    if (slot_u64(ev, off[F_REAPED_PID], &reaped) < 0)
        return 0;
    int found = outcome_of(r, slot(ev, off[F_STATUS]), &words, &role_name, k);
    if (found <= 0)
        return found;
    line_ascii(l, "reaped ", 7);
    line_u64(l, reaped);
    line_ascii(l, " (", 2);
    line_str(l, words);
    line_ascii(l, ")", 1);
    *role = R_REAP;
    return 1;
}

/* ---------------------------------------------------------------- one event */

/* The columns before the detail: time, kind, pid, ppid, comm. 1, 0 or -1 as above. */
static int
columns(Renderer *r, PyObject *ev, int cls, Line *stamp, Line *pids, PyObject **comm_col, Keep *k)
{
    Py_ssize_t *off = r->offsets[cls];
    unsigned long long ts, pid, tgid;
    if (slot_u64(ev, off[F_TS], &ts) < 0 || slot_u64(ev, off[F_PID], &pid) < 0 ||
        slot_u64(ev, off[F_TGID], &tgid) < 0 || ts > (unsigned long long)(INT64_MAX - (r->offset_ns > 0 ? r->offset_ns : 0)))
        return 0;
    long long wall = (long long)ts + r->offset_ns;
    if (wall < 0)
        return 0;
    long long second = wall / 1000000000LL;
    if (r->hms == NULL || second != r->second) {
        PyObject *s = PyLong_FromLongLong(second);
        PyObject *hms = s == NULL ? NULL : PyObject_CallOneArg(r->hms_of, s);
        Py_XDECREF(s);
        if (hms == NULL)
            return -1;
        if (!PyUnicode_Check(hms)) {
            Py_DECREF(hms);
            return 0;
        }
        Py_XSETREF(r->hms, hms);
        r->second = second;
    }
    line_str(stamp, r->hms);
    long long micros = (wall % 1000000000LL) / 1000;
    char six[6];
    for (int i = 5; i >= 0; i--) {
        six[i] = (char)('0' + micros % 10);
        micros /= 10;
    }
    line_ascii(stamp, six, 6);

    /* "pid " (or "tgid/tid " for a thread) and "ppid ", each padded to its
     * column: made here, since a storm brings a new pid with every process. */
    unsigned long long ppid;
    if (slot_u64(ev, off[F_PPID], &ppid) < 0)
        return 0;
    if (pid != tgid) {
        line_u64(pids, tgid);
        line_ascii(pids, "/", 1);
    }
    line_u64(pids, pid);
    line_pad(pids, r->pid_width);
    line_ascii(pids, " ", 1);
    Py_ssize_t ppid_at = pids->ascii_used;
    line_u64(pids, ppid);
    line_pad(pids, ppid_at + r->pid_width);
    PyObject *comm = slot(ev, off[F_COMM]);
    if (comm == NULL || !PyBytes_CheckExact(comm))
        return 0;
    *comm_col = through(r->comms, comm, r->comm_miss);
    if (keep(k, *comm_col) < 0)
        return -1;
    return 1;
}

static PyObject *
role_code(Renderer *r, PyObject *role_name, int which)
{
    PyObject *codes = PyDict_GetItemWithError(r->roles, role_name);
    if (codes == NULL || !PyTuple_CheckExact(codes) || PyTuple_GET_SIZE(codes) != 2)
        return NULL;
    return PyTuple_GET_ITEM(codes, which);
}

/* The event's line into `l`: 1, with the references its pieces borrow in `k`
 * (the caller releases them once the line is written out); 0 when the Python
 * renderer is to render the event; -1 on an error. Either way but 1, `k` is
 * released already. */
static int
render_into(Renderer *r, PyObject *ev, Line *out, Keep *k)
{
    PyTypeObject *type = Py_TYPE(ev);
    int cls = -1;
    for (int i = 0; i < C_CLASSES; i++)
        if (type == r->classes[i])
            cls = i;
    if (cls < 0)
        return 0;
    Line stamp, pids, detail;
    line_init(&stamp);
    line_init(&pids);
    line_init(&detail);
    PyObject *comm_col;
    int done = columns(r, ev, cls, &stamp, &pids, &comm_col, k);
    enum role role = R_FORK;
    PyObject *role_name = NULL;
    if (done == 1) {
        switch (cls) {
        case C_FORK:
            done = fork_detail(r, ev, &detail, &role);
            break;
        case C_EXEC:
            done = exec_detail(r, ev, &detail, &role, k);
            break;
        case C_EXIT:
            done = exit_detail(r, ev, &detail, &role_name, k);
            break;
        default:
            done = reap_detail(r, ev, &detail, &role, k);
            break;
        }
    }
    if (done != 1 || stamp.overflow || pids.overflow || detail.overflow) {
        keep_release(k);
        return done < 0 ? -1 : 0;
    }
    if (role_name == NULL)
        role_name = r->role_names[role];
    line_init(out);
    PyObject *on = NULL, *off = NULL;
    if (r->color) {
        on = role_code(r, role_name, 0);
        off = role_code(r, role_name, 1);
        if (on == NULL || off == NULL || !PyUnicode_Check(on) || !PyUnicode_Check(off)) {
            keep_release(k);
            return PyErr_Occurred() ? -1 : 0;
        }
        line_str(out, r->time_on);
    }
    for (int i = 0; i < stamp.n; i++) {
        if (stamp.str[i] != NULL)
            line_str(out, stamp.str[i]);
        else
            line_ascii(out, stamp.ascii + stamp.at[i], stamp.len[i]);
    }
    if (r->color) {
        line_str(out, r->time_off);
        line_ascii(out, " ", 1);
        line_str(out, on);
    } else {
        line_ascii(out, " ", 1);
    }
    line_str(out, r->kind_columns[cls]);
    if (r->color)
        line_str(out, off);
    line_ascii(out, " ", 1);
    line_ascii(out, pids.ascii, pids.ascii_used);
    line_ascii(out, " ", 1);
    if (r->color)
        line_str(out, r->comm_on);
    line_str(out, comm_col);
    if (r->color)
        line_str(out, r->comm_off);
    line_ascii(out, " ", 1);
    if (r->color)
        line_str(out, on);
    for (int i = 0; i < detail.n; i++) {
        if (detail.str[i] != NULL)
            line_str(out, detail.str[i]);
        else
            line_ascii(out, detail.ascii + detail.at[i], detail.len[i]);
    }
    if (r->color)
        line_str(out, off);
    if (out->overflow) {
        keep_release(k);
        return 0;
    }
    return 1;
}

/* The event's line (new reference), Py_None (borrowed, not increfed) when the
 * Python renderer is to render it, or NULL on an error. */
static PyObject *
render_one(Renderer *r, PyObject *ev)
{
    Keep k;
    k.n = 0;
    Line l;
    int done = render_into(r, ev, &l, &k);
    if (done != 1)
        return done < 0 ? NULL : Py_None;
    PyObject *line = line_finish(&l);
    keep_release(&k);
    return line;
}

/* The Python renderer's lines of `ev` alone (a new list), or NULL with an exception. */
static PyObject *
python_lines_of(Renderer *r, PyObject *ev)
{
    PyObject *batch = PyList_New(1);
    if (batch == NULL)
        return NULL;
    PyList_SET_ITEM(batch, 0, Py_NewRef(ev));
    PyObject *shown = PyObject_CallOneArg(r->python_lines, batch);
    Py_DECREF(batch);
    if (shown != NULL && !PyList_Check(shown)) {
        Py_DECREF(shown);
        PyErr_SetString(PyExc_TypeError, "the Python renderer must return a list");
        return NULL;
    }
    return shown;
}

/* lines(events) -> list[str]: StreamRenderer.lines. */
static PyObject *
renderer_lines(Renderer *r, PyObject *events)
{
    if (!PyList_Check(events)) {
        PyErr_SetString(PyExc_TypeError, "lines(events: list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(events);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ev = PyList_GET_ITEM(events, i);
        Py_INCREF(ev);
        PyObject *line = render_one(r, ev);
        if (line == Py_None) {
            /* The Python renderer: its one-event batch (no line for a PATH miss). */
            PyObject *shown = python_lines_of(r, ev);
            line = shown == NULL ? NULL : Py_None;
            for (Py_ssize_t j = 0; shown != NULL && j < PyList_GET_SIZE(shown); j++) {
                if (PyList_Append(out, PyList_GET_ITEM(shown, j)) < 0) {
                    line = NULL;
                    break;
                }
            }
            Py_XDECREF(shown);
            Py_DECREF(ev);
            if (line == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            continue;
        }
        Py_DECREF(ev);
        if (line == NULL || PyList_Append(out, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(line);
    }
    return out;
}

/* ---------------------------------------------------------------- the batch as UTF-8 */

/* Past this, text()'s buffer is given back after the batch rather than kept. */
#define TEXT_KEEP_MAX (4 << 20)

static int
text_bytes(Renderer *r, const char *bytes, Py_ssize_t n)
{
    if (n > r->text_cap - r->text_used) {
        Py_ssize_t cap = r->text_cap ? r->text_cap : 1 << 16;
        while (cap - r->text_used < n) {
            if (cap > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *grown = PyMem_Realloc(r->text, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->text = grown;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_used, bytes, (size_t)n);
    r->text_used += n;
    return 0;
}

/* A str in UTF-8: the UTF-8 it keeps (made once for a cached column), or,
 * when it cannot be encoded strictly (a lone surrogate), encoded with the
 * stream's own error handler, as the stream would have written it. */
static int
text_str(Renderer *r, PyObject *s, const char *errors)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(s, &n);
    if (utf8 != NULL)
        return text_bytes(r, utf8, n);
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(s, "utf-8", errors);
    if (encoded == NULL)
        return -1;
    int done = text_bytes(r, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return done;
}

static int
text_line(Renderer *r, const Line *l, const char *errors)
{
    for (int i = 0; i < l->n; i++) {
        int done = l->str[i] != NULL ? text_str(r, l->str[i], errors)
                                     : text_bytes(r, l->ascii + l->at[i], l->len[i]);
        if (done < 0)
            return -1;
    }
    return text_bytes(r, "\n", 1);
}

/* One event's lines, each ending in a newline: 0, or -1 with an exception. */
static int
text_event(Renderer *r, PyObject *ev, const char *errors)
{
    Keep k;
    k.n = 0;
    Line l;
    int done = render_into(r, ev, &l, &k);
    if (done == 1) {
        done = text_line(r, &l, errors);
        keep_release(&k);
        return done;
    }
    if (done < 0)
        return -1;
    PyObject *shown = python_lines_of(r, ev);
    if (shown == NULL)
        return -1;
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(shown); j++) {
        PyObject *line = PyList_GET_ITEM(shown, j);
        if (!PyUnicode_Check(line)) {
            PyErr_SetString(PyExc_TypeError, "the Python renderer's lines must be str");
            done = -1;
        } else if (text_str(r, line, errors) < 0 || text_bytes(r, "\n", 1) < 0) {
            done = -1;
        }
        if (done < 0)
            break;
    }
    Py_DECREF(shown);
    return done;
}

/* text(events, errors) -> bytes: StreamRenderer.text, compiled: the lines of
 * lines(events), each ending in a newline, in UTF-8, made without a str per
 * line, a join or an encoding pass. */
static PyObject *
renderer_text(Renderer *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "text(events: list, errors: str)");
        return NULL;
    }
    const char *errors = PyUnicode_AsUTF8(args[1]);
    if (errors == NULL)
        return NULL;
    PyObject *events = args[0];
    r->text_used = 0;
    PyObject *out = NULL;
    int failed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events) && !failed; i++) {
        PyObject *ev = Py_NewRef(PyList_GET_ITEM(events, i));
        failed = text_event(r, ev, errors) < 0;
        Py_DECREF(ev);
    }
    if (!failed)
        out = PyBytes_FromStringAndSize(r->text, r->text_used);
    if (r->text_cap > TEXT_KEEP_MAX) {
        PyMem_Free(r->text);
        r->text = NULL;
        r->text_cap = 0;
    }
    r->text_used = 0;
    return out;
}

/* ---------------------------------------------------------------- construction */

static int
get(PyObject *config, const char *key, PyObject **slot_out, PyTypeObject *want)
{
    PyObject *value = PyDict_GetItemString(config, key);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "Renderer() needs %s", key);
        return -1;
    }
    if (want != NULL && !PyObject_TypeCheck(value, want)) {
        PyErr_Format(PyExc_TypeError, "Renderer(): %s must be a %s", key, want->tp_name);
        return -1;
    }
    *slot_out = Py_NewRef(value);
    return 0;
}

static void
renderer_dealloc(Renderer *r)
{
    PyObject_GC_UnTrack(r);
    PyMem_Free(r->text);
    r->text = NULL;
    Py_TYPE(r)->tp_clear((PyObject *)r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

#define REFS(X)                                                                                          \
    X(context_type) X(status_type) X(comms) X(outcomes) X(quoted) X(tags) X(path_misses)            \
    X(comm_miss) X(quote) X(hms_of) X(python_lines) X(time_on) X(time_off) \
    X(comm_on) X(comm_off) X(roles) X(hms)

static int
renderer_traverse(Renderer *r, visitproc visit, void *arg)
{
#define VISIT(name) Py_VISIT(r->name);
    REFS(VISIT)
#undef VISIT
    for (int i = 0; i < C_CLASSES; i++) {
        Py_VISIT(r->classes[i]);
        Py_VISIT(r->kind_columns[i]);
    }
    for (int i = 0; i < R_ROLES; i++)
        Py_VISIT(r->role_names[i]);
    return 0;
}

static int
renderer_clear(Renderer *r)
{
#define CLEAR(name) Py_CLEAR(r->name);
    REFS(CLEAR)
#undef CLEAR
    for (int i = 0; i < C_CLASSES; i++) {
        Py_CLEAR(r->classes[i]);
        Py_CLEAR(r->kind_columns[i]);
    }
    for (int i = 0; i < R_ROLES; i++)
        Py_CLEAR(r->role_names[i]);
    return 0;
}

static const char *const ROLE_NAMES[R_ROLES] = {"fork", "exec", "reap"};

static int
renderer_init(Renderer *r, PyObject *args, PyObject *kwargs)
{
    PyObject *config;
    if (kwargs != NULL || !PyArg_ParseTuple(args, "O!", &PyDict_Type, &config))
        return -1;
    renderer_clear(r);
    PyObject *classes, *kinds;
    if (get(config, "classes", &classes, &PyDict_Type) < 0)
        return -1;
    if (get(config, "kind_columns", &kinds, &PyDict_Type) < 0) {
        Py_DECREF(classes);
        return -1;
    }
    int failed = 0;
    for (int c = 0; c < C_CLASSES && !failed; c++) {
        PyObject *type = PyDict_GetItemString(classes, CLASS_KEYS[c]);
        PyObject *kind = PyDict_GetItemString(kinds, CLASS_KEYS[c]);
        if (type == NULL || !PyType_Check(type) || kind == NULL || !PyUnicode_Check(kind)) {
            PyErr_Format(PyExc_ValueError, "Renderer(): %s and its kind column", CLASS_KEYS[c]);
            failed = 1;
            break;
        }
        r->classes[c] = (PyTypeObject *)Py_NewRef(type);
        r->kind_columns[c] = Py_NewRef(kind);
        for (int f = 0; f < F_FIELDS && !failed; f++) {
            r->offsets[c][f] = 0;
            if (FIELD_CLASS[f] == -1 || FIELD_CLASS[f] == c || (FIELD_CLASS[f] == -2 && (c == C_EXIT || c == C_REAP)))
                failed = slot_offset(type, FIELD_NAMES[f], &r->offsets[c][f]) < 0;
        }
    }
    Py_DECREF(classes);
    Py_DECREF(kinds);
    if (failed)
        return -1;
    if (get(config, "ProcessContext", (PyObject **)&r->context_type, &PyType_Type) < 0 ||
        get(config, "WaitStatus", (PyObject **)&r->status_type, &PyType_Type) < 0 ||
        slot_offset((PyObject *)r->context_type, "creds", &r->ctx_creds) < 0 ||
        slot_offset((PyObject *)r->context_type, "creds_before", &r->ctx_creds_before) < 0 ||
        slot_offset((PyObject *)r->context_type, "cgroup", &r->ctx_cgroup) < 0 ||
        slot_offset((PyObject *)r->status_type, "raw", &r->status_raw) < 0)
        return -1;
    if (get(config, "comms", &r->comms, &PyDict_Type) < 0 ||
        get(config, "outcomes", &r->outcomes, &PyDict_Type) < 0 ||
        get(config, "quoted", &r->quoted, &PyDict_Type) < 0 || get(config, "tags", &r->tags, &PyDict_Type) < 0 ||
        get(config, "path_misses", &r->path_misses, &PyDict_Type) < 0 ||
        get(config, "comm_miss", &r->comm_miss, NULL) < 0 ||
        get(config, "quote", &r->quote, NULL) < 0 ||
        get(config, "hms", &r->hms_of, NULL) < 0 || get(config, "python_lines", &r->python_lines, NULL) < 0 ||
        get(config, "time_on", &r->time_on, &PyUnicode_Type) < 0 ||
        get(config, "time_off", &r->time_off, &PyUnicode_Type) < 0 ||
        get(config, "comm_on", &r->comm_on, &PyUnicode_Type) < 0 ||
        get(config, "comm_off", &r->comm_off, &PyUnicode_Type) < 0 ||
        get(config, "roles", &r->roles, &PyDict_Type) < 0)
        return -1;
    PyObject *value;
    if (get(config, "offset_ns", &value, &PyLong_Type) < 0)
        return -1;
    r->offset_ns = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (get(config, "detail_max", &value, &PyLong_Type) < 0)
        return -1;
    r->detail_max = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (get(config, "pid_width", &value, &PyLong_Type) < 0)
        return -1;
    r->pid_width = (int)PyLong_AsLong(value);
    Py_DECREF(value);
    if (get(config, "color", &value, &PyBool_Type) < 0)
        return -1;
    r->color = value == Py_True;
    Py_DECREF(value);
    if (PyErr_Occurred())
        return -1;
    for (int i = 0; i < R_ROLES; i++) {
        r->role_names[i] = PyUnicode_InternFromString(ROLE_NAMES[i]);
        if (r->role_names[i] == NULL)
            return -1;
    }
    r->hms = NULL;
    r->second = -1;
    return 0;
}

/* format_duration(ns) -> str: line_duration alone, for the test that holds it to text.format_duration. */
static PyObject *
module_format_duration(PyObject *module, PyObject *arg)
{
    (void)module;
    long long ns = PyLong_AsLongLong(arg);
    if (ns == -1 && PyErr_Occurred())
        return NULL;
    Line l;
    line_init(&l);
    line_duration(&l, ns);
    return line_finish(&l);
}

static PyMethodDef module_methods[] = {
    {"format_duration", (PyCFunction)module_format_duration, METH_O, "text.format_duration, as the lines write it."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef renderer_methods[] = {
    {"lines", (PyCFunction)renderer_lines, METH_O, "StreamRenderer.lines, compiled."},
    {"text", (PyCFunction)(void (*)(void))renderer_text, METH_FASTCALL, "StreamRenderer.text, compiled."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RendererType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "proctrace.formats._faststream.Renderer",
    .tp_basicsize = sizeof(Renderer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The pretty stream's lines for the common events; the rest through the Python renderer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)renderer_init,
    .tp_dealloc = (destructor)renderer_dealloc,
    .tp_traverse = (traverseproc)renderer_traverse,
    .tp_clear = (inquiry)renderer_clear,
    .tp_methods = renderer_methods,
};

static struct PyModuleDef faststream_module = {
    PyModuleDef_HEAD_INIT, "proctrace.formats._faststream",
    "The pretty stream's lines, compiled (optional: stream.py renders them itself without it).", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__faststream(void)
{
    if (PyType_Ready(&RendererType) < 0)
        return NULL;
    if (MICRO_SECONDS == NULL && (MICRO_SECONDS = PyUnicode_FromString("\xc2\xb5s")) == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&faststream_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&RendererType);
    if (PyModule_AddObject(module, "Renderer", (PyObject *)&RendererType) < 0) {
        Py_DECREF(&RendererType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
