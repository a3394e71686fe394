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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
#ifndef SYS_keyctl
#define SYS_keyctl 250
#endif
#ifndef SYS_ioprio_set
#define SYS_ioprio_set 251
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#define JW_KEYCTL_JOIN_SESSION_KEYRING 1
#define JW_IOPRIO_WHO_PROCESS 1
/* Bits of the affinity mask the child asks for: every CPU up to this many; the kernel keeps those the cgroup's
 * cpuset allows. 8192 is the kernel's largest NR_CPUS on x86-64. */
#define JW_AFFINITY_BITS 8192

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
    int env_fd;      /* isolation: the job's environment for the init (becomes fd 5), or -1 */
    int start_state; /* JW_SPAWN_START_STATE and the struct has its fields */
    long parent_pid; /* getppid() the child expects; 0 when it cannot see its parent (new PID namespace) */
};

static const char *const jw_empty_env[] = { NULL };

/* Namespaces jw_spawn creates, always together with jobworker-init (JW_SPAWN_INIT). */
#define JW_NAMESPACES (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/* JW_SPAWN_INIT_IN_PROCESS: the child's error pipe, set only in the child (its memory is a copy of the caller's,
 * not shared), where child_fail reports instead of into the args struct. -1 in every other case. */
static int child_error_fd = -1;

static __attribute__((noreturn)) void child_fail(struct jw_spawn_args *a, int step, int err)
{
    if (child_error_fd >= 0) {
        int32_t report[2] = { step, err };
        (void)syscall(SYS_write, child_error_fd, report, sizeof report);
        syscall(SYS_exit, 127);
        __builtin_unreachable();
    }
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

/* n in decimal, without libc (the child may only call async-signal-safe code). */
static size_t format_int(char *buf, int n)
{
    char tmp[16];
    size_t len = 0;
    int negative = n < 0;
    unsigned int u = negative ? 0u - (unsigned int)n : (unsigned int)n;
    do {
        tmp[len++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t out = 0;
    if (negative) {
        buf[out++] = '-';
    }
    while (len > 0) {
        buf[out++] = tmp[--len];
    }
    return out;
}

/* JW_SPAWN_START_STATE, still as the spawner's user: lowering oom_score_adj or nice below the inherited value,
 * and raising a hard limit, need privileges the job's user does not have. Every value is set, not compared:
 * a write costs less than a read. */
static void reset_start_state(struct jw_spawn_args *a)
{
    struct rlimit64 nofile = { .rlim_cur = a->nofile_soft, .rlim_max = a->nofile_hard };
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &nofile, NULL) < 0) {
        child_fail(a, JW_STEP_RLIMIT, errno);
    }

    syscall(SYS_umask, a->umask & 0777);

    /* Per process and inherited across fork and exec: a spawner that protects itself from the OOM killer
     * (-1000) would otherwise make its jobs unkillable by it too. A vfork child's write stays its own (the
     * kernel only spreads it to other users of the mm when the writer is not a vfork child). */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        child_fail(a, JW_STEP_OOM_SCORE, errno);
    }
    char text[16];
    size_t len = format_int(text, a->oom_score_adj);
    if (syscall(SYS_write, fd, text, len) != (long)len) {
        child_fail(a, JW_STEP_OOM_SCORE, errno);
    }
    syscall(SYS_close, fd);

    /* Scheduling policy, nice and I/O priority are per thread and inherited from the spawning thread: a
     * real-time or idle spawner must not pass that on. SCHED_OTHER first: nice means nothing under SCHED_FIFO. */
    struct sched_param param = { .sched_priority = 0 };
    if (syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, &param) < 0 ||
        syscall(SYS_setpriority, PRIO_PROCESS, 0, a->nice) < 0 ||
        syscall(SYS_ioprio_set, JW_IOPRIO_WHO_PROCESS, 0, 0) < 0) {
        child_fail(a, JW_STEP_PRIORITY, errno);
    }

    /* Every CPU: the kernel intersects the mask with the CPUs the job's cpuset allows. */
    unsigned long mask[JW_AFFINITY_BITS / (8 * sizeof(unsigned long))];
    memset(mask, 0xff, sizeof mask);
    if (syscall(SYS_sched_setaffinity, 0, sizeof mask, mask) < 0) {
        child_fail(a, JW_STEP_AFFINITY, errno);
    }
}

