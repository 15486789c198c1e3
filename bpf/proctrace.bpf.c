/* proctrace's kernel side: one event per fork, exec, exit, signal and reap.
 *
 * bcc compiles this at run time. tracer/kernel/program.py puts a prelude in front of
 * it that defines, for the running kernel:
 *   KOFF_<struct>_<member>    byte offsets read from the kernel's own BTF, so
 *                             no struct is ever read through headers that may
 *                             not match the kernel;
 *   TP_<event>__<field>       tracepoint field offsets read from tracefs format
 *                             files, with TP_<event>__<field>_DATALOC set to 1
 *                             where the field is a __data_loc string;
 *   PT_RINGBUF, PT_BUFFER_PAGES, PT_SIGNAL_BUFFER_PAGES, PT_ARGV_MAX,
 *   PT_SIGNAL_RATE, PT_ALL_SIGNALS, PT_FOLLOW, PT_HAVE_* switches.
 * Then bpf/event.h, the wire format.
 */

#define SIGNAL_GROUP_EXIT 0x00000004 /* include/linux/sched/signal.h, stable since 2.6 */
#define PF_EXITING 0x00000004
#define SIGKILL_NR 9
#define SIGCHLD_NR 17
#define SI_USER_CODE 0
#define SI_QUEUE_CODE -1
#define SI_TKILL_CODE -6
#define SI_KERNEL_CODE 0x80
/* SIGCHLD's si_code for stops reported to a parent or tracer (include/uapi/asm-generic/siginfo.h) */
#define CLD_TRAPPED_CODE 4
#define CLD_CONTINUED_CODE 6
#define NSEC_PER_SEC 1000000000ULL
#define WNOWAIT_FLAG 0x01000000
#define WUNTRACED_FLAG 0x00000002
#define WCONTINUED_FLAG 0x00000008

#define TP_FIELD(args, type, ev, f) (*(type *)((char *)(args) + TP_##ev##__##f))
/* A string field of a tracepoint: a __data_loc on newer kernels, char[] on older. */
#define TP_STR(args, ev, f)                                                              \
    (TP_##ev##__##f##_DATALOC ? (char *)(args) + (TP_FIELD(args, u32, ev, f) & 0xffff) \
                              : (char *)(args) + TP_##ev##__##f)

#define KREAD(dst, base, off) \
    bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((char *)(base) + (off)))

/* Reading user memory (argv of a failed exec, wait statuses). bcc checks every
 * call it sees to bpf_probe_read_user and _str against /proc/kallsyms, to fall back
 * to bpf_probe_read on kernels before 5.5, and that reads all of it once more
 * (120k symbols here): ~150 ms of start-up. The kernel's BTF already says
 * whether it has the helpers (KHAS_*, tracer/kernel/layout.py), so the program
 * calls them under names of its own. */
#if KHAS_BPF_FUNC_probe_read_user && KHAS_BPF_FUNC_probe_read_user_str
static long (*pt_read_user)(void *dst, u32 size, const void *src) = (void *)BPF_FUNC_probe_read_user;
static long (*pt_read_user_str)(void *dst, u32 size, const void *src) = (void *)BPF_FUNC_probe_read_user_str;
#else
#define pt_read_user bpf_probe_read
#define pt_read_user_str bpf_probe_read_str
#endif

/* Reading the kernel's structs: KREAD and BREAD.
 *
 * KREAD is a bpf_probe_read_kernel call, ~40 ns each on this VM: the exit
 * program alone made about 40 of them. Since 5.11 bpf_get_current_task_btf
 * gives the current task as a pointer the verifier knows, from the kernel's
 * BTF, to be a task_struct; a load through it, and through any pointer
 * loaded from it, is checked against BTF at verification and runs as a plain
 * load (a fault reads 0, as a failed KREAD leaves 0). BREAD is that load, at
 * the same KOFF offset. It is written in asm because bcc rewrites a C
 * dereference of a pointer it believes external into a probe read.
 *
 * BREAD only on a chain that starts at CURRENT_TASK() with constant offsets:
 * on a pointer from KREAD, a tracepoint argument, or an offset computed at run
 * time (container_of, an array index) the verifier refuses the load, so those
 * stay KREAD. Without the helper, BREAD is KREAD (tests/live/test_loader_live.py
 * loads that program too). Measured on the storm: 12.5 -> 9.4 us of BPF time
 * per process (bpftool's run_time_ns with kernel.bpf_stats_enabled). */
#if KHAS_BPF_FUNC_get_current_task_btf
static void *(*pt_current_task_btf)(void) = (void *)BPF_FUNC_get_current_task_btf;
#define CURRENT_TASK() pt_current_task_btf()
#define BREAD(dst, base, off)                                                            \
    do {                                                                                 \
        u64 _v;                                                                          \
        if (sizeof(dst) == 8)                                                            \
            asm volatile("%0 = *(u64 *)(%1 + %2)" : "=r"(_v) : "r"(base), "i"(off));     \
        else if (sizeof(dst) == 4)                                                       \
            asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(_v) : "r"(base), "i"(off));     \
        else if (sizeof(dst) == 2)                                                       \
            asm volatile("%0 = *(u16 *)(%1 + %2)" : "=r"(_v) : "r"(base), "i"(off));     \
        else                                                                             \
            asm volatile("%0 = *(u8 *)(%1 + %2)" : "=r"(_v) : "r"(base), "i"(off));      \
        (dst) = (typeof(dst))_v;                                                         \
    } while (0)
#else
#define CURRENT_TASK() ((void *)bpf_get_current_task())
#define BREAD(dst, base, off) KREAD(dst, base, off)
#endif

/* Lifecycle events (fork, exec, exit, reap) in `events`, signals in
 * `signal_events`: a flood of signals cannot cost a lifecycle event. */
#ifdef PT_RINGBUF
BPF_RINGBUF_OUTPUT(events, PT_BUFFER_PAGES);
BPF_RINGBUF_OUTPUT(signal_events, PT_SIGNAL_BUFFER_PAGES);
#else
BPF_PERF_OUTPUT(events);
BPF_PERF_OUTPUT(signal_events);
#endif

/* Events that could not be submitted, per CPU and per enum pt_class: exact,
 * unlike the perf lost callback. */
BPF_PERCPU_ARRAY(lost_events, u64, PT_CLASSES);

/* Scratch space for building the largest event (exec) off the 512-byte stack. */
#ifndef PT_ENV_MAX
#define PT_ENV_MAX 0
#endif
#define PT_EXEC_MAX (sizeof(struct pt_exec) + PT_FILENAME_MAX + PT_ARGV_MAX + PT_CWD_MAX + PT_ENV_MAX)
struct exec_scratch {
    u8 buf[PT_EXEC_MAX];
};
BPF_PERCPU_ARRAY(exec_buf, struct exec_scratch, 1);

/* Per-task notes, from one hook to the next in the same task (a syscall's
 * entry to its exit, task_newtask to sched_process_fork), or about one pid
 * (a reap, until the task's free).
 *
 * Where the kernel's pid_max is at most 65536, tracer/kernel/program.py sets
 * PT_TASK_SLOTS to the power of two at or above it: then every id has a slot
 * of its own in an array indexed by the id, the slot holds the id it is
 * about (0: none), and only that task writes it. A slot is a load the JIT
 * inlines; a hash map's update and delete cost ~250 ns each, three of them
 * per storm process. A reader that finds another id in the slot (a hook that
 * ran before the session) has no note.
 *
 * With a larger pid_max (systemd sets 4194304), ids would share slots and two
 * tasks could write one at once, so the notes stay in hash maps keyed by id. */
#if PT_TASK_SLOTS
#define PT_TASK_SLOT(id) ((u32)(id) & (PT_TASK_SLOTS - 1))
#endif

/* Syscall arguments saved at entry, read at exit (failed execs, reaps). */
struct saved_args {
    u32 tid;      /* the task that saved them; 0: none */
    u32 pad;
    u64 ptr;      /* execve: filename; wait4: stat_addr; waitid: infop */
    u64 argv;     /* execve: argv */
    u64 options;  /* wait4/waitid options */
    u64 waitid;   /* saved by waitid (ptr is a siginfo), not wait4 (ptr is an int) */
    struct pt_cred cred; /* execve: the caller's credentials, for privilege gains */
    u64 has_cred;
};

/* clone flags, from task_newtask, for the sched_process_fork that follows it
 * in the same task. */
struct clone_note {
    u32 tid; /* the forking task; 0: none */
    u32 pad;
    u64 flags;
};

#if PT_TASK_SLOTS
BPF_ARRAY(saved_args_by_tid, struct saved_args, PT_TASK_SLOTS);
BPF_ARRAY(clone_flags_by_tid, struct clone_note, PT_TASK_SLOTS);
/* Processes a wait() collected, until their task is freed (see Kernel
 * reaps): the slot holds the pid. */
BPF_ARRAY(waited_for, u32, PT_TASK_SLOTS);
#else
BPF_HASH(saved_args_by_tid, u32, struct saved_args, 16384);
BPF_HASH(clone_flags_by_tid, u32, struct clone_note, 16384);
/* Processes a wait() collected, until their task is freed (see Kernel
 * reaps). An LRU: an entry whose free came before its waiter's return ages out. */
BPF_TABLE("lru_hash", u32, u32, waited_for, 16384);
#endif

/* The arguments `tid` saved at its syscall's entry, or 0, left in place. */
static __always_inline struct saved_args *saved_args_of(u32 tid)
{
#if PT_TASK_SLOTS
    u32 slot = PT_TASK_SLOT(tid);
    struct saved_args *a = saved_args_by_tid.lookup(&slot);
#else
    struct saved_args *a = saved_args_by_tid.lookup(&tid);
#endif
    return a && a->tid == tid ? a : 0;
}

