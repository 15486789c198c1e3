/* The fork/exec/exit storm that the bench (python -m proctrace.bench) measures
 * tracers against.
 *
 *     storm SPAWNERS SECONDS PROGRAM PIDFILE
 *
 * Starts SPAWNERS processes; each loops fork + execv(PROGRAM) + waitpid until
 * SECONDS have passed, so every spawn is one fork, one exec, one exit and one
 * reap. Written in C because a Python spawner's own overhead would hide the
 * tracer's. The bench compiles it into a temporary directory at run time
 * (tracer/bench/storm.py).
 *
 * Each spawner writes the pid of every child it spawned, one per line, to
 * PIDFILE.<n>; the bench counts a tracer's events for exactly those pids.
 * On stdout, one line: "spawned <N> failed <F> seconds <T>", T being the time
 * from the common start to the last spawner's last reap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct result {
    long spawned;
    long failed;
    double ended;
};

static void spawner(const char *program, double deadline, const char *pidfile, struct result *out)
{
    char *const argv[] = {(char *)program, NULL};
    size_t cap = 1 << 16, n = 0;
    pid_t *pids = malloc(cap * sizeof(*pids));
    long failed = 0;

    if (!pids)
        _exit(2);
    while (now() < deadline) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(program, argv);
            _exit(127);
        }
        if (pid < 0) {
            failed++;
            continue;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
        if (n == cap) {
            cap *= 2;
            pids = realloc(pids, cap * sizeof(*pids));
            if (!pids)
                _exit(2);
        }
        pids[n++] = pid;
    }
    out->ended = now();
    out->spawned = (long)n;
    out->failed = failed;
    /* Written after the clock stops: the file I/O is not part of the storm. */
    FILE *f = fopen(pidfile, "w");
    if (!f)
        _exit(3);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%d\n", (int)pids[i]);
    fclose(f);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s SPAWNERS SECONDS PROGRAM PIDFILE\n", argv[0]);
        return 2;
    }
    int spawners = atoi(argv[1]);
    double seconds = atof(argv[2]);
    const char *program = argv[3];
    if (spawners < 1 || spawners > 64 || seconds <= 0) {
        fprintf(stderr, "storm: bad SPAWNERS or SECONDS\n");
        return 2;
    }
    /* Shared with the spawners so their counts come back without pipes. */
    struct result *results = mmap(NULL, sizeof(*results) * (size_t)spawners, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (results == MAP_FAILED) {
        perror("storm: mmap");
        return 2;
    }
    memset(results, 0, sizeof(*results) * (size_t)spawners);

    double start = now();
    double deadline = start + seconds;
    for (int i = 0; i < spawners; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char pidfile[4096];
            snprintf(pidfile, sizeof(pidfile), "%s.%d", argv[4], i);
            spawner(program, deadline, pidfile, &results[i]);
        }
        if (pid < 0) {
            perror("storm: fork");
            return 2;
        }
    }
    int ok = 1, status;
    for (int i = 0; i < spawners; i++) {
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ok = 0;
    }
    long spawned = 0, failed = 0;
    double ended = start;
    for (int i = 0; i < spawners; i++) {
        spawned += results[i].spawned;
        failed += results[i].failed;
        if (results[i].ended > ended)
            ended = results[i].ended;
    }
    printf("spawned %ld failed %ld seconds %.6f\n", spawned, failed, ended - start);
    return ok ? 0 : 1;
}
