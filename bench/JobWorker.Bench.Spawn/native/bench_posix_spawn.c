/* Baseline: glibc posix_spawn (itself clone(CLONE_VM|CLONE_VFORK) + execve), stdout to the given fd. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bench_posix_spawn(const char *path, char *const argv[], char *const envp[], int stdout_fd, int32_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
    pid_t p;
    int r = posix_spawn(&p, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        return -r;
    }
    *pid = p;
    return 0;
}

/* Reaps pid; returns its wait status or -errno. */
int bench_waitpid(int32_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return status;
}

/* CLOCK_MONOTONIC in ns, the clock the target prints. */
int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