static __always_inline void saved_args_put(u32 tid, struct saved_args *a)
{
    a->tid = tid;
#if PT_TASK_SLOTS
    {
        u32 slot = PT_TASK_SLOT(tid);
        struct saved_args *to = saved_args_by_tid.lookup(&slot);
        if (to)
            *to = *a;
    }
#else
    saved_args_by_tid.update(&tid, a);
#endif
}

/* Copies what `tid` saved into `out` and forgets it: 0 if it saved nothing. */
static __always_inline int saved_args_take(u32 tid, struct saved_args *out)
{
    struct saved_args *a = saved_args_of(tid);

    if (!a)
        return 0;
    *out = *a;
#if PT_TASK_SLOTS
    a->tid = 0;
#else
    saved_args_by_tid.delete(&tid);
#endif
    return 1;
}

static __always_inline void clone_flags_put(u32 tid, u64 flags)
{
    struct clone_note note = {.tid = tid, .flags = flags};
#if PT_TASK_SLOTS
    u32 slot = PT_TASK_SLOT(tid);
    struct clone_note *to = clone_flags_by_tid.lookup(&slot);
    if (to)
        *to = note;
#else
    clone_flags_by_tid.update(&tid, &note);
#endif
}

/* The flags `tid`'s task_newtask noted, forgotten; 0 if none. */
static __always_inline u64 clone_flags_take(u32 tid)
{
    u64 flags = 0;
#if PT_TASK_SLOTS
    u32 slot = PT_TASK_SLOT(tid);
    struct clone_note *note = clone_flags_by_tid.lookup(&slot);
    if (note && note->tid == tid) {
        flags = note->flags;
        note->tid = 0;
    }
#else
    struct clone_note *note = clone_flags_by_tid.lookup(&tid);
    if (note) {
        flags = note->flags;
        clone_flags_by_tid.delete(&tid);
    }
#endif
    return flags;
}

static __always_inline void waited_for_put(u32 pid)
{
#if PT_TASK_SLOTS
    u32 slot = PT_TASK_SLOT(pid);
    u32 *waited = waited_for.lookup(&slot);
    if (waited)
        *waited = pid;
#else
    waited_for.update(&pid, &pid);
#endif
}

/* Whether a wait() collected `pid`; the mark is forgotten. */
static __always_inline int waited_for_take(u32 pid)
{
#if PT_TASK_SLOTS
    u32 slot = PT_TASK_SLOT(pid);
    u32 *waited = waited_for.lookup(&slot);
    if (waited && *waited == pid) {
        *waited = 0;
        return 1;
    }
    return 0;
#else
    if (!waited_for.lookup(&pid))
        return 0;
    waited_for.delete(&pid);
    return 1;
#endif
}

#ifdef PT_FOLLOW
/* Tasks whose events we want (tracer/model/filters.py applies the same rules in user
 * space): pids named by the user or the traced command, processes that exec'd
 * into a matching name, and with PT_FOLLOW_CHILDREN what those fork.
 * Keys are task ids; a process's tgid is its leader's task id. */
BPF_TABLE("lru_hash", u32, u8, followed, PT_FOLLOW_MAX);
#endif
#ifdef PT_MATCH_COMMS
/* Command names that select a process when it execs into one of them. */
struct comm_key {
    char comm[PT_COMM_LEN];
};
BPF_HASH(match_comms, struct comm_key, u8, 64);
#endif

static __always_inline int is_followed(u32 id)
{
#ifdef PT_FOLLOW
    return followed.lookup(&id) != 0;
#else
    return 1;
#endif
}

#ifdef PT_CGROUP_FILTER
/* --cgroup, --container, --unit (tracer/model/cgroups.py has the rules): the
 * cgroups selected, each with all its descendants. User space fills it at
 * start, and adds a cgroup made later once it has decided on it by the rules
 * (cgroup_event marks such a cgroup undecided until then). */
BPF_HASH(selected_cgroups, u64, u8, 4096);
/* Whether a cgroup id is in the selection: 1 or 0, worked out once per cgroup
 * that existed at start (user space clears the cache after filling
 * selected_cgroups), or PT_CGROUP_UNDECIDED for one made during the session
 * until user space, told of it by its cgroup event, decides. */
BPF_TABLE("lru_hash", u64, u8, cgroup_verdicts, 16384);
#define PT_CGROUP_UNDECIDED 2
/* Processes that ran in a selected cgroup: events about them by others (a
 * reap by a parent outside, a signal from outside) are theirs too. */
BPF_TABLE("lru_hash", u32, u8, cgroup_members, PT_FOLLOW_MAX);
#define PT_CGROUP_DEPTH 32

static __always_inline int cgroup_selected_now(void)
{
    u64 id = bpf_get_current_cgroup_id();
    u8 *known = cgroup_verdicts.lookup(&id);
    u8 verdict = 0;

    if (known)
        return *known != 0; /* undecided: sent, for user space to decide */
#pragma clang loop unroll(disable)
    for (int level = 0; level < PT_CGROUP_DEPTH; level++) {
        u64 ancestor = bpf_get_current_ancestor_cgroup_id(level);
        if (!ancestor)
            break;
        if (selected_cgroups.lookup(&ancestor)) {
            verdict = 1;
            break;
        }
    }
    cgroup_verdicts.update(&id, &verdict);
    return verdict;
}
#endif

/* Whether process `tgid` ran in a selected cgroup (always, without a cgroup filter). */
static __always_inline int cgroup_member(u32 tgid)
{
#ifdef PT_CGROUP_FILTER
    return cgroup_members.lookup(&tgid) != 0;
#else
    return 1;
#endif
}

/* Whether the current task's process is in the cgroup selection: it runs in a
 * selected cgroup now (and becomes a member), or it did before. */
static __always_inline int current_in_cgroups(void)
{
#ifdef PT_CGROUP_FILTER
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u8 one = 1;
    if (cgroup_selected_now()) {
        cgroup_members.update(&tgid, &one);
        return 1;
    }
    return cgroup_member(tgid);
#else
    return 1;
#endif
}

static __always_inline void count_lost(int class)
{
    u64 *n = lost_events.lookup(&class);
    if (n)
        __sync_fetch_and_add(n, 1);
}

/* One submit per buffer: bcc cannot rewrite a map's methods inside a macro,
 * nor take a map as an argument.
 *
 * No wake-up per event: user space drains the buffers on a short timer.
 *
 * Since 6.15 the ring's lock (an rqspinlock) may refuse a reserve with the
 * buffer far from full. Seen here during a storm on 2 vCPUs about once per
 * 400,000 events: the refusal comes at once (0.2-0.35 us, so no wait for a
 * lock held elsewhere), and about half the time a second try at once is
 * refused too. A lifecycle event refused twice goes to the signals' ring
 * instead: user space drains both rings into one batch ordered by time and
 * decodes any kind from either, so the event takes its place in the stream
 * (in 3 storms of 30 s, ~1.06 million events, it saved the 2 events that
 * both tries lost, where each such storm had lost about one). Only an event
 * both rings refuse is lost and counted. The signals' ring thus gives up its
 * room to lifecycle events, never the other way round: a flood of signals
 * still cannot cost a fork, exec, exit or reap. */

/* A fork, exec, exit or reap. */
static __always_inline void submit(void *ctx, void *data, u64 size)
{
    int err;
#ifdef PT_RINGBUF
    err = events.ringbuf_output(data, size, BPF_RB_NO_WAKEUP);
    if (err < 0)
        err = events.ringbuf_output(data, size, BPF_RB_NO_WAKEUP);
    if (err < 0)
        err = signal_events.ringbuf_output(data, size, BPF_RB_NO_WAKEUP);
#else
    err = events.perf_submit(ctx, data, size);
#endif
    if (err < 0)
        count_lost(PT_CLASS_LIFECYCLE);
}

static __always_inline void submit_signal(void *ctx, struct pt_signal *ev)
{
    int err;
#ifdef PT_RINGBUF
    err = signal_events.ringbuf_output(ev, sizeof(*ev), BPF_RB_NO_WAKEUP);
    if (err < 0)
        err = signal_events.ringbuf_output(ev, sizeof(*ev), BPF_RB_NO_WAKEUP);
#else
    err = signal_events.perf_submit(ctx, ev, sizeof(*ev));
#endif
    if (err < 0)
        count_lost(PT_CLASS_SIGNAL);
}

static __always_inline void fill_header(struct pt_header *h, u32 kind, void *task)
{
    u64 id = bpf_get_current_pid_tgid();
    void *parent = 0;
    void *leader = 0;

    h->ts_ns = bpf_ktime_get_ns();
    h->kind = kind;
    h->pid = (u32)id;
    h->tgid = id >> 32;
    h->uid = (u32)bpf_get_current_uid_gid();
    h->cpu = bpf_get_smp_processor_id();
    h->ppid = 0;
    h->start_ns = 0;
    BREAD(parent, task, KOFF_task_struct_real_parent);
    if (parent)
        BREAD(h->ppid, parent, KOFF_task_struct_tgid);
    BREAD(leader, task, KOFF_task_struct_group_leader);
    if (leader)
        BREAD(h->start_ns, leader, KOFF_task_struct_start_time);
    bpf_get_current_comm(&h->comm, sizeof(h->comm));
    h->cgroup_id = bpf_get_current_cgroup_id();
}

