/*
 * JobWorker spawn library.
 *
 * Why C: .NET cannot run managed code between fork and exec, and System.Diagnostics.Process can neither
 * place a child in a cgroup nor drop supplementary groups. Like dotnet/runtime's pal_process.c and runc's
 * nsexec.c, the fork/exec dance lives here, and the child runs only async-signal-safe C and raw syscalls.
 *
 * The child is created with clone3(CLONE_VM|CLONE_VFORK|CLONE_PIDFD|CLONE_INTO_CGROUP): it shares our
 * memory (cost independent of the server's heap size), we are suspended until it execs or exits, it is
 * born inside the job's cgroup, and we get a pidfd. Failures are written into the shared args struct.
 */
#define _GNU_SOURCE
#include "jobworker_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* The kernel's struct clone_args (v2, with cgroup). Declared here so old headers do not matter. */
struct jw_clone_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

/* The kernel's sigaction layout for rt_sigaction (not glibc's). */
struct jw_kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

#define JW_STACK_SIZE (64 * 1024)

struct jw_child {
    struct jw_spawn_args *args;
    int join_cgroup; /* fallback: write cgroup.procs from the child */
    int status_fd;   /* isolation: the init's status pipe (becomes fd 3), or -1 */
    int error_fd;    /* isolation: write end of the init's error pipe (becomes fd 4), or -1 */
};

/* Namespaces jw_spawn creates, always together with jobworker-init (JW_SPAWN_INIT). */
#define JW_NAMESPACES (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET)

static __attribute__((noreturn)) void child_fail(struct jw_spawn_args *a, int step, int err)
{
    /* Shared memory (CLONE_VM): the parent reads these once we are gone. */
    __atomic_store_n(&a->error, err, __ATOMIC_RELAXED);
    __atomic_store_n(&a->failed_step, step, __ATOMIC_RELEASE);
    syscall(SYS_exit, 127);
    __builtin_unreachable();
}

static void close_pipe(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

static int move_fd(int from, int to)
{
    if (from == to) {
        /* dup2 onto itself keeps FD_CLOEXEC; clear it so the fd survives exec. */
        return fcntl(to, F_SETFD, 0);
    }
    return dup2(from, to) < 0 ? -1 : 0;
}

static int child_main(void *p)
{
    struct jw_child *c = p;
    struct jw_spawn_args *a = c->args;

    /* Every disposition back to default (SIGPIPE included: .NET ignores it and children would inherit that)
     * while all signals are still blocked (the parent blocked them), so no managed handler can run here. */
    struct jw_kernel_sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) {
            continue;
        }
        syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    }

    if (c->join_cgroup && a->cgroup_fd >= 0) {
        /* Fallback without CLONE_INTO_CGROUP: join before exec ("0" means the writing process). */
        int fd = openat(a->cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) {
            child_fail(a, JW_STEP_CGROUP, errno);
        }
        close(fd);
    }

    if ((a->flags & JW_SPAWN_SETSID) && setsid() < 0) {
        child_fail(a, JW_STEP_SETSID, errno);
    }

    if (move_fd(a->stdin_fd, 0) < 0 || move_fd(a->stdout_fd, 1) < 0 || move_fd(a->stderr_fd, 2) < 0) {
        child_fail(a, JW_STEP_STDIO, errno);
    }

    int first_closed_fd = 3;
    if (a->flags & JW_SPAWN_INIT) {
        /* jobworker-init finds its status pipe on fd 3 and its error pipe on fd 4. Move both above 9 first so
         * neither dup2 can overwrite the other's source. */
        int status = c->status_fd >= 0 ? fcntl(c->status_fd, F_DUPFD, 10) : -1;
        int error = fcntl(c->error_fd, F_DUPFD, 10);
        if ((c->status_fd >= 0 && status < 0) || error < 0 || dup2(error, 4) < 0) {
            child_fail(a, JW_STEP_STDIO, errno);
        }
        if (status >= 0 ? dup2(status, 3) < 0 : dup2(a->stdin_fd >= 0 ? 0 : 4, 3) < 0) {
            /* Without a status pipe fd 3 is a harmless copy of stdin (/dev/null), so fd 4 stays fd 4. */
            child_fail(a, JW_STEP_STDIO, errno);
        }
        first_closed_fd = 5;
    }

    if (a->flags & JW_SPAWN_SET_CREDENTIALS) {
        /* Raw syscalls: glibc's wrappers broadcast the change to every thread of the process (SIGSETXID),
         * and with CLONE_VM those would be the server's threads. */
        if (syscall(SYS_setgroups, 0, NULL) < 0) {
            child_fail(a, JW_STEP_SETGROUPS, errno);
        }
        if (syscall(SYS_setgid, a->gid) < 0) {
            child_fail(a, JW_STEP_SETGID, errno);
        }
        if (syscall(SYS_setuid, a->uid) < 0) {
            child_fail(a, JW_STEP_SETUID, errno);
        }
    }

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        child_fail(a, JW_STEP_NO_NEW_PRIVS, errno);
    }

    /* After the uid change: changing credentials clears the parent-death signal. */
    if (a->pdeath_signal > 0 && prctl(PR_SET_PDEATHSIG, a->pdeath_signal, 0, 0, 0) < 0) {
        child_fail(a, JW_STEP_PDEATHSIG, errno);
    }

    /* As the job's user, so a directory the user may not enter is reported as such. */
    if (a->cwd != NULL && chdir(a->cwd) < 0) {
        child_fail(a, JW_STEP_CHDIR, errno);
    }

    if (syscall(SYS_close_range, first_closed_fd, ~0U, 0) < 0) {
        if (errno != ENOSYS) {
            child_fail(a, JW_STEP_CLOSE_FDS, errno);
        }
        for (int fd = first_closed_fd; fd < 65536; fd++) {
            close(fd);
        }
    }

    /* Unblock everything last: the job starts with an empty mask. */
    uint64_t none = 0;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8) < 0) {
        child_fail(a, JW_STEP_SIGNALS, errno);
    }

    /* Like execvp: a missing candidate moves on, EACCES is remembered, anything else stops the search. */
    int err = ENOENT;
    int saw_eacces = 0;
    for (const char *const *path = a->exec_paths; *path != NULL; path++) {
        syscall(SYS_execve, *path, a->argv, a->envp);
        int e = errno;
        if (e == EACCES) {
            saw_eacces = 1;
        } else if (e != ENOENT && e != ENOTDIR) {
            err = e;
            saw_eacces = 0;
            break;
        }
    }
    child_fail(a, JW_STEP_EXEC, saw_eacces ? EACCES : err);
}

