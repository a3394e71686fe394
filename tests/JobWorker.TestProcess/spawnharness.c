/*
 * jobworker-spawnharness: calls jw_spawn (native/jobworker_spawn.c, linked in) from a process whose fds 0-2
 * were closed, as a server started with them closed would: its pipes and /dev/null then sit on 0-2, in the
 * worst order for the child's dup2s (the output pipe's write end on fd 0, /dev/null on fd 1, and in init mode
 * the init's status pipe on fd 2).
 *
 *   jobworker-spawnharness plain TESTPROCESS          TESTPROCESS echo hello env MARKER
 *   jobworker-spawnharness init TESTPROCESS INIT      the same under jobworker-init in a new PID namespace
 *
 *   jobworker-spawnharness orphan-init TESTPROCESS INIT
 *                                                     runs INIT by hand (no jw_spawn) as if its parent had died
 *                                                     before its PR_SET_PDEATHSIG: nobody reads its error pipe.
 *                                                     Prints "output=<what the target wrote>" and
 *                                                     "init=<kind>:<code>"; the init must exit 127 unseen.
 *
 * The job's environment is MARKER=from-env. Prints (on the stdout it had before closing it):
 *   output=<what the job wrote, \n as |>
 *   status=<kind>:<code>   init mode: what the init reported on its status pipe (1:0 = exited 0), else "none"
 *   exit=<kind>:<code>     the spawned process's own end
 * and exits 0, or exits 1 after "spawn failed step=S errno=E".
 */
#define _GNU_SOURCE
#include "../../native/jobworker_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLONE_NEWPID_FLAG 0x20000000ULL

static int report_fd = -1;

static void report(const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = write(report_fd, text, len);
        if (n <= 0) {
            return;
        }
        text += n;
        len -= (size_t)n;
    }
}

static int high(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

static int orphan_init(const char *target, const char *init)
{
    const char *envp[] = { "MARKER=from-env", NULL };
    int out[2], error[2];
    int env = jw_env_fd(envp);
    if (env < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(error, O_CLOEXEC) < 0) {
        printf("setup failed\n");
        return 1;
    }
    close(error[0]); /* the "parent" is gone before the init starts: its error pipe has no reader */
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0 || dup2(null, 3) < 0 ||
            dup2(error[1], 4) < 0 || dup2(env, 5) < 0) {
            _exit(120);
        }
        signal(SIGPIPE, SIG_DFL);
        const char *argv[] = { "jobworker-init", "-", "0", "0", "/", "", "1", target, target, "echo", "ran", NULL };
        const char *no_env[] = { NULL };
        execve(init, (char *const *)argv, (char *const *)no_env);
        _exit(121);
    }
    close(out[1]);
    close(error[1]);
    char output[256];
    ssize_t n = read(out[0], output, sizeof output - 1);
    output[n > 0 ? n : 0] = '\0';
    for (ssize_t i = 0; i < n; i++) {
        if (output[i] == '\n') {
            output[i] = '|';
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("output=%s\ninit=%d:%d\n", output, WIFEXITED(status) ? 1 : 2, WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "plain") != 0 && argc < 4)) {
        fprintf(stderr, "usage: jobworker-spawnharness plain|init|orphan-init TESTPROCESS [INIT]\n");
        return 2;
    }
    if (strcmp(argv[1], "orphan-init") == 0) {
        return orphan_init(argv[2], argv[3]);
    }
    int init = strcmp(argv[1], "init") == 0;
    report_fd = high(1);
    close(0);
    close(1);
    close(2);

    /* Opened while 0-2 are free, then placed exactly: write end → 0, /dev/null → 1, status → 2 (init). */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out[2];
    if (null < 0 || pipe2(out, O_CLOEXEC) < 0) {
        report("setup failed\n");
        return 1;
    }
    int read_end = high(out[0]);
    int write_end = high(out[1]);
    int null_high = high(null);
    close(null);
    close(out[0]);
    close(out[1]);
    int status[2] = { -1, -1 };
    if (init && pipe2(status, O_CLOEXEC | O_NONBLOCK) < 0) {
        report("setup failed\n");
        return 1;
    }
    int status_read = init ? high(status[0]) : -1;
    int status_write = init ? high(status[1]) : -1;
    if (init) {
        close(status[0]);
        close(status[1]);
    }
    if (dup3(write_end, 0, O_CLOEXEC) != 0 || dup3(null_high, 1, O_CLOEXEC) != 1 ||
        (init && dup3(status_write, 2, O_CLOEXEC) != 2)) {
        report("setup failed\n");
        return 1;
    }
    close(write_end);
    close(null_high);
    if (init) {
        close(status_write);
    }

    const char *target = argv[2];
    const char *job_argv[] = { target, "echo", "hello", "env", "MARKER", NULL };
    const char *init_argv[] = { "jobworker-init", "p", "0", "0", "/", "", "1", target, target, "echo", "hello", "env", "MARKER", NULL };
    const char *target_paths[] = { target, NULL };
    const char *init_paths[] = { init ? argv[3] : NULL, NULL };
    const char *envp[] = { "MARKER=from-env", NULL };

    struct jw_spawn_args a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.flags = JW_SPAWN_SETSID | (init ? JW_SPAWN_INIT : 0);
    a.namespace_flags = init ? CLONE_NEWPID_FLAG : 0;
    a.exec_paths = init ? init_paths : target_paths;
    a.argv = init ? init_argv : job_argv;
    a.envp = envp;
    a.cwd = NULL;
    a.stdin_fd = 1;
    a.stdout_fd = 0;
    a.stderr_fd = 0;
    a.cgroup_fd = -1;
    a.pdeath_signal = SIGKILL;
    a.status_fd = init ? 2 : -1;
    int r = jw_spawn(&a);
    close(0);
    if (init) {
        close(2);
    }
    char line[256];
    if (r < 0) {
        snprintf(line, sizeof line, "spawn failed step=%d errno=%d\n", a.failed_step, a.error);
        report(line);
        return 1;
    }

    char output[4096];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(read_end, output + got, sizeof output - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || got + (size_t)n >= sizeof output - 1) {
            got += n > 0 ? (size_t)n : 0;
            break;
        }
        got += (size_t)n;
    }
    output[got] = '\0';
    for (size_t i = 0; i < got; i++) {
        if (output[i] == '\n') {
            output[i] = '|';
        }
    }
    int32_t kind = 0, code = 0;
    jw_pidfd_wait(a.pidfd, 0, &kind, &code);
    report("output=");
    report(output);
    report("\n");
    int32_t skind = 0, scode = 0;
    if (init && jw_init_status(status_read, &skind, &scode) == 1) {
        snprintf(line, sizeof line, "status=%d:%d\n", skind, scode);
    } else {
        snprintf(line, sizeof line, "status=none\n");
    }
    report(line);
    snprintf(line, sizeof line, "exit=%d:%d\n", kind, code);
    report(line);
    return 0;
}
