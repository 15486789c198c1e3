/* A fork/exec storm whose events can be counted exactly.
 *
 *     spawner COUNT WORKERS PROGRAM [PROGRESS_FILE]
 *
 * The top process forks WORKERS workers; between them they run PROGRAM
 * (argv: PROGRAM alone) COUNT times, each run one fork + execv + waitpid, so
 * each is exactly four events for a tracer of this tree: fork, exec, exit,
 * reap. A worker is a fork, an exit and a reap (it never execs). When all
 * workers are reaped, the top process waits AFTER_STORM_MS (so a tracer's
 * buffer can drain), then runs PROGRAM once more with the argument
 * "after-storm" (four more events) and exits 0. With a tracer following the
 * whole tree from the top process's exec, the tree therefore produces
 *
 *     1 (top exec) + 3 * WORKERS + 4 * COUNT + 4 (after-storm) + 1 (top exit)
 *
 * events, and one more when the tracer reaps the top process itself.
 *
 * If PROGRESS_FILE is given, it holds the number of runs reaped so far as a
 * little-endian 64-bit integer (the file is mapped shared, so a reader of
 * the file sees it move). On stdout, one line: "spawned N failed F".
 * The exit status is 0 only if every run was started and exited 0.
 *
 * The top process and the workers die with their parent (PR_SET_PDEATHSIG):
 * a tracer that fails half-way leaves no storm running behind it.
 *
 * Written in C because a Python spawner's own overhead would throttle the
 * storm far below what a tracer must keep up with.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AFTER_STORM_MS 300

struct shared {
    uint64_t reaped; /* first, so PROGRESS_FILE reads as one integer */
    uint64_t failed;
};

static int run_once(char *program, char *arg)
{
    char *argv[] = {program, arg, NULL};
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        execv(program, argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static struct shared *map_shared(const char *progress)
{
    void *p;

    if (progress) {
        int fd = open(progress, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, sizeof(struct shared)) < 0)
            return NULL;
        p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
    } else {
        p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: spawner COUNT WORKERS PROGRAM [PROGRESS_FILE]\n");
        return 2;
    }
    long count = atol(argv[1]);
    long workers = atol(argv[2]);
    char *program = argv[3];
    struct shared *shared = map_shared(argc == 5 ? argv[4] : NULL);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (count < 0 || workers < 1 || !shared) {
        fprintf(stderr, "spawner: bad arguments or no shared memory\n");
        return 2;
    }
    for (long w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("spawner: fork");
            return 2;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* not inherited across fork */
            long mine = count / workers + (w < count % workers);
            for (long i = 0; i < mine; i++) {
                if (run_once(program, NULL) < 0)
                    __atomic_fetch_add(&shared->failed, 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&shared->reaped, 1, __ATOMIC_RELAXED);
            }
            _exit(0);
        }
    }
    for (long w = 0; w < workers; w++)
        while (wait(NULL) < 0 && errno == EINTR)
            ;
    struct timespec pause = {AFTER_STORM_MS / 1000, (AFTER_STORM_MS % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    int after = run_once(program, "after-storm");
    uint64_t failed = __atomic_load_n(&shared->failed, __ATOMIC_RELAXED);
    printf("spawned %lu failed %lu\n", (unsigned long)__atomic_load_n(&shared->reaped, __ATOMIC_RELAXED),
           (unsigned long)failed);
    return failed == 0 && after == 0 ? 0 : 1;
}