#if defined(__x86_64__)
/* clone3 with a child function: after the syscall the child runs on its new stack, so it must not return
 * into this C frame. fn and arg ride in registers the syscall preserves. */
static long clone3_with_fn(struct jw_clone_args *ca, int (*fn)(void *), void *arg)
{
    register long rax __asm__("rax") = SYS_clone3;
    register long rdi __asm__("rdi") = (long)ca;
    register long rsi __asm__("rsi") = (long)sizeof *ca;
    register long rdx __asm__("rdx") = (long)fn;
    register long r10 __asm__("r10") = (long)arg;
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        /* child: fresh 16-byte aligned stack, no frame to return to */
        "xor %%ebp, %%ebp\n\t"
        "mov %%r10, %%rdi\n\t"
        "call *%%rdx\n\t"
        "mov %%eax, %%edi\n\t"
        "mov $60, %%eax\n\t" /* SYS_exit */
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "+r"(rax)
        : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10)
        : "rcx", "r11", "memory", "cc");
    return rax;
}
#define JW_HAVE_CLONE3 1
#else
#define JW_HAVE_CLONE3 0
#endif

int jw_spawn(struct jw_spawn_args *a)
{
    if (a == NULL || a->size < offsetof(struct jw_spawn_args, status_fd) || a->exec_paths == NULL || a->argv == NULL ||
        a->envp == NULL) {
        if (a != NULL) {
            a->failed_step = JW_STEP_ARGS;
            a->error = EINVAL;
        }
        return -1;
    }
    a->pid = -1;
    a->pidfd = -1;
    a->failed_step = JW_STEP_NONE;
    a->error = 0;
    a->used_clone3 = 0;

    int status_fd = a->size >= offsetof(struct jw_spawn_args, reserved) ? a->status_fd : -1;
    if ((a->namespace_flags & ~(uint64_t)JW_NAMESPACES) != 0 ||
        (a->namespace_flags != 0 && !(a->flags & JW_SPAWN_INIT))) {
        /* A PID namespace without an init would make the job PID 1 (deaf to SIGTERM); refuse, never ignore. */
        a->failed_step = JW_STEP_NAMESPACES;
        a->error = EINVAL;
        return -1;
    }

    /* Isolation: jobworker-init reports a failed setup step (or the target's failed exec) as 8 bytes on this
     * pipe; EOF without data means the target has exec'd. */
    int error_pipe[2] = { -1, -1 };
    if ((a->flags & JW_SPAWN_INIT) && pipe2(error_pipe, O_CLOEXEC) < 0) {
        a->failed_step = JW_STEP_CLONE;
        a->error = errno;
        return -1;
    }

    void *stack = mmap(NULL, JW_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        a->failed_step = JW_STEP_CLONE;
        a->error = errno;
        close_pipe(error_pipe);
        return -1;
    }

    /* The child shares our mm (CLONE_VM), and a uid change in it resets the mm's dumpable flag to
     * fs.suid_dumpable (commit_creds), which would make the server itself non-dumpable (no core dumps, no
     * dotnet-dump, /proc/<pid> owned by root). Remember the flag to restore it once the child has exec'd. */
    int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);

    /* Block every signal (glibc's internal ones too, hence the raw syscall) so none is delivered to the child
     * before it has reset the handlers it inherited from the runtime. */
    uint64_t all = ~0ULL;
    uint64_t old = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);

    struct jw_child child = { .args = a, .join_cgroup = 0, .status_fd = status_fd, .error_fd = error_pipe[1] };
    int pidfd = -1;
    long pid = -1;
    int clone_errno = 0;
    int tried_clone3 = 0;

