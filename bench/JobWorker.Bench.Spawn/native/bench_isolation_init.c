/*
 * Where an isolated start's time goes, in C only (no .NET, no supervisor, no cgroup): jw_spawn of a target as
 * nobody without an init, and with the namespace init either exec'd (jobworker-init, as a .NET caller of the
 * library does) or run in a copy of this process (JW_SPAWN_INIT_IN_PROCESS, as jobworker-shim does), for
 * pid+mount, the server's default pid+mount+ipc+uts, and all five namespaces. Every variant runs interleaved in
 * one process. "→ exec" is jw_spawn's return (the target has exec'd), "round trip" until its exit was reaped.
 *
 *   bench-isolation-init INIT TARGET ITERATIONS WARMUP     (as root; TARGET outside /tmp, which mount isolation
 *                                                            replaces, and executable by nobody)
 */
#define _GNU_SOURCE
#include "jobworker_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct variant {
    const char *name;
    const char *flags;  /* the init's FLAGS */
    uint64_t ns;        /* CLONE_NEW* */
    int init;
    int in_process;
    long long *to_exec;
    long long *round_trip;
};

static const char *init_path;
static const char *target;
static int devnull;

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void run(struct variant *v, int i)
{
    const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    const char *paths[2] = { v->init ? init_path : target, NULL };
    const char *argv[12];
    struct jw_spawn_args a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    if (v->init) {
        const char *init_argv[] = { "jobworker-init", v->flags, "65534", "65534", "/", "", "1", target, target, NULL };
        memcpy(argv, init_argv, sizeof init_argv);
        a.flags = JW_SPAWN_INIT | JW_SPAWN_SETSID | (v->in_process ? JW_SPAWN_INIT_IN_PROCESS : 0);
        a.namespace_flags = v->ns;
    } else {
        argv[0] = target;
        argv[1] = NULL;
        a.flags = JW_SPAWN_SET_CREDENTIALS | JW_SPAWN_SETSID;
        a.uid = 65534;
        a.gid = 65534;
    }
    a.exec_paths = paths;
    a.argv = argv;
    a.envp = envp;
    a.stdin_fd = a.stdout_fd = a.stderr_fd = devnull;
    a.cgroup_fd = -1;
    a.pdeath_signal = SIGKILL;
    a.status_fd = -1;
    long long start = now_ns();
    if (jw_spawn(&a) < 0) {
        fprintf(stderr, "%s: step %d, errno %d\n", v->name, a.failed_step, a.error);
        exit(1);
    }
    long long exec = now_ns();
    int32_t kind, code;
    if (jw_pidfd_wait(a.pidfd, 0, &kind, &code) < 0 || kind != 1 || code != 0) {
        fprintf(stderr, "%s: the target did not exit 0\n", v->name);
        exit(1);
    }
    long long end = now_ns();
    close(a.pidfd);
    if (i >= 0) {
        v->to_exec[i] = exec - start;
        v->round_trip[i] = end - start;
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s INIT TARGET ITERATIONS WARMUP\n", argv[0]);
        return 2;
    }
    init_path = argv[1];
    target = argv[2];
    int n = atoi(argv[3]);
    int warmup = atoi(argv[4]);
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    struct variant variants[] = {
        { "no init, no namespace", "-", 0, 0, 0, NULL, NULL },
        { "exec'd init, pid+mount", "pmk", 0x20020000, 1, 0, NULL, NULL },
        { "in-process init, pid+mount", "pmk", 0x20020000, 1, 1, NULL, NULL },
        { "exec'd init, pid+mount+ipc+uts", "pmiuk", 0x2C020000, 1, 0, NULL, NULL },
        { "in-process init, pid+mount+ipc+uts", "pmiuk", 0x2C020000, 1, 1, NULL, NULL },
        { "exec'd init, all five", "pmniuk", 0x6C020000, 1, 0, NULL, NULL },
        { "in-process init, all five", "pmniuk", 0x6C020000, 1, 1, NULL, NULL },
    };
    int count = (int)(sizeof variants / sizeof variants[0]);
    for (int j = 0; j < count; j++) {
        variants[j].to_exec = calloc((size_t)n, sizeof(long long));
        variants[j].round_trip = calloc((size_t)n, sizeof(long long));
    }
    for (int i = 0; i < warmup; i++) {
        for (int j = 0; j < count; j++) {
            run(&variants[j], -1);
        }
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < count; j++) {
            run(&variants[j], i);
        }
    }
    printf("| variant | → exec p50 | → exec p90 | round trip p50 |\n|---|---:|---:|---:|\n");
    for (int j = 0; j < count; j++) {
        struct variant *v = &variants[j];
        qsort(v->to_exec, (size_t)n, sizeof(long long), compare);
        qsort(v->round_trip, (size_t)n, sizeof(long long), compare);
        printf("| %s | %.3f ms | %.3f ms | %.3f ms |\n", v->name, v->to_exec[n / 2] / 1e6, v->to_exec[n * 9 / 10] / 1e6,
               v->round_trip[n / 2] / 1e6);
    }
    return 0;
}