TRACEPOINT_PROBE(task, task_newtask)
{
    clone_flags_put((u32)bpf_get_current_pid_tgid(), TP_FIELD(args, u64, task_newtask, clone_flags));
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    void *task = CURRENT_TASK();
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u32 child = TP_FIELD(args, u32, sched_process_fork, child_pid);
    struct pt_fork ev = {};

    ev.clone_flags = clone_flags_take(tid);
#if PT_TASK_SLOTS
    /* A mark left by an earlier process of this pid, whose free came before
     * its reaper's wait returned, must not hide this one's kernel reap. */
    waited_for_take(child);
#endif
#ifdef PT_FOLLOW
    if (!is_followed(id >> 32) && !is_followed(tid))
        return 0;
#ifdef PT_FOLLOW_CHILDREN
    u8 one = 1;
    followed.update(&child, &one);
#endif
#endif
    if (!current_in_cgroups())
        return 0;
#ifdef PT_CGROUP_FILTER
    {
        /* The child starts in its parent's cgroup: a member from its first event. */
        u8 member = 1;
        cgroup_members.update(&child, &member);
    }
#endif
    fill_header(&ev.h, PT_FORK, task);
    ev.child_pid = child;
    /* CLONE_THREAD: a task of the same process; otherwise a new process. */
    ev.child_tgid = (ev.clone_flags & 0x00010000) ? ev.h.tgid : child;
    /* CLONE_PARENT or CLONE_THREAD give the child the forker's own parent. */
    ev.child_ppid = (ev.clone_flags & (0x00008000 | 0x00010000)) ? ev.h.ppid : ev.h.tgid;
    submit(args, &ev, sizeof(ev));
    return 0;
}

/* The fixed part of a pt_exec after its header: the per-CPU scratch keeps
 * the last event's values, and every one must be set anew. */
static __always_inline void clear_exec_fixed(struct pt_exec *ev)
{
    __builtin_memset((char *)ev + sizeof(struct pt_header), 0, sizeof(*ev) - sizeof(struct pt_header));
}

/* Copy a user-space argument area [start, end) into the event's argv tail. */
static __always_inline void read_argv(struct pt_exec *ev, u8 *tail, u64 start, u64 end)
{
    u64 len = end > start ? end - start : 0;
    u32 off = ev->filename_len;

    if (len > PT_ARGV_MAX) {
        len = PT_ARGV_MAX;
        ev->flags |= PT_EXEC_ARGV_TRUNCATED;
    }
    if (off > PT_FILENAME_MAX)
        off = PT_FILENAME_MAX;
    if (len && pt_read_user(tail + off, len, (void *)start) == 0)
        ev->argv_len = len;
    else if (len)
        ev->flags |= PT_EXEC_ARGV_UNREADABLE;
}

/* The verifier must see the size of a variable-length event bounded by its buffer. */
static __always_inline void submit_exec(void *ctx, struct pt_exec *ev)
{
    u64 size = sizeof(*ev) + (u64)ev->filename_len + ev->argv_len + ev->cwd_len + ev->env_len;
    if (size > PT_EXEC_MAX)
        size = PT_EXEC_MAX;
    asm volatile("" : "+r"(size)); /* keep clang from dropping the bound */
    if (size > PT_EXEC_MAX)
        return;
    submit(ctx, ev, size);
}

static __always_inline u32 filename_len(int n)
{
    /* *_str helpers count the NUL; a full buffer means the name was cut. */
    return n > 0 ? n - 1 : 0;
}


/* ---- Where and as whom an exec runs -------------------------------------- */

#define PT_NAME_MAX 256 /* a path component and its NUL: NAME_MAX + 1 */
#define TMPFS_MAGIC_NR 0x01021994
#define HUGETLBFS_MAGIC_NR 0x958458f6
#define PT_PIDNS_LEVEL_MAX 32 /* MAX_PID_NS_LEVEL */
/* Where the tail's parts may start at most: the verifier needs absolute bounds. */
#define PT_ENV_END (PT_FILENAME_MAX + PT_ARGV_MAX + PT_ENV_MAX)
#define PT_CWD_END (PT_ENV_END + PT_CWD_MAX)

static __always_inline void read_cred(struct pt_cred *c, void *cred)
{
    BREAD(c->uid, cred, KOFF_cred_uid);
    BREAD(c->euid, cred, KOFF_cred_euid);
    BREAD(c->suid, cred, KOFF_cred_suid);
    BREAD(c->fsuid, cred, KOFF_cred_fsuid);
    BREAD(c->gid, cred, KOFF_cred_gid);
    BREAD(c->egid, cred, KOFF_cred_egid);
    BREAD(c->sgid, cred, KOFF_cred_sgid);
    BREAD(c->fsgid, cred, KOFF_cred_fsgid);
    BREAD(c->cap_effective, cred, KOFF_cred_cap_effective);
}

/* The task's objective credentials (what /proc/PID/status shows). */
static __always_inline void *task_cred(void *task)
{
    void *cred = 0;
    BREAD(cred, task, KOFF_task_struct_real_cred);
    return cred;
}

/* Writes one component of the working directory, `name`, at tail[off..]:
 * the offset after it, or 0 when it does not fit or cannot be read. */
static __always_inline u64 cwd_component(u8 *tail, u32 start, u64 off, void *name)
{
    u64 at;
    int n;

    if (off - start > PT_CWD_MAX - PT_NAME_MAX)
        return 0;
    at = off;
    asm volatile("" : "+r"(at)); /* bound the register the access uses, not a copy */
    if (at > PT_CWD_END - PT_NAME_MAX)
        return 0;
    n = bpf_probe_read_kernel_str(tail + at, PT_NAME_MAX, name);
    return n > 0 ? at + n : 0;
}

/* The working directory as the process sees it: its dentry chain up to the
 * process's root, crossing mounts, written deepest component first (each with
 * its NUL) at tail[start..]; user space puts them in order. Returns the bytes
 * written. Deeper than PT_CWD_DEPTH components or longer than PT_CWD_MAX bytes
 * is PT_EXEC_CWD_TRUNCATED: what was written is then the deepest part only. */
static __always_inline u32 read_cwd(struct pt_exec *ev, u8 *tail, u32 start, void *task)
{
    void *fs = 0, *dentry = 0, *vfsmnt = 0, *root = 0, *root_mnt = 0;
    void *mnt, *mnt_root = 0, *parent = 0, *name = 0, *pprev = 0;
    u64 off = start, next;
    int complete = 0, depth = 0;

    BREAD(fs, task, KOFF_task_struct_fs);
    if (!fs)
        return 0;
    BREAD(dentry, fs, KOFF_fs_struct_pwd + KOFF_path_dentry);
    BREAD(vfsmnt, fs, KOFF_fs_struct_pwd + KOFF_path_mnt);
    BREAD(root, fs, KOFF_fs_struct_root + KOFF_path_dentry);
    BREAD(root_mnt, fs, KOFF_fs_struct_root + KOFF_path_mnt);
    if (!dentry || !vfsmnt)
        return 0;
    /* d_unlinked(): no longer in the dcache's hash, and not its own parent. */
    BREAD(pprev, dentry, KOFF_dentry_d_hash_pprev);
    BREAD(parent, dentry, KOFF_dentry_d_parent);
    if (!pprev && parent != dentry)
        ev->flags |= PT_EXEC_CWD_DELETED;
    BREAD(mnt_root, vfsmnt, KOFF_vfsmount_mnt_root);
    /* Up to the top of the working directory's own mount, every dentry comes
     * from a pointer the verifier knows, so its reads are BREADs. Most working
     * directories never leave their mount. */
#pragma clang loop unroll(disable)
    for (; depth < PT_CWD_DEPTH; depth++) {
        if (dentry == root && vfsmnt == root_mnt) {
            complete = 1;
            break;
        }
        if (dentry == mnt_root)
            break; /* the top of its mount: the walk below goes on */
        BREAD(parent, dentry, KOFF_dentry_d_parent);
        if (!parent || parent == dentry) {
            complete = 1;
            break;
        }
        BREAD(name, dentry, KOFF_dentry_d_name_name);
        next = cwd_component(tail, start, off, name);
        if (!next)
            break;
        off = next;
        dentry = parent;
    }
    if (complete || dentry != mnt_root || depth >= PT_CWD_DEPTH)
        goto done;
    /* Past a mount's top, the walk goes through a struct mount found by
     * container_of, which the verifier does not know: KREADs from here on.
     *
     * The verifier would check this second loop once for every step the
     * first can leave at, each with its own bounds on `off` and `depth`
     * (more than its million instructions). Passed through the event's
     * memory, which it does not track, they come back as one unknown: the
     * second loop is checked once, and its own bounds checks hold. */
    *(volatile u32 *)&ev->cwd_len = (u32)(off - start) << 8 | (u32)depth;
    {
        u32 walked = *(volatile u32 *)&ev->cwd_len;
        off = start + (walked >> 8);
        depth = walked & 0xff;
    }
    mnt = (char *)vfsmnt - KOFF_mount_mnt;
    /* A bounded loop: bpf_loop would verify one step instead of each, but
     * bcc cannot pass it a callback. */
#pragma clang loop unroll(disable)
    for (int i = 0; i < PT_CWD_DEPTH && depth < PT_CWD_DEPTH; i++, depth++) {
        if (dentry == root && vfsmnt == root_mnt) {
            complete = 1;
            break;
        }
        KREAD(mnt_root, vfsmnt, KOFF_vfsmount_mnt_root);
        if (dentry == mnt_root) {
            /* The top of a mount: go on from where it is mounted. */
            void *up = 0;
            KREAD(up, mnt, KOFF_mount_mnt_parent);
            if (!up || up == mnt) {
                complete = 1; /* the root of the mount tree */
                break;
            }
            KREAD(dentry, mnt, KOFF_mount_mnt_mountpoint);
            mnt = up;
            vfsmnt = (char *)up + KOFF_mount_mnt;
            continue;
        }
        KREAD(parent, dentry, KOFF_dentry_d_parent);
        if (!parent || parent == dentry) {
            complete = 1;
            break;
        }
        KREAD(name, dentry, KOFF_dentry_d_name_name);
        next = cwd_component(tail, start, off, name);
        if (!next)
            break;
        off = next;
        dentry = parent;
    }
done:
    if (!complete)
        ev->flags |= PT_EXEC_CWD_TRUNCATED;
    return off - start;
}