/* A fresh, empty session keyring owned by the current (the job's) user. A kernel without keyrings (ENOSYS)
 * has nothing to share either. */
static void join_session_keyring(struct jw_spawn_args *a)
{
    if (syscall(SYS_keyctl, JW_KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS) {
        child_fail(a, JW_STEP_KEYRING, errno);
    }
}

static int child_main(void *p)
{
    struct jw_child *c = p;
    struct jw_spawn_args *a = c->args;
    int in_process = (a->flags & JW_SPAWN_INIT_IN_PROCESS) != 0;
    if (in_process) {
        child_error_fd = c->error_fd;
    }

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

    /* The program's fds 0..count-1. A source below count that is not already in its own place is moved above
     * first, so that no dup2 overwrites a source still needed (a caller started with fds 0-2 closed has its
     * pipes and /dev/null there: dotnet/runtime's pal_process.c guards against the same). */
    int src[6] = { a->stdin_fd, a->stdout_fd, a->stderr_fd, -1, -1, -1 };
    int count = 3;
    if (a->flags & JW_SPAWN_INIT) {
        /* jobworker-init finds its status pipe on fd 3 (without one, a harmless copy of stdin), its error pipe
         * on fd 4 and the job's environment on fd 5. */
        src[3] = c->status_fd >= 0 ? c->status_fd : a->stdin_fd;
        src[4] = c->error_fd;
        src[5] = c->env_fd;
        count = 6;
    }
    for (int i = 0; i < count; i++) {
        if (src[i] >= 0 && src[i] < count && src[i] != i && (src[i] = fcntl(src[i], F_DUPFD, count)) < 0) {
            child_fail(a, JW_STEP_STDIO, errno);
        }
    }
    for (int i = 0; i < count; i++) {
        if (move_fd(src[i], i) < 0) {
            child_fail(a, JW_STEP_STDIO, errno);
        }
    }
    int first_closed_fd = count;
    if (in_process) {
        child_error_fd = 4;
    }

    if (c->start_state) {
        reset_start_state(a);
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

    /* After the uid change, so the keyring belongs to the job's user (and counts against its key quota); an
     * isolated job's init joins one after its own uid change. Without this the job would share the spawner's
     * session keyring, which a uid change does not drop. */
    if (c->start_state && !(a->flags & JW_SPAWN_INIT)) {
        join_session_keyring(a);
    }

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        child_fail(a, JW_STEP_NO_NEW_PRIVS, errno);
    }

    /* After the uid change: changing credentials clears the parent-death signal. */
    if (a->pdeath_signal > 0) {
        if (prctl(PR_SET_PDEATHSIG, a->pdeath_signal, 0, 0, 0) < 0) {
            child_fail(a, JW_STEP_PDEATHSIG, errno);
        }
        /* A parent that died before the prctl never sends the signal: we would run on as an orphan. In a new
         * PID namespace the parent is invisible (getppid() is 0); jobworker-init checks there instead. */
        if (c->parent_pid != 0 && syscall(SYS_getppid) != c->parent_pid) {
            child_fail(a, JW_STEP_PDEATHSIG, ESRCH);
        }
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

    if (in_process) {
        /* The init's code, without its exec: this process is a copy of a single-threaded caller, so it may run
         * ordinary C from here on. It reads the job's environment from fd 5 like the exec'd init; its own is the
         * caller's (jobworker-shim's: empty). */
        int argc = 0;
        while (a->argv[argc] != NULL) {
            argc++;
        }
        (void)prctl(PR_SET_NAME, "jobworker-init", 0, 0, 0);
        child_error_fd = -1;
        _exit(jw_init_main(argc, (char **)a->argv));
    }

    /* jobworker-init runs as root: it gets no environment of the job's (static glibc would honour
     * GLIBC_TUNABLES from it); it reads the job's from fd 5. */
    const char *const *envp = (a->flags & JW_SPAWN_INIT) ? jw_empty_env : a->envp;

    /* Like execvp: a missing candidate moves on, EACCES is remembered, anything else stops the search. */
    int err = ENOENT;
    int saw_eacces = 0;
    for (const char *const *path = a->exec_paths; *path != NULL; path++) {
        syscall(SYS_execve, *path, a->argv, envp);
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

    /* A copy of the caller stays behind as PID 1: only for a caller that has the init's code and no other threads. */
    if ((a->flags & JW_SPAWN_INIT_IN_PROCESS) && (!(a->flags & JW_SPAWN_INIT) || jw_init_main == NULL)) {
        a->failed_step = JW_STEP_ARGS;
        a->error = EINVAL;
        return -1;
    }
    int in_process = (a->flags & JW_SPAWN_INIT_IN_PROCESS) != 0;
    uint64_t share = in_process ? 0 : (uint64_t)(CLONE_VM | CLONE_VFORK);

    int start_state = (a->flags & JW_SPAWN_START_STATE) != 0;
    if (start_state && (a->size < sizeof *a || a->nofile_soft > a->nofile_hard || a->umask > 0777 ||
                        a->oom_score_adj < -1000 || a->oom_score_adj > 1000 || a->nice < -20 || a->nice > 19)) {
        a->failed_step = JW_STEP_ARGS;
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

    int env_fd = -1;
    if (a->flags & JW_SPAWN_INIT) {
        env_fd = jw_env_fd(a->envp);
        if (env_fd < 0) {
            a->failed_step = JW_STEP_ENVIRONMENT;
            a->error = -env_fd;
            close_pipe(error_pipe);
            return -1;
        }
    }

    void *stack = mmap(NULL, JW_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        a->failed_step = JW_STEP_CLONE;
        a->error = errno;
        close_pipe(error_pipe);
        if (env_fd >= 0) {
            close(env_fd);
        }
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

    struct jw_child child = {
        .args = a,
        .join_cgroup = 0,
        .status_fd = status_fd,
        .error_fd = error_pipe[1],
        .env_fd = env_fd,
        .start_state = start_state,
        .parent_pid = (a->namespace_flags & CLONE_NEWPID) ? 0 : (long)getpid(),
    };
    int pidfd = -1;
    long pid = -1;
    int clone_errno = 0;
    int tried_clone3 = 0;

#if JW_HAVE_CLONE3
    if (!(a->flags & JW_SPAWN_NO_CLONE3)) {
        struct jw_clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = share | CLONE_PIDFD | a->namespace_flags;
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
                      (int)share | CLONE_PIDFD | (int)a->namespace_flags | SIGCHLD, &child, &pidfd);
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
    if (env_fd >= 0) {
        close(env_fd);
    }

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

int jw_env_fd(const char *const *envp)
{
    int fd = (int)syscall(SYS_memfd_create, "jobworker-env", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return -errno;
    }
    for (const char *const *e = envp; *e != NULL; e++) {
        const char *p = *e;
        size_t left = strlen(p) + 1;
        while (left > 0) {
            ssize_t n = write(fd, p, left);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                int err = n < 0 ? errno : EIO;
                close(fd);
                return -err;
            }
            p += n;
            left -= (size_t)n;
        }
    }
    /* Sealed: the reader can trust that what it reads is what was written, whoever else holds the fd. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Larger than any environment execve accepts (ARG_MAX is a quarter of the stack limit, at most 6 MiB by
 * default): a file this big is not an environment. */
#define JW_ENV_MAX (64 << 20)

int jw_read_env(int fd, char ***out)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (st.st_size < 0 || st.st_size > JW_ENV_MAX) {
        return -E2BIG;
    }
    size_t size = (size_t)st.st_size;
    char *block = malloc(size + 1);
    if (block == NULL) {
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, block + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            free(block);
            return -err;
        }
        got += (size_t)n;
    }
    if (size > 0 && block[size - 1] != '\0') {
        free(block);
        return -EINVAL;
    }
    size_t count = 0;
    for (size_t i = 0; i < size; i++) {
        count += block[i] == '\0';
    }
    /* One allocation: the pointers first, the strings after them. */
    size_t pointers = (count + 1) * sizeof(char *);
    char *grown = realloc(block, pointers + size + 1);
    if (grown == NULL) {
        free(block);
        return -ENOMEM;
    }
    memmove(grown + pointers, grown, size);
    char **list = (char **)(void *)grown;
    char *strings = grown + pointers;
    size_t k = 0;
    for (size_t i = 0; i < size; i += strlen(strings + i) + 1) {
        list[k++] = strings + i;
    }
    list[k] = NULL;
    *out = list;
    return (int)k;
}
