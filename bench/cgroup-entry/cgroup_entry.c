/*
 * How a process gets into a fresh cgroup, timed: moving an existing process (a write of its pid to cgroup.procs,
 * what the supervisor pool did first) against forking a copy straight into the group (clone3 CLONE_INTO_CGROUP,
 * what it does now), with a pause before each so that every entry meets an idle kernel, as starts that come one at
 * a time do. A baseline plain fork runs in the same loop. Groups are made and removed under
 * <cgroup2 mount>/jobworker-bench-<pid>; run as root.
 *
 *   cc -O2 -o /tmp/cgroup-entry bench/cgroup-entry/cgroup_entry.c && /tmp/cgroup-entry 100 20
 *   (iterations, pause in ms; the cgroup2 mount is read from /proc/self/mountinfo)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define CLONE_INTO_CGROUP_FLAG 0x200000000ULL

struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void find_cgroup2(char *out, size_t size)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *sep = strstr(line, " - ");
        if (sep != NULL && strncmp(sep + 3, "cgroup2 ", 8) == 0) {
            char *p = line;
            for (int field = 0; field < 4; field++) {
                p = strchr(p, ' ') + 1;
            }
            *strchr(p, ' ') = '\0';
            snprintf(out, size, "%s", p);
            fclose(f);
            return;
        }
    }
    fprintf(stderr, "no cgroup2 mount in /proc/self/mountinfo\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 100;
    int pause_ms = argc > 2 ? atoi(argv[2]) : 20;
    char mount[1024], base[1200];
    find_cgroup2(mount, sizeof mount);
    snprintf(base, sizeof base, "%s/jobworker-bench-%d", mount, (int)getpid());
    if (mkdir(base, 0755) < 0) {
        perror(base);
        return 1;
    }
    double *move = calloc((size_t)iterations, sizeof *move), *clone_into = calloc((size_t)iterations, sizeof *clone_into),
           *fork_plain = calloc((size_t)iterations, sizeof *fork_plain);
    for (int i = 0; i < iterations; i++) {
        char a[1300], b[1300], procs[1400];
        snprintf(a, sizeof a, "%s/move-%d", base, i);
        snprintf(b, sizeof b, "%s/clone-%d", base, i);
        mkdir(a, 0755);
        mkdir(b, 0755);

        /* An idle process (the pooled supervisor), moved: only the write is timed. */
        int gate[2];
        if (pipe(gate) < 0) {
            return 1;
        }
        pid_t idle = fork();
        if (idle == 0) {
            char c;
            close(gate[1]);
            (void)read(gate[0], &c, 1);
            _exit(0);
        }
        close(gate[0]);
        usleep((useconds_t)pause_ms * 1000);
        snprintf(procs, sizeof procs, "%s/cgroup.procs", a);
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        char text[16];
        int len = snprintf(text, sizeof text, "%d", (int)idle);
        double t0 = now_us();
        if (write(fd, text, (size_t)len) != len) {
            perror("cgroup.procs");
            return 1;
        }
        move[i] = now_us() - t0;
        close(fd);
        close(gate[1]);
        waitpid(idle, NULL, 0);

        /* A copy forked into the group: clone3 until it returns in the parent. */
        usleep((useconds_t)pause_ms * 1000);
        int dir = open(b, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct clone_args_v2 ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_INTO_CGROUP_FLAG;
        ca.exit_signal = SIGCHLD;
        ca.cgroup = (uint64_t)dir;
        t0 = now_us();
        long pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid == 0) {
            _exit(0);
        }
        clone_into[i] = now_us() - t0;
        if (pid < 0) {
            perror("clone3");
            return 1;
        }
        waitpid((pid_t)pid, NULL, 0);
        close(dir);

        /* Baseline: a plain fork. */
        usleep((useconds_t)pause_ms * 1000);
        t0 = now_us();
        pid = fork();
        if (pid == 0) {
            _exit(0);
        }
        fork_plain[i] = now_us() - t0;
        waitpid((pid_t)pid, NULL, 0);

        rmdir(a);
        rmdir(b);
    }
    rmdir(base);
    qsort(move, (size_t)iterations, sizeof *move, cmp);
    qsort(clone_into, (size_t)iterations, sizeof *clone_into, cmp);
    qsort(fork_plain, (size_t)iterations, sizeof *fork_plain, cmp);
    printf("%d iterations, %d ms pause before each\n", iterations, pause_ms);
    printf("| entry | p50 | p90 |\n|---|---:|---:|\n");
    printf("| plain fork (baseline) | %.0f us | %.0f us |\n", fork_plain[iterations / 2], fork_plain[iterations * 9 / 10]);
    printf("| move: pid to cgroup.procs | %.0f us | %.0f us |\n", move[iterations / 2], move[iterations * 9 / 10]);
    printf("| fork with clone3 CLONE_INTO_CGROUP | %.0f us | %.0f us |\n", clone_into[iterations / 2], clone_into[iterations * 9 / 10]);
    return 0;
}
