/*
 * jobworker-init: the first process of an isolated job.
 *
 * jw_spawn creates the job's namespaces in its clone3 call and execs this program as root. Why a separate
 * executable: the spawn child shares the server's memory (CLONE_VM|CLONE_VFORK) and must exec to release
 * the server, yet in a new PID namespace something has to stay behind as PID 1 — and PID 1 ignores every
 * signal it has no handler for, so the job's program cannot be PID 1 itself (SIGTERM would do nothing).
 *
 * What it does, in order:
 *   1. mount namespace ('m'): slave propagation (host mount events reach the job, the job's never reach the
 *      host), the server's state directory masked by an empty read-only tmpfs, a private tmpfs on /tmp, (with
 *      'p') a fresh /proc that shows only the job's processes, and (with 'i') a private tmpfs on /dev/shm and a
 *      fresh mqueue on /dev/mqueue;
 *   2. network namespace ('n'): brings up the loopback interface, the only one there is;
 *   3. drops to the job's user (setgroups(0), setgid, setuid), joins a fresh session keyring ('k', as that
 *      user, so it is the job user's own), PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, chdir;
 *   4. without a PID namespace: execs the target directly (it is the job's main process, nothing stays);
 *      with one ('p'): forks the target, forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH to
 *      it, reaps every child (orphans are re-parented to PID 1), and when the target ends writes its raw wait
 *      status to fd 3 and exits. The server reads that status: a PID 1 cannot kill itself with a signal, so
 *      its own exit status could not say "killed by SIGSEGV", and Exited/Signaled must be reported exactly as
 *      for a job without a PID namespace.
 *
 * The same code runs without an exec of this program when jw_spawn is called with JW_SPAWN_INIT_IN_PROCESS (by
 * jobworker-shim, which links it in as jw_init_main): the spawn child is then a copy of the small, single-threaded
 * supervisor rather than a thread of the server's memory, so it can stay behind as PID 1 without an exec.
 *
 * A failed step is reported to jw_spawn as { int32 step, int32 errno } on fd 4 (the error pipe), which is
 * close-on-exec: EOF without data tells jw_spawn that the target has exec'd, so JobRunner.Start throws the
 * same precise errors (not found, permission denied, bad working directory) as without isolation.
 *
 * argv: jobworker-init FLAGS UID GID CWD HIDE N CANDIDATE... ARGV0 ARGS...
 *   FLAGS: any of 'p' 'm' 'n' 'i' 'u' 'k' (or "-"); HIDE: a directory to mask ("" for none); N: number of
 *   candidates. 'i' (IPC namespace) and 'u' (UTS namespace) need no setup of their own beyond the /dev/shm and
 *   /dev/mqueue mounts with 'm': the kernel creates the IPC namespace empty, and the UTS namespace starts as a copy
 *   of the host's names, which the job keeps (so its host name still resolves).
 * The init's own environment is empty: it runs as root, and static glibc would honour GLIBC_TUNABLES (and
 * the like) from it. The job's environment, which the target gets, is on fd 5 (jw_env_fd's format); the rest
 * of the job's start state (rlimits, umask, oom_score_adj, priority, affinity) was set by jw_spawn before the
 * exec and is inherited.
 */
#define _GNU_SOURCE
#include "jobworker_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATUS_FD 3
#define ERROR_FD 4
#define ENV_FD 5

#define KEYCTL_JOIN_SESSION_KEYRING 1

/* The job's environment, read from ENV_FD. */
static char **job_env;

static __attribute__((noreturn)) void fail(int step, int err)
{
    int32_t report[2] = { step, err };
    ssize_t n;
    do {
        n = write(ERROR_FD, report, sizeof report);
    } while (n < 0 && errno == EINTR);
    _exit(127);
}

/* A fresh file system over a path that may be missing (a minimal root without /dev/mqueue), or of a type the kernel
 * lacks (no POSIX message queues): then the host has none there to hide either. */
static void mount_over(const char *source, const char *target, const char *type, unsigned long flags, const char *data)
{
    if (mount(source, target, type, flags, data) < 0 && errno != ENOENT && errno != ENODEV) {
        fail(JW_STEP_MOUNT, errno);
    }
}