/* The executable: its inode, and whether it is deleted or a memfd (fileless). */
static __always_inline void read_exe(struct pt_exec *ev, void *mm)
{
    void *file = 0, *inode = 0, *sb = 0, *dentry = 0, *pprev = 0, *parent = 0, *name = 0;
    unsigned long magic = 0;
    char prefix[6] = {};

    BREAD(file, mm, KOFF_mm_struct_exe_file);
    if (!file)
        return;
    BREAD(inode, file, KOFF_file_f_inode);
    BREAD(sb, inode, KOFF_inode_i_sb);
    BREAD(ev->exe_ino, inode, KOFF_inode_i_ino);
    BREAD(ev->exe_dev, sb, KOFF_super_block_s_dev);
    ev->flags |= PT_EXEC_EXE;
    BREAD(dentry, file, KOFF_file_f_path_dentry);
    if (!dentry)
        return;
    /* Still in the dcache's hash: a file with a name. */
    BREAD(pprev, dentry, KOFF_dentry_d_hash_pprev);
    if (pprev)
        return;
    /* IS_ROOT(): a dentry that is its own parent never had a name. */
    BREAD(parent, dentry, KOFF_dentry_d_parent);
    if (parent != dentry) {
        ev->flags |= PT_EXEC_EXE_DELETED; /* unlinked since it was opened */
        return;
    }
    /* A file that never had a name in any directory: memfd_create() makes
     * them on the internal tmpfs (or hugetlbfs) mount, named "memfd:NAME". */
    BREAD(magic, sb, KOFF_super_block_s_magic);
    BREAD(name, dentry, KOFF_dentry_d_name_name);
    bpf_probe_read_kernel(prefix, sizeof(prefix), name);
    if ((magic == TMPFS_MAGIC_NR || magic == HUGETLBFS_MAGIC_NR) && prefix[0] == 'm' && prefix[1] == 'e' &&
        prefix[2] == 'm' && prefix[3] == 'f' && prefix[4] == 'd' && prefix[5] == ':')
        ev->flags |= PT_EXEC_EXE_MEMFD | PT_EXEC_EXE_DELETED;
}

/* The namespace inode behind a `struct ns_common` member at `off` of `ns`. */
static __always_inline u32 ns_inum(void *ns, u32 off)
{
    u32 inum = 0;
    if (ns)
        KREAD(inum, ns, off);
    return inum;
}

/* The terminal, session, audit login and namespaces of `task`. */
static __always_inline void read_session(struct pt_exec *ev, void *task)
{
    void *signal = 0, *tty = 0, *driver = 0, *sid_pid = 0, *pid = 0, *nsproxy = 0, *ns = 0, *mnt_ns = 0;
    int index = 0, major = 0, minor_start = 0;
    u32 level = 0;

    BREAD(signal, task, KOFF_task_struct_signal);
    if (signal) {
        BREAD(tty, signal, KOFF_signal_struct_tty);
        if (tty) {
            BREAD(index, tty, KOFF_tty_struct_index);
            BREAD(driver, tty, KOFF_tty_struct_driver);
            if (driver) {
                BREAD(major, driver, KOFF_tty_driver_major);
                BREAD(minor_start, driver, KOFF_tty_driver_minor_start);
            }
            ev->tty_dev = ((u32)major << 20) | (u32)(minor_start + index);
        }
        BREAD(sid_pid, signal, KOFF_signal_struct_pids + KENUM_PIDTYPE_SID * sizeof(void *));
        if (sid_pid)
            BREAD(ev->sid, sid_pid, KOFF_pid_numbers + KOFF_upid_nr); /* numbers[0]: the initial namespace */
    }
#if KOFF_task_struct_loginuid >= 0 && KOFF_task_struct_sessionid >= 0
    BREAD(ev->login_uid, task, KOFF_task_struct_loginuid);
    BREAD(ev->login_session, task, KOFF_task_struct_sessionid);
    ev->flags |= PT_EXEC_LOGIN;
#endif
    /* The pid as the process's own namespace numbers it: numbers[level]. */
    BREAD(pid, task, KOFF_task_struct_thread_pid);
    if (pid) {
        BREAD(level, pid, KOFF_pid_level);
        if (level < PT_PIDNS_LEVEL_MAX) {
            u64 at = KOFF_pid_numbers + (u64)level * KSIZE_upid;
            KREAD(ev->ns_pid, pid, at + KOFF_upid_nr);
            KREAD(ns, pid, at + KOFF_upid_ns);
            ev->pidns = ns_inum(ns, KOFF_pid_namespace_ns_inum);
        }
    }
    BREAD(nsproxy, task, KOFF_task_struct_nsproxy);
    if (nsproxy) {
        BREAD(mnt_ns, nsproxy, KOFF_nsproxy_mnt_ns);
        if (mnt_ns)
            BREAD(ev->mntns, mnt_ns, KOFF_mnt_namespace_ns_inum);
    }
}

#ifdef PT_ENV
/* The new image's environment, between mm->env_start and env_end, at tail[start..]. */
static __always_inline u32 read_env(struct pt_exec *ev, u8 *tail, u64 start, void *mm)
{
    u64 env_start = 0, env_end = 0, len;

    ev->flags |= PT_EXEC_ENV;
    BREAD(env_start, mm, KOFF_mm_struct_env_start);
    BREAD(env_end, mm, KOFF_mm_struct_env_end);
    len = env_end > env_start ? env_end - env_start : 0;
    if (len > PT_ENV_MAX) {
        len = PT_ENV_MAX;
        ev->flags |= PT_EXEC_ENV_TRUNCATED;
    }
    asm volatile("" : "+r"(start)); /* bound the register the access uses, not a copy */
    if (start > PT_FILENAME_MAX + PT_ARGV_MAX)
        return 0;
    if (len && pt_read_user(tail + start, len, (void *)env_start) == 0)
        return len;
    if (len)
        ev->flags |= PT_EXEC_ENV_UNREADABLE;
    return 0;
}
#endif

/* Everything an exec event says of where and as whom it runs, after argv:
 * the environment, then the working directory. */
static __always_inline void read_context(struct pt_exec *ev, u8 *tail, void *task, void *mm, u32 exec_tid)
{
    u32 start = ev->filename_len + ev->argv_len;
    void *cred = task_cred(task);

    ev->flags |= PT_EXEC_CONTEXT;
    if (cred)
        read_cred(&ev->cred, cred);
#ifdef PT_HAVE_EXEC_SYSCALLS
    {
        /* Saved by the execve that began this exec, in the thread that called it. */
        struct saved_args *a = saved_args_of(exec_tid);
        if (a && a->has_cred) {
            ev->cred_before = a->cred;
            ev->flags |= PT_EXEC_CRED_BEFORE;
        }
    }
#endif
    if (mm)
        read_exe(ev, mm);
    read_session(ev, task);
    if (start > PT_FILENAME_MAX + PT_ARGV_MAX)
        start = PT_FILENAME_MAX + PT_ARGV_MAX;
#ifdef PT_ENV
    if (mm)
        ev->env_len = read_env(ev, tail, start, mm);
    start += ev->env_len;
#endif
    /* Last: the walk's many ways out each go on through what follows it, and
     * the less follows, the quicker the verifier (~0.1 s less at start-up). */
    ev->cwd_len = read_cwd(ev, tail, start, task);
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    void *task = CURRENT_TASK();
    u64 id = bpf_get_current_pid_tgid();
    int zero = 0;
    struct pt_exec *ev;
    u8 *tail;
    void *mm = 0;
    u64 arg_start = 0, arg_end = 0;
    int n;

#ifdef PT_MATCH_COMMS
    {
        /* The comm after exec is the new file's basename, cut to 15 bytes. */
        struct comm_key key = {};
        u32 tgid = id >> 32;
        u8 one = 1;
        bpf_get_current_comm(&key.comm, sizeof(key.comm));
        if (match_comms.lookup(&key))
            followed.update(&tgid, &one);
    }
#endif
    if (!is_followed(id >> 32) || !current_in_cgroups())
        return 0;
    ev = (struct pt_exec *)exec_buf.lookup(&zero);
    if (!ev)
        return 0;
    tail = (u8 *)(ev + 1);
    fill_header(&ev->h, PT_EXEC, task);
    clear_exec_fixed(ev);
    ev->old_pid = TP_FIELD(args, u32, sched_process_exec, old_pid);
    n = bpf_probe_read_kernel_str(tail, PT_FILENAME_MAX, TP_STR(args, sched_process_exec, filename));
    ev->filename_len = filename_len(n);
    if (n >= PT_FILENAME_MAX)
        ev->flags |= PT_EXEC_FILENAME_TRUNCATED;
    /* argv lives in the new image between mm->arg_start and arg_end; the kernel
     * has just written it there, so the pages are resident. */
    BREAD(mm, task, KOFF_task_struct_mm);
    if (mm) {
        BREAD(arg_start, mm, KOFF_mm_struct_arg_start);
        BREAD(arg_end, mm, KOFF_mm_struct_arg_end);
        read_argv(ev, tail, arg_start, arg_end);
    }
    read_context(ev, tail, task, mm, ev->old_pid);
    submit_exec(args, ev);
    return 0;
}

