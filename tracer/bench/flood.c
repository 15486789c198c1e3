/* The signal flood that the bench (python -m proctrace.bench) runs the storm in.
 *
 *     flood SECONDS STRACE STORM [STORM_ARG...]
 *
 * Three things at once, all in this process's tree:
 *   - a kill loop: a child of this process sends SIGUSR1 to a grandchild (the
 *     target, which has a handler for it) as fast as kill(2) goes, for SECONDS
 *     plus MARGIN_S, and counts the calls that succeeded;
 *   - unless STRACE is "-": `STRACE -f -o /dev/null flood syscalls S` runs a
 *     loop of getppid(2) for as long, so every syscall entry and exit stops the
 *     tracee and notifies strace with a SIGCHLD (a ptrace stop);
 *   - the storm: STORM [STORM_ARG...] (the bench's storm.c), started last.
 * The kill loop and the syscall loop start first and run MARGIN_S longer than
 * the storm's SECONDS, so the flood covers the storm's whole timed window.
 *
 * On stdout, one line from each part (the storm's own "spawned ..." line, and):
 *     sent N seconds T sender PID target PID
 *     syscalls N seconds T
 * The exit status is 0 only if every part exited 0. Every part dies with its
 * parent (PR_SET_PDEATHSIG), and every loop ends on its own: a bench that
 * fails half-way leaves nothing running.
 *
 * Written in C, like the storm: a Python kill loop sends a fraction of what
 * the machine can, and the flood must be as hard as the machine can make it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARGIN_S 0.25
#define BATCH 256 /* kill()s or syscalls between two looks at the clock */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_usr1(int signo)
{
    (void)signo;
}

/* The kill loop, in a child of the top process. */
static int kill_loop(double seconds)
{
    int done[2];
    struct sigaction sa;

    /* Set before the target is forked, so it has the handler from its first
     * instruction and no kill can find it without one (SIGUSR1 kills by default). */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR1, &sa, NULL) < 0 || pipe(done) < 0)
        return 2;
    pid_t target = fork();
    if (target < 0)
        return 2;
    if (target == 0) {
        char c;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(done[1]);
        while (read(done[0], &c, 1) < 0 && errno == EINTR)
            ; /* end of file: the loop is over */
        _exit(0);
    }
    close(done[0]);
    long sent = 0;
    double start = now(), deadline = start + seconds;
    while (now() < deadline)
        for (int i = 0; i < BATCH; i++)
            sent += kill(target, SIGUSR1) == 0;
    double elapsed = now() - start;
    close(done[1]);
    int status;
    while (waitpid(target, &status, 0) < 0)
        if (errno != EINTR)
            return 2;
    printf("sent %ld seconds %.6f sender %d target %d\n", sent, elapsed, (int)getpid(), (int)target);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* The loop of syscalls that runs under strace. */
static int syscall_loop(double seconds)
{
    long calls = 0;
    double start = now(), deadline = start + seconds; /* the vDSO clock: no syscall, no stop */
    while (now() < deadline)
        for (int i = 0; i < BATCH; i++, calls++)
            syscall(SYS_getppid);
    printf("syscalls %ld seconds %.6f\n", calls, now() - start);
    return 0;
}

static pid_t start(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[0], argv);
        perror("flood: exec");
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "syscalls") == 0)
        return syscall_loop(atof(argv[2]));
    if (argc < 4) {
        fprintf(stderr, "usage: flood SECONDS STRACE|- STORM [STORM_ARG...]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    const char *strace = argv[2];
    if (seconds <= 0) {
        fprintf(stderr, "flood: bad SECONDS\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Nothing is buffered on stdout yet: the forked kill loop starts with an empty buffer. */
    pid_t killer = fork();
    if (killer == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int code = kill_loop(seconds + MARGIN_S);
        fflush(stdout);
        _exit(code);
    }
    pid_t tracer = 0;
    if (strcmp(strace, "-") != 0) {
        char self[4096], loop_seconds[32];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
            perror("flood: /proc/self/exe");
            return 2;
        }
        self[n] = '\0';
        snprintf(loop_seconds, sizeof(loop_seconds), "%.3f", seconds + MARGIN_S);
        char *const traced[] = {(char *)strace, "-f", "-o", "/dev/null", self, "syscalls", loop_seconds, NULL};
        tracer = start(traced);
    }
    pid_t storm = start(&argv[3]);
    if (killer < 0 || tracer < 0 || storm < 0) {
        perror("flood: fork");
        return 2;
    }
    int ok = 1, status;
    for (int parts = 2 + (tracer > 0); parts > 0; parts--) {
        if (wait(&status) < 0) {
            if (errno == EINTR) {
                parts++;
                continue;
            }
            return 2;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ok = 0;
    }
    return ok ? 0 : 1;
}