#if JW_HAVE_CLONE3
    if (!(a->flags & JW_SPAWN_NO_CLONE3)) {
        struct jw_clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | a->namespace_flags;
        if (a->cgroup_fd >= 0) {
            ca.flags |= CLONE_INTO_CGROUP;
            ca.cgroup = (uint64_t)a->cgroup_fd;
        }
        ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
        ca.exit_signal = SIGCHLD;
        ca.stack = (uint64_t)(uintptr_t)stack;
        ca.stack_size = JW_STACK_SIZE;
        tried_clone3 = 1;
        pid = clone3_with_fn(&ca, child_main, &child);
        if (pid < 0) {
            clone_errno = (int)-pid;
        } else {
            a->used_clone3 = 1;
        }
    }
#endif

    /* Seccomp profiles may refuse clone3 (ENOSYS/EPERM); old kernels lack the larger struct (E2BIG). */
    if (!tried_clone3 || clone_errno == ENOSYS || clone_errno == EPERM || clone_errno == E2BIG) {
        child.join_cgroup = 1;
        clone_errno = 0;
        int r = clone(child_main, (char *)stack + JW_STACK_SIZE,
                      CLONE_VM | CLONE_VFORK | CLONE_PIDFD | (int)a->namespace_flags | SIGCHLD, &child, &pidfd);
        if (r < 0) {
            clone_errno = errno;
            pid = -1;
        } else {
            pid = r;
        }
    }

    int saved = clone_errno;
    if (dumpable > 0 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != dumpable) {
        (void)prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    }
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
    munmap(stack, JW_STACK_SIZE);

    if (pid < 0) {
        close_pipe(error_pipe);
        int namespace_error = a->namespace_flags != 0 && (saved == EPERM || saved == ENOSPC || saved == EUSERS || saved == EINVAL);
        int cgroup_error = a->cgroup_fd >= 0 && saved != EAGAIN && saved != ENOMEM && saved != EINVAL;
        a->failed_step = namespace_error ? JW_STEP_NAMESPACES : cgroup_error ? JW_STEP_CGROUP : JW_STEP_CLONE;
        a->error = saved;
        return -1;
    }

    if (error_pipe[0] >= 0) {
        /* Only the init (and, until its exec, the target) may hold the write end, or EOF never comes. */
        close(error_pipe[1]);
        error_pipe[1] = -1;
        if (__atomic_load_n(&a->failed_step, __ATOMIC_ACQUIRE) == JW_STEP_NONE) {
            int32_t report[2];
            size_t got = 0;
            while (got < sizeof report) {
                ssize_t n = read(error_pipe[0], (char *)report + got, sizeof report - got);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    break;
                }
                got += (size_t)n;
            }
            if (got == sizeof report) {
                a->error = report[1];
                __atomic_store_n(&a->failed_step, report[0], __ATOMIC_RELEASE);
            }
        }
        close(error_pipe[0]);
    }

    if (__atomic_load_n(&a->failed_step, __ATOMIC_ACQUIRE) != JW_STEP_NONE) {
        /* The child reported its failure and exited: reap it so no zombie stays behind. */
        siginfo_t si;
        while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR) {
        }
        close(pidfd);
        return -1;
    }

    a->pid = (int32_t)pid;
    a->pidfd = pidfd;
    return 0;
}

int jw_init_status(int fd, int32_t *kind, int32_t *code)
{
    int status = 0;
    ssize_t n;
    do {
        n = read(fd, &status, sizeof status);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN ? 0 : -errno;
    }
    if (n != sizeof status) {
        return 0;
    }
    if (WIFEXITED(status)) {
        *kind = 1;
        *code = WEXITSTATUS(status);
    } else {
        *kind = 2;
        *code = WTERMSIG(status);
    }
    return 1;
}

int jw_pidfd_wait(int pidfd, int nohang, int32_t *kind, int32_t *code)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do {
        r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | (nohang ? WNOHANG : 0));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return -errno;
    }
    if (si.si_pid == 0) {
        *kind = 0;
        *code = 0;
        return 0;
    }
    if (si.si_code == CLD_EXITED) {
        *kind = 1;
    } else {
        *kind = 2;
    }
    *code = si.si_status;
    return 0;
}

int jw_pidfd_send_signal(int pidfd, int sig)
{
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int jw_pidfd_open(int pid)
{
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

int jw_pipe(int32_t fds[2], int32_t size)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        return -errno;
    }
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (size > 0) {
        /* Best effort: an unprivileged server may exceed /proc/sys/fs/pipe-max-size; the default still works. */
        (void)fcntl(p[1], F_SETPIPE_SZ, size);
    }
    fds[0] = p[0];
    fds[1] = p[1];
    return 0;
}

int jw_open_directory(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int jw_write_file(const char *path, const char *data, int32_t length)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n;
    do {
        n = write(fd, data, (size_t)length);
    } while (n < 0 && errno == EINTR);
    int e = n < 0 ? errno : 0;
    close(fd);
    if (n >= 0 && n != length) {
        return -EIO;
    }
    return -e;
}
