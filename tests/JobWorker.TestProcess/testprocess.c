/*
 * jobworker-testprocess: the dummy job the engine's tests drive. It is C, not .NET, so that fork, setsid,
 * signal dispositions and memory use are exactly what a test asks for (a .NET child would ignore SIGPIPE,
 * start threads, and turn a memory limit into a managed OutOfMemory instead of a kernel OOM kill).
 *
 * Arguments are steps run in order, for example:
 *   jobworker-testprocess print 1000 stderr 10 sleep 0.5 exit 3
 *
 *   print N          write N bytes ('a'..'z' cycling, '\n' every 64th) to stdout
 *   stderr N         the same to stderr
 *   echo TEXT        write TEXT and a newline to stdout
 *   sleep S          sleep S seconds (fractions allowed)
 *   exit N           exit with code N
 *   signal N         kill itself with signal N
 *   ignore-sigterm   ignore SIGTERM from now on
 *   fork K           start K children that sleep until killed (they ignore SIGTERM if asked before)
 *   ticker MS        start a child that writes "tick" to stdout every MS ms until a write fails (SIGPIPE
 *                    is default, so it dies once the pipe's read end is closed); prints "ticker PID"
 *   detach           setsid + double fork: a grandchild outside our session sleeps until killed;
 *                    prints "grandchild PID"
 *   alloc MB         allocate and touch MB MiB
 *   busy S           spin on the CPU for S seconds of wall-clock time
 *   cpu S            spin until the process has used S seconds of CPU time
 *   forkbomb N       try N forks (children sleep); prints "forked OK failed F errno E"
 *   forkbomb-forever a real fork bomb: every process (children too) forks forever, pausing 1 ms after
 *                    a failed fork; the first process prints "contained errno E" at its first failure
 *   write-file P N   write N bytes to file P
 *   write-direct P M write M MiB to P with O_DIRECT (bypasses the page cache, so io.max applies at once),
 *                    64 KiB per write (io.stat then advances in 64 KiB steps a test can sample finely);
 *                    prints "wrote M MiB in S s"
 *   ids              print "uid=U gid=G groups=N[:g1,g2]"
 *   sigpipe          print "sigpipe=default" or "sigpipe=ignored"
 *   fds              print "fds=N" (open file descriptors)
 *   cwd              print "cwd=PATH"
 *   env NAME         print "NAME=value" or "NAME unset"
 *   cgroup           print "cgroup=PATH" (the cgroup v2 line of /proc/self/cgroup)
 *   close-output     close stdout and stderr (the job goes on without its output pipe)
 *   probe PID        try what another user's job must not be able to do to process PID, in this order, and print
 *                    "kill0=R environ=R fd1=R ptrace=R kill9=R", each R "ok" or the errno's name: kill(PID, 0),
 *                    open+read /proc/PID/environ, open /proc/PID/fd/1, ptrace(PTRACE_SEIZE), kill(PID, SIGKILL)
 *   start-state      print what the process started with, one "key=value" line each: nofile=SOFT:HARD,
 *                    umask=OOOO (octal), oom_score_adj=N, nice=N, sched=POLICY, ioprio_class=C,
 *                    cpus=LIST (Cpus_allowed_list), keyring=SERIAL (the session keyring's, KEYCTL_GET_KEYRING_ID
 *                    without creating one) and keyring_desc=type;uid;gid;perm;description (KEYCTL_DESCRIBE)
 *   without-clone3 CMD ARGS...
 *                    (first argument only) exec CMD with a seccomp filter under which clone3 fails with ENOSYS, as
 *                    on kernels before 5.3 and under container profiles that refuse it; CMD and everything it
 *                    starts inherit the filter (so their clone3 users must fall back to clone)
 *   killed-at-pipe-size CMD ARGS...
 *                    (first argument only) the same with a filter that kills any process calling
 *                    fcntl(F_SETPIPE_SZ): only a job's supervisor does, right before it starts the job, so every
 *                    supervisor dies before its report while the server lives
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <grp.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stddef.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            exit(120);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void print_bytes(int fd, long n)
{
    static char buf[65536];
    static int filled;
    if (!filled) {
        for (int i = 0; i < (int)sizeof buf; i++) {
            buf[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
        }
        filled = 1;
    }
    while (n > 0) {
        size_t chunk = n > (long)sizeof buf ? sizeof buf : (size_t)n;
        write_all(fd, buf, chunk);
        n -= (long)chunk;
    }
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) {
        write_all(1, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
}

static void sleep_seconds(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void sleep_forever(void)
{
    for (;;) {
        pause();
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *errno_name(int e)
{
    static char other[32];
    switch (e) {
    case 0:
        return "ok";
    case EPERM:
        return "EPERM";
    case EACCES:
        return "EACCES";
    case ESRCH:
        return "ESRCH";
    case ENOENT:
        return "ENOENT";
    default:
        snprintf(other, sizeof other, "errno%d", e);
        return other;
    }
}

static int probe_open(const char *path, int read_it)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    char buf[256];
    int err = read_it && read(fd, buf, sizeof buf) < 0 ? errno : 0;
    close(fd);
    return err;
}

static void probe(pid_t pid)
{
    char path[64];
    int kill0 = kill(pid, 0) < 0 ? errno : 0;
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    int environ_err = probe_open(path, 1);
    snprintf(path, sizeof path, "/proc/%d/fd/1", (int)pid);
    int fd1 = probe_open(path, 0);
    int traced = ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0 ? errno : 0;
    int kill9 = kill(pid, SIGKILL) < 0 ? errno : 0;
    say("kill0=%s ", errno_name(kill0));
    say("environ=%s ", errno_name(environ_err));
    say("fd1=%s ", errno_name(fd1));
    say("ptrace=%s ", errno_name(traced));
    say("kill9=%s\n", errno_name(kill9));
}

#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

/* Filters start alike: a syscall of another architecture is allowed, then the syscall number is loaded. */
#define FILTER_PROLOGUE                                                               \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),          \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),                     \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                                     \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