#ifdef PT_HAVE_EXEC_SYSCALLS
static __always_inline int save_exec_args(u64 filename, u64 argv)
{
    struct saved_args a = {.ptr = filename, .argv = argv};
    void *cred = task_cred(CURRENT_TASK());

    if (cred) {
        read_cred(&a.cred, cred);
        a.has_cred = 1;
    }
    saved_args_put((u32)bpf_get_current_pid_tgid(), &a);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return save_exec_args(TP_FIELD(args, u64, sys_enter_execve, filename),
                          TP_FIELD(args, u64, sys_enter_execve, argv));
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return save_exec_args(TP_FIELD(args, u64, sys_enter_execveat, filename),
                          TP_FIELD(args, u64, sys_enter_execveat, argv));
}

/* Up to this many arguments of a failed exec are read through argv's pointers. */
#define PT_FAILED_ARGC_MAX 16
#define PT_FAILED_ARG_MAX 256

static __always_inline int exec_failed(void *ctx, long ret)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct saved_args saved;
    int zero = 0;
    struct pt_exec *ev;
    u8 *tail;
    u32 off;
    int n;

    if (!saved_args_take(tid, &saved))
        return 0;
    /* A successful exec also returns here, in the new image, with 0. */
    if (ret >= 0 || !is_followed(id >> 32) || !current_in_cgroups())
        return 0;
    ev = (struct pt_exec *)exec_buf.lookup(&zero);
    if (!ev)
        return 0;
    tail = (u8 *)(ev + 1);
    fill_header(&ev->h, PT_EXEC, CURRENT_TASK());
    clear_exec_fixed(ev);
    ev->err = -ret;
    ev->old_pid = tid;
    n = pt_read_user_str(tail, PT_FILENAME_MAX, (void *)saved.ptr);
    ev->filename_len = filename_len(n);
    if (n >= PT_FILENAME_MAX)
        ev->flags |= PT_EXEC_FILENAME_TRUNCATED;
    /* The old image is still in place: read argv through its pointers. */
    off = ev->filename_len;
#pragma clang loop unroll(disable) /* a bounded loop (5.3+): small code, quick to compile */
    for (int i = 0; i < PT_FAILED_ARGC_MAX; i++) {
        u64 p = 0;
        if (pt_read_user(&p, sizeof(p), (void *)(saved.argv + i * sizeof(u64))) || !p)
            break;
        if (off > PT_FILENAME_MAX + PT_ARGV_MAX - PT_FAILED_ARG_MAX) {
            ev->flags |= PT_EXEC_ARGV_TRUNCATED;
            break;
        }
        n = pt_read_user_str(tail + off, PT_FAILED_ARG_MAX, (void *)p);
        if (n <= 0) {
            ev->flags |= PT_EXEC_ARGV_UNREADABLE;
            break;
        }
        if (n == PT_FAILED_ARG_MAX)
            ev->flags |= PT_EXEC_ARGV_TRUNCATED;
        off += n;
        if (i == PT_FAILED_ARGC_MAX - 1)
            ev->flags |= PT_EXEC_ARGV_TRUNCATED;
    }
    ev->argv_len = off - ev->filename_len;
    submit_exec(ctx, ev);
    return 0;
}

/* The exit of execve and of execveat: one program that tracer/kernel/probe.py attaches
 * to both. Every sys_exit_* tracepoint has the same layout (tracer/kernel/program.py
 * checks), and compiling and verifying this once instead of twice takes ~50 ms
 * off the start-up. */
int exec_syscall_exit(void *args)
{
    return exec_failed(args, TP_FIELD(args, long, sys_exit_execve, ret));
}
#endif /* PT_HAVE_EXEC_SYSCALLS */

/* ---- What ended a process ------------------------------------------------ */

/* The last signal that may kill each process, and who sent it (signal_generate):
 * read at its exit, to name its killer. Keyed by the target process. */
struct fatal_sender {
    u32 sender_tgid;
    u32 signo;
    char comm[PT_COMM_LEN];
};
BPF_TABLE("lru_hash", u32, struct fatal_sender, fatal_senders, 16384);

#ifdef PT_HAVE_OOM
/* Processes the OOM killer chose, until their exit. */
BPF_TABLE("lru_hash", u32, u8, oom_victims, 1024);

TRACEPOINT_PROBE(oom, mark_victim)
{
    u32 pid = TP_FIELD(args, int, mark_victim, pid);
    u8 one = 1;
    oom_victims.update(&pid, &one);
    return 0;
}
#endif

/* At a process's exit: who, if anyone, killed it. */
static __always_inline void read_death(struct pt_exit *ev, u32 tgid)
{
    struct fatal_sender *sender;
    u32 signo = ev->status & 0x7f;

#ifdef PT_HAVE_OOM
    if (oom_victims.lookup(&tgid)) {
        ev->death |= PT_DEATH_OOM;
        oom_victims.delete(&tgid);
    }
#endif
    sender = fatal_senders.lookup(&tgid);
    if (!sender)
        return;
    if (signo && sender->signo == signo && sender->sender_tgid) {
        ev->death |= PT_DEATH_SENT;
        ev->killed_by_pid = sender->sender_tgid;
        __builtin_memcpy(ev->killed_by_comm, sender->comm, sizeof(ev->killed_by_comm));
    }
    fatal_senders.delete(&tgid);
}

/* ---- What a process used ------------------------------------------------ */

/* mm_struct.rss_stat's counters (include/linux/mm_types_task.h: an enum with
 * no name, so not in BTF by name; unchanged since 2.6.34). */
#define MM_FILEPAGES_NR 0
#define MM_ANONPAGES_NR 1
#define MM_SHMEMPAGES_NR 3

/* A task's own counters, added to the totals. */
static __always_inline void add_task_usage(struct pt_exit *ev, void *task)
{
    u64 v;
#define PT_ADD(field, off) \
    v = 0;                 \
    BREAD(v, task, off);   \
    ev->field += v
    PT_ADD(utime_ns, KOFF_task_struct_utime);
    PT_ADD(stime_ns, KOFF_task_struct_stime);
    PT_ADD(runtime_ns, KOFF_task_struct_se_sum_exec_runtime);
    PT_ADD(min_flt, KOFF_task_struct_min_flt);
    PT_ADD(maj_flt, KOFF_task_struct_maj_flt);
    PT_ADD(nvcsw, KOFF_task_struct_nvcsw);
    PT_ADD(nivcsw, KOFF_task_struct_nivcsw);
#if KOFF_task_struct_ioac_read_bytes >= 0 && KOFF_task_struct_ioac_write_bytes >= 0
    PT_ADD(read_bytes, KOFF_task_struct_ioac_read_bytes);
    PT_ADD(write_bytes, KOFF_task_struct_ioac_write_bytes);
#endif
#undef PT_ADD
}

/* At the exit of a process's last thread: what all its threads used, as
 * wait_task_zombie() will sum it for wait4's rusage (thread_group_cputime and
 * the signal_struct totals), read once per process, never per event. */