static void setup_mounts(int fresh_proc, int fresh_ipc, const char *hide)
{
    /* Slave, not private: an unmount (or a new mount) on the host still reaches the job, so a file system the host
     * unmounts is not kept busy by a job's copy of it; and nothing mounted below propagates back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
        fail(JW_STEP_MOUNT, errno);
    }
    /* Before /tmp: a log directory under /tmp would vanish with the new /tmp anyway, and must exist here. */
    if (hide[0] != '\0' &&
        mount("jobworker-hidden", hide, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0) {
        fail(JW_STEP_MOUNT, errno);
    }
    /* Memory written here is charged to the job's cgroup (tmpfs pages belong to the writer's memcg). */
    if (mount("jobworker-tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) {
        fail(JW_STEP_MOUNT, errno);
    }
    if (fresh_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        fail(JW_STEP_MOUNT, errno);
    }
    if (fresh_ipc) {
        /* POSIX shared memory and semaphores are files in /dev/shm, not IPC-namespace objects: the IPC namespace
         * alone would leave them shared. The host's /dev/mqueue shows (and opens) the host's message queues
         * whatever the IPC namespace; a new mqueue mount shows the job's own. */
        mount_over("jobworker-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        mount_over("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
}

static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        fail(JW_STEP_NETWORK, errno);
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        fail(JW_STEP_NETWORK, errno);
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        fail(JW_STEP_NETWORK, errno);
    }
    close(s);
}

/* Like execvp over the caller's candidates: missing → next, EACCES remembered, anything else stops. */
static __attribute__((noreturn)) void exec_target(char **candidates, int count, char **argv)
{
    int err = ENOENT;
    int saw_eacces = 0;
    for (int i = 0; i < count; i++) {
        execve(candidates[i], argv, job_env);
        int e = errno;
        if (e == EACCES) {
            saw_eacces = 1;
        } else if (e != ENOENT && e != ENOTDIR) {
            err = e;
            saw_eacces = 0;
            break;
        }
    }
    fail(JW_STEP_EXEC, saw_eacces ? EACCES : err);
}

static int forwarded(int sig)
{
    switch (sig) {
    case SIGTERM:
    case SIGINT:
    case SIGHUP:
    case SIGQUIT:
    case SIGUSR1:
    case SIGUSR2:
    case SIGWINCH:
        return 1;
    default:
        return 0;
    }
}

int jw_init_main(int argc, char **argv)
{
    /* Neither pipe may reach the target past its exec. */
    (void)fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);
    (void)fcntl(ERROR_FD, F_SETFD, FD_CLOEXEC);

    int env_count = jw_read_env(ENV_FD, &job_env);
    if (env_count < 0) {
        fail(JW_STEP_ENVIRONMENT, -env_count);
    }
    close(ENV_FD);

    if (argc < 8) {
        fail(JW_STEP_ARGS, EINVAL);
    }
    const char *flags = argv[1];
    char *end = NULL;
    errno = 0;
    unsigned long uid = strtoul(argv[2], &end, 10);
    int bad = errno != 0 || *end != '\0';
    unsigned long gid = strtoul(argv[3], &end, 10);
    bad |= errno != 0 || *end != '\0';
    const char *cwd = argv[4];
    const char *hide = argv[5];
    long count = strtol(argv[6], &end, 10);
    bad |= *end != '\0' || count < 1 || count > argc - 8;
    if (bad) {
        fail(JW_STEP_ARGS, EINVAL);
    }
    char **candidates = &argv[7];
    char **target_argv = &argv[7 + count];
    int pid_ns = strchr(flags, 'p') != NULL;

    if (!pid_ns) {
        close(STATUS_FD);
    }
    if (strchr(flags, 'm') != NULL) {
        setup_mounts(pid_ns, strchr(flags, 'i') != NULL, hide);
    }
    if (strchr(flags, 'n') != NULL) {
        loopback_up();
    }

    /* glibc's wrappers are fine here: this is a process of its own, not a thread sharing the server's memory. */
    if (setgroups(0, NULL) < 0) {
        fail(JW_STEP_SETGROUPS, errno);
    }
    if (setgid((gid_t)gid) < 0) {
        fail(JW_STEP_SETGID, errno);
    }
    if (setuid((uid_t)uid) < 0) {
        fail(JW_STEP_SETUID, errno);
    }
    /* As the job's user, so the keyring is the job user's own; without it the job would share the session
     * keyring of the server, which no uid change drops. A kernel without keyrings (ENOSYS) shares nothing. */
    if (strchr(flags, 'k') != NULL && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS) {
        fail(JW_STEP_KEYRING, errno);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        fail(JW_STEP_NO_NEW_PRIVS, errno);
    }
    /* The credential change cleared the death signal jw_spawn set: if the supervisor dies, so does the job
     * (and, the init being PID 1, the kernel then kills everything in its PID namespace). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
        fail(JW_STEP_PDEATHSIG, errno);
    }
    /* A parent that died before that prctl never sends the signal. getppid() cannot tell (in a new PID
     * namespace it is 0 whoever the parent is), but the parent is blocked reading the error pipe until the
     * target has exec'd: if its read end is gone (POLLERR on our write end), so is the parent. */
    struct pollfd parent = { .fd = ERROR_FD, .events = POLLOUT };
    if (poll(&parent, 1, 0) < 0 || (parent.revents & POLLERR)) {
        _exit(127);
    }
    if (chdir(cwd) < 0) {
        fail(JW_STEP_CHDIR, errno);
    }

    if (!pid_ns) {
        exec_target(candidates, (int)count, target_argv);
    }

    /* Block everything before the fork so no signal is lost between fork and the wait loop; the target
     * restores the empty mask it would have had without isolation. */
    sigset_t all;
    sigset_t none;
    sigfillset(&all);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &all, NULL);

    /* vfork, not fork: we are suspended until the target execs, so it runs at once on our CPU instead of
     * waiting for a run queue slot (measured on a loaded 2-CPU host: fork added several ms at p50). The child
     * only calls setsid, sigprocmask, execve and, on failure, write + _exit. */
    pid_t target = vfork();
    if (target < 0) {
        fail(JW_STEP_FORK, errno);
    }
    if (target == 0) {
        /* Its own session and process group, as a job without isolation has: `kill 0` in the job must not
         * reach the init. */
        if (setsid() < 0) {
            fail(JW_STEP_SETSID, errno);
        }
        sigprocmask(SIG_SETMASK, &none, NULL);
        exec_target(candidates, (int)count, target_argv);
    }
    /* The target holds the error pipe until its exec; ours must go so jw_spawn sees EOF then. */
    close(ERROR_FD);

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0) {
            continue;
        }
        if (sig != SIGCHLD) {
            if (forwarded(sig)) {
                (void)kill(target, sig);
            }
            continue;
        }
        int status;
        pid_t reaped;
        while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
            if (reaped != target) {
                continue; /* an orphan re-parented to us */
            }
            ssize_t n;
            do {
                n = write(STATUS_FD, &status, sizeof status);
            } while (n < 0 && errno == EINTR);
            /* Exiting kills whatever is left in the namespace; the server then empties the cgroup. */
            _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    }
}

#ifndef JW_INIT_NO_MAIN
int main(int argc, char **argv)
{
    return jw_init_main(argc, argv);
}
#endif