/* exec argv[0] under a seccomp filter: "without-clone3" answers ENOSYS to clone3, "killed-at-pipe-size" kills the
 * process at fcntl(F_SETPIPE_SZ). Returns only if that failed. */
static int exec_filtered(const char *mode, char **argv)
{
    struct sock_filter without_clone3[] = {
        FILTER_PROLOGUE,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter killed_at_pipe_size[] = {
        FILTER_PROLOGUE,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fcntl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETPIPE_SZ, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    int clone3 = strcmp(mode, "without-clone3") == 0;
    struct sock_fprog program = {
        .len = clone3 ? sizeof without_clone3 / sizeof without_clone3[0] : sizeof killed_at_pipe_size / sizeof killed_at_pipe_size[0],
        .filter = clone3 ? without_clone3 : killed_at_pipe_size,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) < 0) {
        perror("seccomp");
        return 126;
    }
    execv(argv[0], argv);
    perror("exec");
    return 127;
}

int main(int argc, char **argv)
{
    if (argc > 2 && (strcmp(argv[1], "without-clone3") == 0 || strcmp(argv[1], "killed-at-pipe-size") == 0)) {
        return exec_filtered(argv[1], argv + 2);
    }
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : "0";
        if (strcmp(op, "print") == 0) {
            print_bytes(1, atol(arg));
            i++;
        } else if (strcmp(op, "stderr") == 0) {
            print_bytes(2, atol(arg));
            i++;
        } else if (strcmp(op, "echo") == 0) {
            say("%s\n", arg);
            i++;
        } else if (strcmp(op, "sleep") == 0) {
            sleep_seconds(atof(arg));
            i++;
        } else if (strcmp(op, "exit") == 0) {
            return atoi(arg);
        } else if (strcmp(op, "signal") == 0) {
            signal(atoi(arg), SIG_DFL);
            raise(atoi(arg));
            i++;
        } else if (strcmp(op, "ignore-sigterm") == 0) {
            signal(SIGTERM, SIG_IGN);
        } else if (strcmp(op, "fork") == 0) {
            int k = atoi(arg);
            for (int c = 0; c < k; c++) {
                pid_t pid = fork();
                if (pid == 0) {
                    sleep_forever();
                }
            }
            i++;
        } else if (strcmp(op, "ticker") == 0) {
            double interval = atof(arg) / 1000.0;
            pid_t pid = fork();
            if (pid == 0) {
                for (;;) {
                    write_all(1, "tick\n", 5);
                    sleep_seconds(interval);
                }
            }
            say("ticker %d\n", (int)pid);
            i++;
        } else if (strcmp(op, "detach") == 0) {
            int p[2];
            if (pipe(p) < 0) {
                return 121;
            }
            pid_t mid = fork();
            if (mid == 0) {
                setsid();
                pid_t grand = fork();
                if (grand == 0) {
                    close(p[0]);
                    pid_t me = getpid();
                    write_all(p[1], (const char *)&me, sizeof me);
                    close(p[1]);
                    signal(SIGTERM, SIG_IGN); /* an escapee that also resists a polite stop */
                    sleep_forever();
                }
                _exit(0);
            }
            close(p[1]);
            pid_t grand = 0;
            if (read(p[0], &grand, sizeof grand) != (ssize_t)sizeof grand) {
                return 122;
            }
            close(p[0]);
            waitpid(mid, NULL, 0);
            say("grandchild %d\n", (int)grand);
        } else if (strcmp(op, "alloc") == 0) {
            long mb = atol(arg);
            for (long m = 0; m < mb; m++) {
                char *block = malloc(1 << 20);
                if (block == NULL) {
                    say("alloc failed at %ld MiB\n", m);
                    return 123;
                }
                memset(block, 1, 1 << 20);
            }
            say("allocated %ld MiB\n", mb);
            i++;
        } else if (strcmp(op, "busy") == 0) {
            double end = now() + atof(arg);
            volatile unsigned long x = 0;
            while (now() < end) {
                for (int k = 0; k < 100000; k++) {
                    x += (unsigned long)k;
                }
            }
            i++;
        } else if (strcmp(op, "cpu") == 0) {
            double want = atof(arg);
            volatile unsigned long x = 0;
            for (;;) {
                struct timespec ts;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
                if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= want) {
                    break;
                }
                for (int k = 0; k < 100000; k++) {
                    x += (unsigned long)k;
                }
            }
            i++;
        } else if (strcmp(op, "forkbomb") == 0) {
            int n = atoi(arg);
            int ok = 0, failed = 0, err = 0;
            for (int c = 0; c < n; c++) {
                pid_t pid = fork();
                if (pid == 0) {
                    sleep_forever();
                } else if (pid < 0) {
                    failed++;
                    err = errno;
                } else {
                    ok++;
                }
            }
            say("forked %d failed %d errno %d\n", ok, failed, err);
            i++;
        } else if (strcmp(op, "forkbomb-forever") == 0) {
            pid_t first = getpid();
            int reported = 0;
            for (;;) {
                pid_t pid = fork();
                if (pid < 0) {
                    if (!reported && getpid() == first) {
                        say("contained errno %d\n", errno);
                        reported = 1;
                    }
                    sleep_seconds(0.001);
                }
            }
        } else if (strcmp(op, "write-file") == 0) {
            const char *path = arg;
            long n = i + 2 < argc ? atol(argv[i + 2]) : 0;
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) {
                say("open %s failed errno %d\n", path, errno);
                return 124;
            }
            print_bytes(fd, n);
            fsync(fd);
            close(fd);
            i += 2;
        } else if (strcmp(op, "write-direct") == 0) {
            const char *path = arg;
            long mb = i + 2 < argc ? atol(argv[i + 2]) : 0;
            int fd = open(path, O_WRONLY | O_CREAT | O_DIRECT, 0644);
            void *block = NULL;
            if (fd < 0 || posix_memalign(&block, 4096, 64 << 10) != 0) {
                say("open %s failed errno %d\n", path, errno);
                return 124;
            }
            memset(block, 7, 64 << 10);
            double start = now();
            for (long k = 0; k < mb * 16; k++) {
                if (write(fd, block, 64 << 10) != 64 << 10) {
                    say("write failed errno %d\n", errno);
                    return 124;
                }
            }
            close(fd);
            say("wrote %ld MiB in %.2f s\n", mb, now() - start);
            i += 2;
        } else if (strcmp(op, "ids") == 0) {
            gid_t groups[256];
            int n = getgroups(256, groups);
            char list[2048] = "";
            size_t used = 0;
            for (int g = 0; g < n && used < sizeof list - 16; g++) {
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%u", g ? "," : ":", (unsigned)groups[g]);
            }
            say("uid=%u gid=%u groups=%d%s\n", (unsigned)getuid(), (unsigned)getgid(), n, list);
        } else if (strcmp(op, "sigpipe") == 0) {
            struct sigaction sa;
            sigaction(SIGPIPE, NULL, &sa);
            say("sigpipe=%s\n", sa.sa_handler == SIG_IGN ? "ignored" : "default");
        } else if (strcmp(op, "fds") == 0) {
            int count = 0;
            DIR *d = opendir("/proc/self/fd");
            if (d != NULL) {
                struct dirent *e;
                while ((e = readdir(d)) != NULL) {
                    if (e->d_name[0] != '.') {
                        count++;
                    }
                }
                closedir(d);
                count--; /* the directory's own fd */
            }
            say("fds=%d\n", count);
        } else if (strcmp(op, "cwd") == 0) {
            char buf[4096];
            say("cwd=%s\n", getcwd(buf, sizeof buf) ? buf : "?");
        } else if (strcmp(op, "env") == 0) {
            const char *v = getenv(arg);
            if (v) {
                say("%s=%s\n", arg, v);
            } else {
                say("%s unset\n", arg);
            }
            i++;
        } else if (strcmp(op, "cgroup") == 0) {
            char buf[4096];
            int fd = open("/proc/self/cgroup", O_RDONLY);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            buf[n > 0 ? n : 0] = 0;
            char *line = strstr(buf, "0::");
            if (line != NULL) {
                char *end = strchr(line, '\n');
                if (end) {
                    *end = 0;
                }
                say("cgroup=%s\n", line + 3);
            } else {
                say("cgroup=?\n");
            }
        } else if (strcmp(op, "start-state") == 0) {
            struct rlimit nofile;
            getrlimit(RLIMIT_NOFILE, &nofile);
            say("nofile=%llu:%llu\n", (unsigned long long)nofile.rlim_cur, (unsigned long long)nofile.rlim_max);
            mode_t mask = umask(0);
            umask(mask);
            say("umask=%04o\n", (unsigned)mask);
            char buf[4096];
            int fd = open("/proc/self/oom_score_adj", O_RDONLY);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            buf[n > 0 ? n : 0] = 0;
            buf[strcspn(buf, "\n")] = 0;
            if (fd >= 0) {
                close(fd);
            }
            say("oom_score_adj=%s\n", buf);
            errno = 0;
            int nice_value = getpriority(PRIO_PROCESS, 0);
            say("nice=%d\n", errno == 0 ? nice_value : 99);
            say("sched=%d\n", sched_getscheduler(0));
            long ioprio = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
            say("ioprio_class=%ld\n", ioprio < 0 ? -1 : ioprio >> 13);
            fd = open("/proc/self/status", O_RDONLY);
            n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            buf[n > 0 ? n : 0] = 0;
            if (fd >= 0) {
                close(fd);
            }
            char *cpus = strstr(buf, "Cpus_allowed_list:");
            if (cpus != NULL) {
                cpus += strlen("Cpus_allowed_list:");
                cpus += strspn(cpus, " \t");
                cpus[strcspn(cpus, "\n")] = 0;
            }
            say("cpus=%s\n", cpus != NULL ? cpus : "?");
            long serial = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* KEY_SPEC_SESSION_KEYRING */, 0);
            say("keyring=%ld\n", serial);
            long len = serial < 0 ? -1 : syscall(SYS_keyctl, 6 /* KEYCTL_DESCRIBE */, serial, buf, sizeof buf - 1);
            buf[len > 0 ? (len < (long)sizeof buf ? len : (long)sizeof buf - 1) : 0] = 0;
            say("keyring_desc=%s\n", buf);
        } else if (strcmp(op, "probe") == 0) {
            probe((pid_t)atoi(arg));
            i++;
        } else if (strcmp(op, "close-output") == 0) {
            close(1);
            close(2);
        } else {
            fprintf(stderr, "jobworker-testprocess: unknown step '%s'\n", op);
            return 125;
        }
    }
    return 0;
}