static __always_inline void read_usage(struct pt_exit *ev, void *task, void *signal)
{
    void *leader = 0, *mm = 0;
    long maxrss = 0;

    ev->has_usage = PT_USAGE;
    if (signal) {
        BREAD(ev->utime_ns, signal, KOFF_signal_struct_utime);
        BREAD(ev->stime_ns, signal, KOFF_signal_struct_stime);
        BREAD(ev->runtime_ns, signal, KOFF_signal_struct_sum_sched_runtime);
        BREAD(ev->min_flt, signal, KOFF_signal_struct_min_flt);
        BREAD(ev->maj_flt, signal, KOFF_signal_struct_maj_flt);
        BREAD(ev->nvcsw, signal, KOFF_signal_struct_nvcsw);
        BREAD(ev->nivcsw, signal, KOFF_signal_struct_nivcsw);
        BREAD(maxrss, signal, KOFF_signal_struct_maxrss);
        ev->maxrss_kb = maxrss > 0 ? maxrss : 0;
#if KOFF_signal_struct_ioac_read_bytes >= 0 && KOFF_signal_struct_ioac_write_bytes >= 0
        BREAD(ev->read_bytes, signal, KOFF_signal_struct_ioac_read_bytes);
        BREAD(ev->write_bytes, signal, KOFF_signal_struct_ioac_write_bytes);
        ev->has_usage |= PT_USAGE_IO;
#endif
    }
    add_task_usage(ev, task);
    /* A leader that exited before the last thread waits as a zombie: its
     * counters are still its own, not yet in signal_struct. */
    BREAD(leader, task, KOFF_task_struct_group_leader);
    if (leader && leader != task)
        add_task_usage(ev, leader);
    /* The image's peak: exit_mm() folds it into signal->maxrss only after
     * this tracepoint, so it is read here. */
    BREAD(mm, task, KOFF_task_struct_mm);
    if (mm) {
        long pages = 0, count = 0;
        BREAD(ev->hiwater_rss, mm, KOFF_mm_struct_hiwater_rss);
        BREAD(count, mm, KOFF_mm_struct_rss_stat + MM_FILEPAGES_NR * KSIZE_percpu_counter + KOFF_percpu_counter_count);
        pages += count;
        BREAD(count, mm, KOFF_mm_struct_rss_stat + MM_ANONPAGES_NR * KSIZE_percpu_counter + KOFF_percpu_counter_count);
        pages += count;
        BREAD(count, mm, KOFF_mm_struct_rss_stat + MM_SHMEMPAGES_NR * KSIZE_percpu_counter + KOFF_percpu_counter_count);
        pages += count;
        ev->rss = pages > 0 ? pages : 0;
    }
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    void *task = CURRENT_TASK();
    u64 id = bpf_get_current_pid_tgid();
    void *signal = 0;
    void *leader = 0;
    u32 sig_flags = 0;
    int group_exit_code = 0;
    int leader_code = 0;
    struct pt_exit ev = {};

    if ((!is_followed(id >> 32) && !is_followed((u32)id)) || !current_in_cgroups())
        return 0;
    fill_header(&ev.h, PT_EXIT, task);
    BREAD(ev.task_start_ns, task, KOFF_task_struct_start_time);
    BREAD(ev.task_exit_code, task, KOFF_task_struct_exit_code);
    BREAD(signal, task, KOFF_task_struct_signal);
#ifdef TP_sched_process_exit__group_dead
    ev.group_dead = TP_FIELD(args, u8, sched_process_exit, group_dead);
#else
    {
        /* Older kernels: do_exit decremented signal->live before this point. */
        int live = 1;
        if (signal)
            BREAD(live, signal, KOFF_signal_struct_live);
        ev.group_dead = live == 0;
    }
#endif
    ev.status = ev.task_exit_code;
    if (ev.group_dead) {
        /* What the parent's wait() will see (wait_task_zombie): the group's
         * code after a group exit, else the leader's own exit code. */
        if (signal) {
            BREAD(sig_flags, signal, KOFF_signal_struct_flags);
            BREAD(group_exit_code, signal, KOFF_signal_struct_group_exit_code);
        }
        BREAD(leader, task, KOFF_task_struct_group_leader);
        if (leader)
            BREAD(leader_code, leader, KOFF_task_struct_exit_code);
        ev.status = (sig_flags & SIGNAL_GROUP_EXIT) ? group_exit_code : leader_code;
        read_usage(&ev, task, signal);
        read_death(&ev, ev.h.tgid);
    }
    submit(args, &ev, sizeof(ev));
#ifdef PT_FOLLOW
    /* A thread is gone for good; a process stays followed until it is reaped. */
    if (!ev.group_dead && ev.h.pid != ev.h.tgid) {
        u32 tid = ev.h.pid;
        followed.delete(&tid);
    }
#endif
    return 0;
}

/* ---- Signals -------------------------------------------------------------
 *
 * Two floods would drown the lifecycle in signals, and are counted here
 * instead of sent one by one (user space reports the counts every second):
 *   - ptrace stops: every syscall entry and exit of a process under strace
 *     stops it and sends its tracer a SIGCHLD (CLD_TRAPPED);
 *   - any sender, target and signal beyond PT_SIGNAL_RATE a second (a kill
 *     loop, a profiler's timer), except a signal that may kill its target.
 * PT_ALL_SIGNALS sends every one. */

/* The counting period of folded_signals: user space moves it on, then reads
 * and deletes the entries of the periods before, which no program writes any
 * more (a program that read the old value finishes in microseconds). */
BPF_ARRAY(fold_generation, u32, 1);
BPF_HASH(folded_signals, struct pt_fold_key, struct pt_fold, 4096);

#if PT_SIGNAL_RATE
struct rate_key {
    u32 sender_tgid; /* 0 at delivery, where the sender is not known */
    u32 target_pid;
    u32 signo;
    u32 stage;
};
struct rate_window {
    u64 start_ns; /* this second's first signal */
    u64 sent;     /* sent in it so far */
};
BPF_TABLE("lru_hash", struct rate_key, struct rate_window, signal_rates, 16384);
#endif

/* Whether one more signal of this sender, target and number may be sent now:
 * at most PT_SIGNAL_RATE in a window of one second from the first. The
 * update is not atomic: two CPUs may let a signal or two more through, never
 * fewer. */
static __always_inline int within_rate(u32 sender, u32 target, int sig, u32 stage, u64 now)
{
#if PT_SIGNAL_RATE
    struct rate_key key = {.sender_tgid = sender, .target_pid = target, .signo = sig, .stage = stage};
    struct rate_window *w = signal_rates.lookup(&key);
    if (!w) {
        struct rate_window fresh = {.start_ns = now, .sent = 1};
        signal_rates.update(&key, &fresh);
        return 1;
    }
    if (now - w->start_ns >= NSEC_PER_SEC) {
        w->start_ns = now;
        w->sent = 1;
        return 1;
    }
    if (w->sent < PT_SIGNAL_RATE) {
        w->sent++;
        return 1;
    }
    return 0;
#else
    return 1;
#endif
}

/* Count one signal in folded_signals instead of sending it. Returns 0 when
 * the map is full and it could not be counted: the caller then sends it. */
static __always_inline int fold(void *task, u32 sender, u32 target, int sig, u8 stage, u8 reason, u64 now,
                                const void *target_comm)
{
    int zero = 0;
    u32 *generation = fold_generation.lookup(&zero);
    struct pt_fold_key key = {};
    struct pt_fold *f;
    struct pt_fold fresh = {};

    key.sender_tgid = sender;
    key.target_pid = target;
    key.generation = generation ? *generation : 0;
    key.signo = sig;
    key.stage = stage;
    key.reason = reason;
    f = folded_signals.lookup(&key);
    if (!f) {
        fill_header(&fresh.h, PT_SIGNAL, task);
        fresh.h.ts_ns = now;
        fresh.count = 1;
        fresh.last_ns = now;
        bpf_probe_read_kernel(&fresh.target_comm, sizeof(fresh.target_comm), target_comm);
        /* Another CPU may have made the entry meanwhile: then count in it. */
        if (folded_signals.insert(&key, &fresh) == 0)
            return 1;
        f = folded_signals.lookup(&key);
        if (!f)
            return 0;
    }
    __sync_fetch_and_add(&f->count, 1);
    f->last_ns = now;
    return 1;
}

/* Signals whose default action ends the process (signal(7)): all but those
 * ignored, or that stop or continue it, by default. */
static __always_inline int kills_by_default(int sig)
{
    switch (sig) {
    case 17: /* SIGCHLD */
    case 18: /* SIGCONT */
    case 19: /* SIGSTOP */
    case 20: /* SIGTSTP */
    case 21: /* SIGTTIN */
    case 22: /* SIGTTOU */
    case 23: /* SIGURG */
    case 28: /* SIGWINCH */
        return 0;
    }
    return 1;
}

/* Whether `sig` sent to `target` may end it: SIGKILL, or a signal it leaves
 * to a default action that kills. Such a signal is never rate limited. */
/* A signal that may kill `target`, generated: who sent it (0 for the kernel:
 * a fault, a timer, the OOM killer), for its exit to name. */
static __always_inline void note_fatal_sender(void *target, int sig, int code, u32 sender)
{
    struct fatal_sender fs = {.signo = sig};
    u32 target_tgid = 0;

    KREAD(target_tgid, target, KOFF_task_struct_tgid);
    if (code == SI_USER_CODE || code == SI_QUEUE_CODE || code == SI_TKILL_CODE) {
        fs.sender_tgid = sender;
        bpf_get_current_comm(&fs.comm, sizeof(fs.comm));
    }
    fatal_senders.update(&target_tgid, &fs);
}

static __always_inline int may_kill(int sig, void *target)
{
    void *sighand = 0;
    u64 handler = 0;

    if (sig == SIGKILL_NR)
        return 1;
    if (!kills_by_default(sig))
        return 0;
    KREAD(sighand, target, KOFF_task_struct_sighand);
    if (!sighand || sig < 1 || sig > 64)
        return 1;
    bpf_probe_read_kernel(&handler, sizeof(handler),
                          (char *)sighand + KOFF_sighand_struct_action + (sig - 1) * KSIZE_k_sigaction +
                              KOFF_k_sigaction_sa_sa_handler);
    return handler == 0; /* SIG_DFL */
}

/* Whether `target` is the tracer of the current task, which a ptrace stop notifies. */
static __always_inline int is_my_tracer(void *task, u32 target)
{
    u32 ptrace = 0;
    u32 tracer = 0;
    void *parent = 0;

    BREAD(ptrace, task, KOFF_task_struct_ptrace);
    if (!ptrace)
        return 0;
    BREAD(parent, task, KOFF_task_struct_parent); /* the tracer while traced; real_parent is the parent */
    if (parent)
        BREAD(tracer, parent, KOFF_task_struct_pid);
    return tracer == target;
}

/* siginfo's si_code as the signal_generate tracepoint reports it: two
 * pointer values stand for "sent by a task" and "sent by the kernel". */
static __always_inline int si_code(void *info)
{
    int code = 0;

    if (info == (void *)0) /* SEND_SIG_NOINFO */
        return SI_USER_CODE;
    if (info == (void *)1) /* SEND_SIG_PRIV */
        return SI_KERNEL_CODE;
    KREAD(code, info, KOFF_kernel_siginfo_si_code);
    return code;
}

/* signal_generate as a raw tracepoint: its arguments include the target task,
 * whose disposition says whether the signal may kill it, which the tracefs
 * format does not carry. TP_PROTO(int sig, struct kernel_siginfo *info,
 * struct task_struct *task, int group, int result), stable since 3.x. */
