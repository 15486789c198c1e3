/* The wire event: the one definition of what the BPF programs send to user space.
 *
 * tracer/kernel/wire.py decodes exactly this layout; tests/test_wire_layout.py compiles
 * this header with the host C compiler and fails if any size or offset drifts
 * from the Python side. Change both together.
 *
 * Every event is a pt_header followed by the payload of its kind. Exec events
 * end in a variable-length tail (filename, then argv as NUL-separated bytes).
 * All fields are naturally aligned, so the BPF target and x86_64/aarch64 hosts
 * agree on the layout without packing.
 */
#ifndef PROCTRACE_EVENT_H
#define PROCTRACE_EVENT_H

#define PT_COMM_LEN 16
/* Upper bound on an exec'd filename carried in an event. */
#define PT_FILENAME_MAX 512
/* Upper bounds on the working directory an exec carries: its bytes (the
 * components with their NULs) and how many components are followed. */
#define PT_CWD_MAX 2048
#define PT_CWD_DEPTH 64
/* Supplementary groups a cred event carries, of each side. */
#define PT_GROUPS_MAX 16
/* Upper bound on a cgroup path carried in a cgroup event. */
#define PT_CGROUP_PATH_MAX 1024

enum pt_kind {
    PT_FORK = 1,
    PT_EXEC = 2,
    PT_EXIT = 3,
    PT_SIGNAL = 4,
    PT_REAP = 5,
    PT_CRED = 6,
    PT_CGROUP = 7,
};

/* Bits in pt_exec.flags */
#define PT_EXEC_ARGV_TRUNCATED (1u << 0)
#define PT_EXEC_FILENAME_TRUNCATED (1u << 1)
#define PT_EXEC_ARGV_UNREADABLE (1u << 2)
#define PT_EXEC_CONTEXT (1u << 3)        /* the context fields were read (not for a failed exec) */
#define PT_EXEC_CWD_TRUNCATED (1u << 4)  /* deeper or longer than PT_CWD_DEPTH/PT_CWD_MAX */
#define PT_EXEC_CWD_DELETED (1u << 5)
#define PT_EXEC_EXE_MEMFD (1u << 6)
#define PT_EXEC_EXE_DELETED (1u << 7)
#define PT_EXEC_CRED_BEFORE (1u << 8)    /* cred_before holds the credentials before the exec */
#define PT_EXEC_ENV (1u << 9)            /* the environment was asked for (--env) */
#define PT_EXEC_ENV_TRUNCATED (1u << 10)
#define PT_EXEC_ENV_UNREADABLE (1u << 11)
#define PT_EXEC_LOGIN (1u << 12)         /* login_uid and login_session were read (CONFIG_AUDIT) */
#define PT_EXEC_EXE (1u << 13)           /* the process has an executable file */

/* Bits in pt_exit.has_usage */
#define PT_USAGE (1u << 0)
#define PT_USAGE_IO (1u << 1) /* the kernel keeps storage I/O accounting (CONFIG_TASK_IO_ACCOUNTING) */

/* Bits in pt_exit.death */
#define PT_DEATH_OOM (1u << 0)  /* the OOM killer chose it (oom:mark_victim) */
#define PT_DEATH_SENT (1u << 1) /* a process sent the signal that killed it: killed_by_* say which */

/* pt_cgroup.action */
#define PT_CGROUP_MKDIR 1
#define PT_CGROUP_RMDIR 2
#define PT_CGROUP_RENAME 3

/* pt_signal.stage */
#define PT_SIGNAL_GENERATE 1
#define PT_SIGNAL_DELIVER 2

/* Which kernel buffer an event travels in, and which loss counter counts it.
 * Signals have a buffer of their own, so that a flood of them (a process under
 * strace, a kill loop) can fill it but never the one that carries forks,
 * execs, exits and reaps. */
enum pt_class {
    PT_CLASS_LIFECYCLE = 0,
    PT_CLASS_SIGNAL = 1,
    PT_CLASSES = 2,
};

/* pt_fold_key.reason: why signals were counted in the kernel, not sent one by one */
#define PT_FOLD_PTRACE 1 /* SIGCHLD telling a tracer that its tracee stopped or went on */
#define PT_FOLD_RATE 2   /* beyond the rate limit of its sender, target and signal */

struct pt_header {
    __u64 ts_ns;          /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u64 start_ns;       /* the process's start (group leader's start_time) */
    __u32 kind;           /* enum pt_kind */
    __u32 pid;            /* task (thread) id of the task the event is about */
    __u32 tgid;           /* process id */
    __u32 ppid;           /* real parent's process id */
    __u32 uid;
    __u32 cpu;
    char comm[PT_COMM_LEN];
    __u64 cgroup_id;      /* the current task's cgroup v2 id */
};

/* A task's credentials (the initial user namespace's ids). */
struct pt_cred {
    __u32 uid;
    __u32 euid;
    __u32 suid;
    __u32 fsuid;
    __u32 gid;
    __u32 egid;
    __u32 sgid;
    __u32 fsgid;
    __u64 cap_effective;
};

struct pt_fork {
    struct pt_header h;   /* the parent (the forking task) */
    __u64 clone_flags;
    __u32 child_pid;
    __u32 child_tgid;
    __u32 child_ppid;     /* the forker's parent for a thread or with CLONE_PARENT */
    __u32 _pad;
};