RAW_TRACEPOINT_PROBE(signal_generate)
{
    void *task = CURRENT_TASK();
    u64 id = bpf_get_current_pid_tgid();
    int sig = (int)ctx->args[0];
    void *target = (void *)ctx->args[2];
    u32 target_pid = 0;
    u32 task_flags = 0;
    int code;
    u64 now;
    struct pt_signal ev = {};

    /* The SIGCHLD an exiting child sends its parent is implied by its exit event. */
    if (sig == SIGCHLD_NR) {
        BREAD(task_flags, task, KOFF_task_struct_flags);
        if (task_flags & PF_EXITING)
            return 0;
    }
    KREAD(target_pid, target, KOFF_task_struct_pid);
    if (!is_followed(id >> 32) && !is_followed(target_pid))
        return 0;
#ifdef PT_CGROUP_FILTER
    {
        u32 target_tgid = 0;
        KREAD(target_tgid, target, KOFF_task_struct_tgid);
        if (!current_in_cgroups() && !cgroup_member(target_tgid))
            return 0;
    }
#endif
    code = si_code((void *)ctx->args[1]);
    if ((int)ctx->args[4] == 0 /* TRACE_SIGNAL_DELIVERED */ && may_kill(sig, target))
        note_fatal_sender(target, sig, code, id >> 32);
    now = bpf_ktime_get_ns();
#ifndef PT_ALL_SIGNALS
    if (sig == SIGCHLD_NR && code >= CLD_TRAPPED_CODE && code <= CLD_CONTINUED_CODE &&
        is_my_tracer(task, target_pid) &&
        fold(task, id >> 32, target_pid, sig, PT_SIGNAL_GENERATE, PT_FOLD_PTRACE, now,
             (char *)target + KOFF_task_struct_comm))
        return 0;
    if (!within_rate(id >> 32, target_pid, sig, PT_SIGNAL_GENERATE, now) && !may_kill(sig, target) &&
        fold(task, id >> 32, target_pid, sig, PT_SIGNAL_GENERATE, PT_FOLD_RATE, now,
             (char *)target + KOFF_task_struct_comm))
        return 0;
#endif
    fill_header(&ev.h, PT_SIGNAL, task);
    ev.h.ts_ns = now;
    ev.stage = PT_SIGNAL_GENERATE;
    ev.signo = sig;
    ev.code = code;
    ev.target_pid = target_pid;
    ev.group = (int)ctx->args[3] != 0; /* enum pid_type: PIDTYPE_PID (0) is one thread */
    ev.result = (int)ctx->args[4];
    bpf_probe_read_kernel(&ev.target_comm, sizeof(ev.target_comm), (char *)target + KOFF_task_struct_comm);
    submit_signal(ctx, &ev);
    return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver)
{
    void *task = CURRENT_TASK();
    u64 id = bpf_get_current_pid_tgid();
    void *signal = 0;
    u32 sig_flags = 0;
    int group_exit_code = 0;
    u64 now;
    struct pt_signal ev = {};

    if (!is_followed(id >> 32) || !current_in_cgroups())
        return 0;
    now = bpf_ktime_get_ns();
    ev.stage = PT_SIGNAL_DELIVER;
    ev.signo = TP_FIELD(args, int, signal_deliver, sig);
    ev.code = TP_FIELD(args, int, signal_deliver, code);
    ev.handler = TP_FIELD(args, u64, signal_deliver, sa_handler);
    ev.target_pid = (u32)id;
    /* A fatal signal turns into a group exit and the kernel then delivers
     * SIGKILL to every thread; keep the signal that really caused it. */
    BREAD(signal, task, KOFF_task_struct_signal);
    if (signal) {
        BREAD(sig_flags, signal, KOFF_signal_struct_flags);
        if (sig_flags & SIGNAL_GROUP_EXIT) {
            BREAD(group_exit_code, signal, KOFF_signal_struct_group_exit_code);
            ev.group_exit_signo = group_exit_code & 0x7f;
        }
    }
#ifndef PT_ALL_SIGNALS
    /* Here the disposition is known: a delivery to a default action that kills is never held back. */
    int fatal = ev.signo == SIGKILL_NR || ev.group_exit_signo || (ev.handler == 0 && kills_by_default(ev.signo));
    if (ev.signo == SIGCHLD_NR && ev.code == CLD_TRAPPED_CODE &&
        fold(task, 0, ev.target_pid, ev.signo, PT_SIGNAL_DELIVER, PT_FOLD_PTRACE, now,
             (char *)task + KOFF_task_struct_comm))
        return 0;
    if (!fatal && !within_rate(0, ev.target_pid, ev.signo, PT_SIGNAL_DELIVER, now) &&
        fold(task, 0, ev.target_pid, ev.signo, PT_SIGNAL_DELIVER, PT_FOLD_RATE, now,
             (char *)task + KOFF_task_struct_comm))
        return 0;
#endif
    fill_header(&ev.h, PT_SIGNAL, task);
    ev.h.ts_ns = now;
    __builtin_memcpy(&ev.target_comm, &ev.h.comm, sizeof(ev.target_comm));
    submit_signal(args, &ev);
    return 0;
}

#ifdef PT_HAVE_WAIT_SYSCALLS
static __always_inline int save_wait_args(u64 ptr, u64 options, u64 waitid)
{
    struct saved_args a = {.ptr = ptr, .options = options, .waitid = waitid};
    saved_args_put((u32)bpf_get_current_pid_tgid(), &a);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_wait4)
{
    return save_wait_args(TP_FIELD(args, u64, sys_enter_wait4, stat_addr),
                          TP_FIELD(args, u64, sys_enter_wait4, options), 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_waitid)
{
    return save_wait_args(TP_FIELD(args, u64, sys_enter_waitid, infop),
                          TP_FIELD(args, u64, sys_enter_waitid, options), 1);
}

/* wait4 returned `ret`: the reaped pid, with the status it wrote, or 0 when this
 * was no reap (an error, WNOHANG with nothing to reap, a stop or continue report). */
static __always_inline u32 wait4_reaped(struct saved_args *a, long ret, u32 *status)
{
    int st = 0;

    if (ret <= 0)
        return 0;
    if (a->ptr) {
        if (pt_read_user(&st, sizeof(st), (void *)a->ptr))
            return 0;
        /* A stopped or continued child is reported, not reaped. */
        if ((st & 0xff) == 0x7f || st == 0xffff)
            return 0;
    } else if (a->options & (WUNTRACED_FLAG | WCONTINUED_FLAG)) {
        return 0; /* cannot tell a stop report from a reap without the status */
    }
    *status = st;
    return (u32)ret;
}

/* The same for waitid, whose siginfo says what happened: rebuilt as a wait status. */
static __always_inline u32 waitid_reaped(struct saved_args *a, long ret, u32 *status)
{
    /* siginfo for SIGCHLD: si_code at 8, si_pid at 16, si_status at 24. */
    int si[7] = {};

    if (ret != 0 || !a->ptr || (a->options & WNOWAIT_FLAG))
        return 0;
    if (pt_read_user(&si, sizeof(si), (void *)a->ptr) || si[4] == 0)
        return 0;
    switch (si[2]) {
    case 1: /* CLD_EXITED */
        *status = (si[6] & 0xff) << 8;
        break;
    case 2: /* CLD_KILLED */
        *status = si[6] & 0x7f;
        break;
    case 3: /* CLD_DUMPED */
        *status = (si[6] & 0x7f) | 0x80;
        break;
    default: /* stopped, continued, trapped: not a reap */
        return 0;
    }
    return (u32)si[4];
}

#if defined(PT_NR_WAIT4) && KHAS_BPF_FUNC_task_pt_regs && KHAS_BPF_FUNC_get_current_task_btf && \
    KOFF_pt_regs_si >= 0 && KOFF_pt_regs_dx >= 0 && KOFF_pt_regs_r10 >= 0
static void *(*pt_task_pt_regs)(void *task) = (void *)BPF_FUNC_task_pt_regs;

/* A wait that began before the session (a shell waiting for its foreground
 * job) saved nothing at its entry: its arguments are read at its exit from
 * the registers the task entered the syscall with, which the kernel keeps
 * until it returns (x86-64: wait4's stat_addr in si and options in dx,
 * waitid's infop in dx and options in r10). Without them the reap would go
 * unseen, and the child's free would be taken for a kernel reap. */
static __always_inline int wait_args_from_regs(void *args, struct saved_args *a)
{
    int nr = TP_FIELD(args, int, sys_exit_wait4, __syscall_nr);
    void *regs = pt_task_pt_regs(CURRENT_TASK());
    u64 si = 0, dx = 0, r10 = 0;

    if (!regs)
        return 0;
    BREAD(si, regs, KOFF_pt_regs_si);
    BREAD(dx, regs, KOFF_pt_regs_dx);
    BREAD(r10, regs, KOFF_pt_regs_r10);
    if (nr == PT_NR_WAIT4) {
        a->ptr = si;
        a->options = dx;
        a->waitid = 0;
        return 1;
    }
    if (nr == PT_NR_WAITID) {
        a->ptr = dx;
        a->options = r10;
        a->waitid = 1;
        return 1;
    }
    return 0;
}
#else
static __always_inline int wait_args_from_regs(void *args, struct saved_args *a)
{
    return 0; /* registers unknown here: a wait begun before the session goes unseen */
}
#endif

/* The exit of wait4 and of waitid: one program, attached to both by
 * tracer/kernel/probe.py (as exec_syscall_exit is), that tells them apart by what
 * the entry saved. */
int wait_syscall_exit(void *args)
{
    long ret = TP_FIELD(args, long, sys_exit_wait4, ret);
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct saved_args copy = {};
    struct pt_reap ev = {};
    u32 reaped, status = 0;

    if (!saved_args_take(tid, &copy) && !wait_args_from_regs(args, &copy)) {
        return 0;
    }
    reaped = copy.waitid ? waitid_reaped(&copy, ret, &status) : wait4_reaped(&copy, ret, &status);
    if (!reaped || (!is_followed(id >> 32) && !is_followed(reaped)))
        return 0;
    if (!current_in_cgroups() && !cgroup_member(reaped))
        return 0;
    /* Waited for: when its task is freed, it is no kernel reap. */
    waited_for_put(reaped);
    fill_header(&ev.h, PT_REAP, CURRENT_TASK());
    ev.reaped_pid = reaped;
    ev.status = status;
    submit(args, &ev, sizeof(ev));
#ifdef PT_FOLLOW
    followed.delete(&reaped);
#endif
#ifdef PT_CGROUP_FILTER
    cgroup_members.delete(&reaped);
#endif
    return 0;
}
#endif /* PT_HAVE_WAIT_SYSCALLS */

/* ---- Credential changes after exec ----------------------------------------
 *
 * set*id, setgroups and capset: the entry saves the caller's credentials, the
 * exit sends a cred event when the call succeeded and changed something. One
 * program each for every entry and every exit (tracer/kernel/probe.py attaches
 * them); user space names the syscall from its number. */
#ifdef PT_HAVE_CRED_SYSCALLS
struct cred_snapshot {
    struct pt_cred cred;
    u64 group_info;  /* the pointer: setgroups installs a new one */
    u32 ngroups;
    u32 groups[PT_GROUPS_MAX];
};
BPF_HASH(cred_before_by_tid, u32, struct cred_snapshot, 4096);
BPF_PERCPU_ARRAY(cred_buf, struct pt_cred_change, 1);

static __always_inline void snapshot_cred(struct cred_snapshot *snap, u32 *ngroups, u32 *groups)
{
    void *cred = task_cred(CURRENT_TASK());
    void *gi = 0;
    u32 n = 0;

    if (!cred)
        return;
    read_cred(&snap->cred, cred);
    BREAD(gi, cred, KOFF_cred_group_info);
    snap->group_info = (u64)gi;
    if (gi) {
        BREAD(n, gi, KOFF_group_info_ngroups);
        bpf_probe_read_kernel(groups, PT_GROUPS_MAX * sizeof(u32), (char *)gi + KOFF_group_info_gid);
    }
    *ngroups = n;
}

int cred_syscall_enter(void *args)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct cred_snapshot snap = {};

    if (!is_followed(id >> 32) && !is_followed(tid))
        return 0;
    snapshot_cred(&snap, &snap.ngroups, snap.groups);
    cred_before_by_tid.update(&tid, &snap);
    return 0;
}

/* Field by field: clang makes a memcmp a call, which BPF cannot make. */
static __always_inline int same_cred(const struct pt_cred *a, const struct pt_cred *b)
{
    return a->uid == b->uid && a->euid == b->euid && a->suid == b->suid && a->fsuid == b->fsuid &&
           a->gid == b->gid && a->egid == b->egid && a->sgid == b->sgid && a->fsgid == b->fsgid &&
           a->cap_effective == b->cap_effective;
}

/* Send the cred event of a call that returned `ret`, if it changed anything. */
static __always_inline void cred_changed(void *args, const struct cred_snapshot *before, long ret)
{
    int zero = 0;
    struct cred_snapshot after = {};
    struct pt_cred_change *ev;

    /* setfsuid and setfsgid return the old id, never an error: their change shows in the values. */
    if (ret < 0 || !current_in_cgroups())
        return;
    snapshot_cred(&after, &after.ngroups, after.groups);
    if (after.group_info == before->group_info && same_cred(&after.cred, &before->cred))
        return;
    ev = cred_buf.lookup(&zero);
    if (!ev)
        return;
    fill_header(&ev->h, PT_CRED, CURRENT_TASK());
    ev->syscall_nr = TP_FIELD(args, int, sys_exit_setuid, __syscall_nr);
    ev->ret = ret;
    ev->before = before->cred;
    ev->after = after.cred;
    ev->ngroups_before = before->ngroups;
    ev->ngroups_after = after.ngroups;
    __builtin_memcpy(ev->groups_before, before->groups, sizeof(ev->groups_before));
    __builtin_memcpy(ev->groups_after, after.groups, sizeof(ev->groups_after));
    submit(args, ev, sizeof(*ev));
}

int cred_syscall_exit(void *args)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct cred_snapshot *saved = cred_before_by_tid.lookup(&tid);
    struct cred_snapshot before;

    if (!saved)
        return 0;
    before = *saved;
    cred_before_by_tid.delete(&tid);
    cred_changed(args, &before, TP_FIELD(args, long, sys_exit_setuid, ret));
    return 0;
}
#endif /* PT_HAVE_CRED_SYSCALLS */

/* ---- Cgroups of the unified hierarchy -------------------------------------
 *
 * Every cgroup made, removed or renamed in the v2 hierarchy, so that user
 * space knows the path of every cgroup id an event carries, even of one that
 * lived for a moment (a container's). */
#define PT_DFL_HIERARCHY 0 /* cgrp_dfl_root's hierarchy id */
struct cgroup_scratch {
    u8 buf[sizeof(struct pt_cgroup) + PT_CGROUP_PATH_MAX];
};
BPF_PERCPU_ARRAY(cgroup_buf, struct cgroup_scratch, 1);

static __always_inline int cgroup_event(void *args, u32 action)
{
    int zero = 0;
    struct pt_cgroup *ev;
    char *path;
    int n;

    if (TP_FIELD(args, int, cgroup_mkdir, root) != PT_DFL_HIERARCHY)
        return 0;
    ev = (struct pt_cgroup *)cgroup_buf.lookup(&zero);
    if (!ev)
        return 0;
    path = (char *)(ev + 1);
    fill_header(&ev->h, PT_CGROUP, CURRENT_TASK());
    ev->id = TP_FIELD(args, u64, cgroup_mkdir, id);
    ev->action = action;
    n = bpf_probe_read_kernel_str(path, PT_CGROUP_PATH_MAX, TP_STR(args, cgroup_mkdir, path));
    ev->path_len = filename_len(n);
#ifdef PT_CGROUP_FILTER
    if (action == PT_CGROUP_MKDIR || action == PT_CGROUP_RENAME) {
        /* Whether it is selected (by its name, or as a descendant) is for user
         * space to say, by the rules of tracer/model/cgroups.py, once this event
         * reaches it. Until then what runs in it is sent, and user space, which
         * filters again by the same rules, drops what is not selected. */
        u8 undecided = PT_CGROUP_UNDECIDED;
        cgroup_verdicts.update(&ev->id, &undecided);
    }
#endif
    {
        u64 size = sizeof(*ev) + (u64)ev->path_len;
        if (size > sizeof(*ev) + PT_CGROUP_PATH_MAX)
            size = sizeof(*ev) + PT_CGROUP_PATH_MAX;
        asm volatile("" : "+r"(size));
        if (size > sizeof(*ev) + PT_CGROUP_PATH_MAX)
            return 0;
        submit(args, ev, size);
    }
    return 0;
}

TRACEPOINT_PROBE(cgroup, cgroup_mkdir)
{
    return cgroup_event(args, PT_CGROUP_MKDIR);
}

TRACEPOINT_PROBE(cgroup, cgroup_rmdir)
{
    return cgroup_event(args, PT_CGROUP_RMDIR);
}

TRACEPOINT_PROBE(cgroup, cgroup_rename)
{
    return cgroup_event(args, PT_CGROUP_RENAME);
}

/* ---- Kernel reaps ----------------------------------------------------------
 *
 * A child whose parent ignores SIGCHLD or set SA_NOCLDWAIT is released by the
 * kernel at its exit, without wait(): no reap event ever comes, and it would
 * look like a zombie for ever. sched_process_free, when the task is freed
 * (an RCU grace period after its release), tells: a process leader that no
 * wait() collected was reaped by the kernel. */
#ifdef PT_HAVE_WAIT_SYSCALLS
RAW_TRACEPOINT_PROBE(sched_process_free)
{
    void *task = (void *)ctx->args[0];
    u32 pid = 0, tgid = 0, code = 0;
    struct pt_reap ev = {};

    KREAD(pid, task, KOFF_task_struct_pid);
    KREAD(tgid, task, KOFF_task_struct_tgid);
    if (pid != tgid)
        return 0; /* a thread: its exit said it was gone */
    if (waited_for_take(pid))
        return 0;
    if (!is_followed(pid) || !cgroup_member(pid))
        return 0;
    KREAD(code, task, KOFF_task_struct_exit_code);
    ev.h.ts_ns = bpf_ktime_get_ns();
    ev.h.kind = PT_REAP;
    ev.h.cpu = bpf_get_smp_processor_id();
    ev.reaped_pid = pid;
    ev.status = code;
    ev.autoreaped = 1;
    submit(ctx, &ev, sizeof(ev));
#ifdef PT_FOLLOW
    followed.delete(&pid);
#endif
#ifdef PT_CGROUP_FILTER
    cgroup_members.delete(&pid);
#endif
    return 0;
}
#endif /* PT_HAVE_WAIT_SYSCALLS: without the reaps by wait(), no kernel reap can be told apart */