struct pt_exec {
    struct pt_header h;   /* the task after exec (or the task whose exec failed) */
    __s32 err;            /* 0, or the positive errno of a failed exec */
    __u32 old_pid;        /* the thread id that called exec, if not the leader */
    __u32 flags;          /* PT_EXEC_* */
    __u32 filename_len;   /* bytes of filename at the start of the tail, no NUL */
    __u32 argv_len;       /* bytes of argv after the filename, NUL-separated */
    __u32 cwd_len;        /* bytes of cwd after env: its components, deepest first, each with a NUL */
    __u32 env_len;        /* bytes of environment after argv, NUL-separated */
    __u32 tty_dev;        /* the controlling terminal, major << 20 | minor; 0: none */
    struct pt_cred cred;        /* after the exec */
    struct pt_cred cred_before; /* before it, with PT_EXEC_CRED_BEFORE */
    __u64 exe_ino;        /* with PT_EXEC_EXE */
    __u32 exe_dev;        /* the kernel's dev_t: major << 20 | minor */
    __u32 sid;            /* session id, as the initial pid namespace numbers it */
    __u32 login_uid;      /* with PT_EXEC_LOGIN */
    __u32 login_session;
    __u32 pidns;          /* pid namespace inode */
    __u32 ns_pid;         /* the pid in that namespace */
    __u32 mntns;          /* mount namespace inode */
    __u32 _pad;
    /* char tail[filename_len + argv_len + env_len + cwd_len] */
};

struct pt_exit {
    struct pt_header h;   /* the exiting task */
    __u64 task_start_ns;  /* the exiting task's own start_time */
    __u32 status;         /* wait status: task exit_code, or the group's if a group exit */
    __u32 task_exit_code; /* this task's own exit_code */
    __u8 group_dead;      /* the last thread of the process: the process ended */
    __u8 has_usage;       /* PT_USAGE: the usage below was read (a process exit); PT_USAGE_IO: with I/O */
    __u8 death;           /* PT_DEATH_*: what ended the process, where known */
    __u8 _pad;
    __u32 killed_by_pid;  /* with PT_DEATH_SENT: the process that sent the fatal signal */
    /* What the whole process used, every thread (signal_struct's totals of
     * the threads gone, plus the exiting one and a zombie leader), as wait4's
     * rusage would give it: CPU as the ticks' split and the scheduler's
     * runtime, which user space combines as the kernel does (cputime_adjust). */
    __u64 utime_ns;
    __u64 stime_ns;
    __u64 runtime_ns;
    __u64 min_flt;
    __u64 maj_flt;
    __u64 nvcsw;
    __u64 nivcsw;
    __u64 maxrss_kb;      /* signal->maxrss: the peak of the images before this one */
    __u64 hiwater_rss;    /* pages: this image's recorded peak */
    __u64 rss;            /* pages: this image's resident set now (percpu counters' central counts) */
    __u64 read_bytes;     /* storage I/O (task_io_accounting) */
    __u64 write_bytes;
    char killed_by_comm[PT_COMM_LEN];
};

struct pt_signal {
    struct pt_header h;   /* generate: the sender; deliver: the receiver */
    __s32 signo;
    __s32 code;           /* si_code */
    __u32 target_pid;     /* generate: the target task; deliver: the receiver */
    __s32 result;         /* generate: TRACE_SIGNAL_* (0 delivered, 1 ignored, ...) */
    __u64 handler;        /* deliver: sa_handler (0 default, 1 ignore, else a handler) */
    __u32 group_exit_signo; /* deliver: the signal behind a group exit, else 0 */
    __u8 stage;           /* PT_SIGNAL_GENERATE or PT_SIGNAL_DELIVER */
    __u8 group;           /* generate: sent to the whole process */
    __u8 _pad[2];
    char target_comm[PT_COMM_LEN];
};

/* A run of signals counted in the kernel instead of sent (the folded_signals
 * map): user space reads and deletes the entries of a generation once the
 * kernel has moved on to the next, so no count is ever lost to a race. */
struct pt_fold_key {
    __u32 sender_tgid;    /* generate: the sending process; deliver: 0 */
    __u32 target_pid;     /* the target task: the tracer, for ptrace stops */
    __u32 generation;     /* the counting period it belongs to (fold_generation) */
    __u16 signo;
    __u8 stage;           /* PT_SIGNAL_GENERATE or PT_SIGNAL_DELIVER */
    __u8 reason;          /* PT_FOLD_* */
};

struct pt_fold {
    struct pt_header h;   /* at the first signal counted: generate, the sender; deliver, the receiver */
    __u64 count;
    __u64 last_ns;        /* the last signal counted; h.ts_ns is the first */
    char target_comm[PT_COMM_LEN];
};

/* A successful set*id, setgroups or capset that changed the task's credentials. */
struct pt_cred_change {
    struct pt_header h;   /* the task, after the change */
    __s32 syscall_nr;
    __s32 ret;
    struct pt_cred before;
    struct pt_cred after;
    __u32 ngroups_before;
    __u32 ngroups_after;
    __u32 groups_before[PT_GROUPS_MAX];
    __u32 groups_after[PT_GROUPS_MAX];
};

/* A cgroup of the unified hierarchy made, removed or renamed. */
struct pt_cgroup {
    struct pt_header h;   /* the task that did it */
    __u64 id;             /* the cgroup's id */
    __u32 action;         /* PT_CGROUP_* */
    __u32 path_len;       /* bytes of path that follow, no NUL */
    /* char path[path_len] */
};

struct pt_reap {
    struct pt_header h;   /* the reaper; for a kernel reap, no task (zeros) */
    __u32 reaped_pid;
    __u32 status;         /* the wait status the reaper collected (a kernel reap: the exit code) */
    __u8 autoreaped;      /* released by the kernel, not by wait(): sched_process_free of an unwaited leader */
    __u8 _pad[7];
};

#endif
