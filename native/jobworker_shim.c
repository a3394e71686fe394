/*
 * jobworker-shim: the supervisor of one job (docs/design-durability.md).
 *
 * The server starts one shim per job (as root, in the job's <root>/<id>/shim cgroup, in a session of its
 * own, without a death signal) and the shim starts the job. From then on the job does not depend on the
 * server: the shim is the job's parent, drains its output into the log, records how it ended, and exits.
 * A server that restarts finds the shim again through its cgroup and reads what it wrote. Nothing else
 * connects the two: no socket, no protocol, only these files in the job's directory:
 *
 *   output.log    the job's stdout and stderr, in the order written (0600; made empty ahead by the server, or
 *                 created here with O_EXCL: see open_log)
 *   shim.status   key=value lines: version, shim_pid, pid, started_at_ns; once the job has ended also
 *                 exit, code, ended_at_ns, log_bytes, log_dropped_bytes, log_errno, output_incomplete.
 *                 512 bytes padded with newlines; the end record overwrites the start record in place.
 *
 * argv: jobworker-shim 2 JOBDIR CGROUP LOGCAP EOFMS FLAGS NSFLAGS UID GID CWD NOFILE_SOFT NOFILE_HARD UMASK
 *                      OOM_SCORE_ADJ NICE N EXEC... N ARGV...
 *   JOBDIR  the job's state directory; CGROUP the job's cgroup (<root>/<id>/job); LOGCAP the log's size cap;
 *   EOFMS how long to wait for the pipe's EOF once the job's group is empty (see below);
 *   FLAGS and NSFLAGS the jw_spawn flags and CLONE_NEW* flags; CWD "" for none; the job's start state
 *   (jw_spawn_args, JW_SPAWN_START_STATE; UMASK in decimal); then two counted lists: executables to try,
 *   the argv.
 * fds: 0 the job's environment (jw_env_fd: a sealed memfd), read once and replaced by /dev/null; 1 the
 *   report pipe to the server: one struct jw_shim_report once the job has exec'd (or the step that failed),
 *   then it is closed; 2 /dev/null or the same pipe.
 * "jobworker-shim pool" is the same shim started ahead of its job, so that a start does not wait for an exec:
 *   it reads the shim's cgroup (<root>/<id>/shim, or "" when it was started there already: see
 *   docs/design-durability.md, "A user's next start made ready"), the command line above (from argv[0]) and then the
 *   environment from stdin, as NUL-terminated strings, until EOF (see read_launch); an empty stdin (the server
 *   closed its pool, or died) ends it quietly. It then forks a copy of itself straight into that cgroup
 *   (clone3 CLONE_INTO_CGROUP|CLONE_PARENT, see enter_cgroup) which supervises the job, and exits: writing a pid
 *   into cgroup.procs instead takes the kernel's cgroup_threadgroup_rwsem for writing, which waits for an RCU
 *   grace period (about 10 ms here) whenever no other migration happened just before.
 * The shim's own environment is empty, so nothing a job chooses (GLIBC_TUNABLES, LD_*) reaches this root
 * process; nor is the job's environment in its argv, which /proc/<pid>/cmdline shows every user.
 *
 * The shim ignores SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1 and SIGUSR2: a signal meant for a
 * process group or a service never takes it down by accident. Only SIGKILL ends it early, and then the
 * job's main process dies with it (its death signal is bound to the shim) and the server reports the job
 * as killed.
 */
#define _GNU_SOURCE
#include "jobworker_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_NEWPID
#define CLONE_NEWPID 0x20000000
#endif

#define PIPE_SIZE (1 << 20)
/* The most one splice moves. A splice holds the pipe's lock while it copies into the log, so the job cannot write
 * meanwhile: with a chunk as large as the pipe the writer and the drain take turns (measured 0.86-0.98x `cat`);
 * with half the pipe the job refills the other half while the drain copies (1.32-1.75x). docs/benchmarks-output.md. */
#define CHUNK (PIPE_SIZE / 2)
/* After the job's group is empty every writer is gone, so EOF is due at once; a process outside the group
 * could only hold the pipe if it was passed over a unix socket (or moved out of the group), and we do not wait
 * for it forever: after EOFMS (argv) reading stops and the job's end is recorded as output_incomplete. */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A pooled shim's copy: the pipe on which it tells the pooled shim that its report is written (see enter_cgroup). */
static int handover_fd = -1;

static void report_as(int32_t shim_pid, int32_t step, int32_t error, int32_t pid, int32_t used_clone3, int64_t started_ns)
{
    struct jw_shim_report r = {
        .step = step, .error = error, .pid = pid, .used_clone3 = used_clone3, .started_at_ns = started_ns,
        .shim_pid = shim_pid
    };
    (void)write_all(STDOUT_FILENO, &r, sizeof r);
    if (handover_fd >= 0) {
        (void)write_all(handover_fd, "r", 1);
        close(handover_fd);
        handover_fd = -1;
    }
}

static void report(int32_t step, int32_t error, int32_t pid, int32_t used_clone3, int64_t started_ns)
{
    report_as((int32_t)getpid(), step, error, pid, used_clone3, started_ns);
}

static __attribute__((noreturn)) void fail(int32_t step, int32_t error)
{
    report(step, error, -1, 0, 0);
    _exit(1);
}

/* shim.status has a fixed size: the end record overwrites the start record in place, inside blocks the start
 * record already allocated, so recording how the job ended never needs disk space the job's output may have
 * taken (a job that fills the disk still gets its exit status recorded). Lines are padded with '\n', which
 * readers skip. One page: a write of it is never torn by the death of this process. */
#define STATUS_SIZE 512

static int status_fd = -1;

static int pad_status(char *buffer, const char *text, size_t len)
{
    if (len > STATUS_SIZE) {
        return -ENAMETOOLONG;
    }
    memcpy(buffer, text, len);
    memset(buffer + len, '\n', STATUS_SIZE - len);
    return 0;
}

/* The start record: written to shim.status.tmp and renamed over, so a reader sees a whole record or none. */
static int write_start_status(int dirfd, const char *text, size_t len)
{
    char buffer[STATUS_SIZE];
    int r = pad_status(buffer, text, len);
    if (r < 0) {
        return r;
    }
    int fd = openat(dirfd, "shim.status.tmp", O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    r = write_all(fd, buffer, STATUS_SIZE);
    if (r == 0 && renameat(dirfd, "shim.status.tmp", dirfd, "shim.status") < 0) {
        r = -errno;
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    status_fd = fd;
    return 0;
}

/* The end record, over the start record in place. */
static int write_end_status(const char *text, size_t len)
{
    char buffer[STATUS_SIZE];
    int r = pad_status(buffer, text, len);
    if (r < 0) {
        return r;
    }
    ssize_t n;
    do {
        n = pwrite(status_fd, buffer, STATUS_SIZE, 0);
    } while (n < 0 && errno == EINTR);
    return n == STATUS_SIZE ? 0 : n < 0 ? -errno : -EIO;
}

static int parse_i32(const char *s, int32_t *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < INT32_MIN || v > INT32_MAX) {
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        return -1;
    }
    *out = v;
    return 0;
}

/* Reads "N" then N strings from argv[*i...] into a NULL-terminated array that points into argv. */
static char **take_list(int argc, char **argv, int *i)
{
    uint64_t n;
    if (*i >= argc || parse_u64(argv[*i], &n) < 0 || n > (uint64_t)(argc - *i - 1)) {
        return NULL;
    }
    char **list = calloc(n + 1, sizeof *list);
    if (list == NULL) {
        return NULL;
    }
    for (uint64_t k = 0; k < n; k++) {
        list[k] = argv[*i + 1 + (int)k];
    }
    *i += 1 + (int)n;
    return list;
}

/* The job's output: spliced from the pipe into the log up to the cap, then to /dev/null and counted. */
struct drain {
    int pipe;
    int log;
    int devnull;
    uint64_t cap;
    uint64_t written; /* bytes in the log; also the next write offset */
    uint64_t dropped;
    int sealed_errno; /* why the log stopped taking bytes before the cap (ENOSPC, EIO, ...), or 0 */
    int use_read;     /* the log's filesystem refused splice: read/write instead */
    int eof;
};

static int drain_discard(struct drain *d)
{
    ssize_t n = splice(d->pipe, NULL, d->devnull, NULL, CHUNK, SPLICE_F_NONBLOCK);
    if (n > 0) {
        d->dropped += (uint64_t)n;
    }
    return (int)(n > 0 ? 1 : n == 0 ? 0 : -errno);
}

/* Reads and writes with a buffer: for filesystems without splice support. */
static int drain_copy(struct drain *d, size_t room)
{
    static char buffer[64 * 1024];
    ssize_t n = read(d->pipe, buffer, room < sizeof buffer ? room : sizeof buffer);
    if (n <= 0) {
        return n == 0 ? 0 : -errno;
    }
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = pwrite(d->log, buffer + done, (size_t)n - done, (off_t)(d->written + done));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            d->sealed_errno = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    d->written += done;
    d->dropped += (uint64_t)n - done;
    return 1;
}

/* Moves everything the pipe holds now; returns at EAGAIN or EOF. */
static void drain(struct drain *d)
{
    while (!d->eof) {
        int r;
        uint64_t room = d->sealed_errno != 0 || d->written >= d->cap ? 0 : d->cap - d->written;
        if (room == 0) {
            r = drain_discard(d);
        } else if (d->use_read) {
            r = drain_copy(d, room < CHUNK ? (size_t)room : CHUNK);
        } else {
            loff_t off = (loff_t)d->written;
            ssize_t n = splice(d->pipe, NULL, d->log, &off, room < CHUNK ? (size_t)room : CHUNK,
                               SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                d->written += (uint64_t)n;
                continue;
            }
            r = n == 0 ? 0 : -errno;
            if (r == -EINVAL) {
                d->use_read = 1;
                continue;
            }
            if (r < 0 && r != -EAGAIN && r != -EINTR) {
                /* ENOSPC, EDQUOT, EFBIG, EIO: the bytes are still in the pipe. The log keeps what it has (an
                 * exact prefix of the output; a later retry would leave a hole) and the rest is dropped. */
                d->sealed_errno = -r;
                continue;
            }
        }
        if (r == 0) {
            d->eof = 1;
        } else if (r == -EAGAIN) {
            return;
        } else if (r < 0 && r != -EINTR) {
            /* Reading the pipe itself failed: nothing more will come from it. */
            d->eof = 1;
        }
    }
}

/* "populated 0|1" from cgroup.events (re-read from the start: reading also re-arms POLLPRI). */
static int read_populated(int events_fd)
{
    char buf[256];
    ssize_t n = pread(events_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        return 0; /* the group is gone: nothing can be in it */
    }
    buf[n] = '\0';
    const char *p = strstr(buf, "populated ");
    return p != NULL && p[10] == '1';
}

static void kill_group(int cgroup_fd)
{
    int fd = openat(cgroup_fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n;
        do {
            n = write(fd, "1", 1);
        } while (n < 0 && errno == EINTR);
        close(fd);
        if (n == 1) {
            return;
        }
    }
    /* Kernels before 5.14: SIGKILL each process listed; the wait for "populated 0" catches late forks. */
    fd = openat(cgroup_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        uint64_t pid;
        if (parse_u64(line, &pid) == 0 && pid > 1) {
            (void)kill((pid_t)pid, SIGKILL);
        }
    }
}

/* The job's log, never written through a planted link (O_NOFOLLOW) and never shared with another job: the server
 * either made it ahead, empty, in a directory it then gave this job alone (FileJobStore.PrepareAhead), or it is
 * created here (O_EXCL). Anything else (not a regular file, not empty, another link to it, not ours) is refused. */
static int open_log(int dir_fd)
{
    int fd = openat(dir_fd, "output.log", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = openat(dir_fd, "output.log", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
    }
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0 || st.st_nlink != 1 || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0) {
        close(fd);
        return -EEXIST;
    }
    return fd;
}

/* Larger than any command line plus environment execve accepts: a message this big is not a launch. */
#define MESSAGE_MAX (128 << 20)

/*
 * A pre-started shim ("jobworker-shim pool") waits for its job: the server moves it into the job's shim cgroup,
 * then writes the launch to its stdin and closes it. The launch is NUL-terminated strings: the command line a
 * directly started shim gets (from argv[0]), then the job's environment. EOF before any byte means the server
 * closed the pool (or died): exit quietly. Returns the number of command-line strings, sets *strings (NULL-
 * terminated after the environment) and *envp (the environment's first string), or exits through fail().
 */
static int read_launch(const char **shim_cgroup, char ***strings, char ***envp)
{
    size_t size = 0, room = 64 * 1024;
    char *block = malloc(room);
    for (;;) {
        if (block == NULL) {
            fail(JW_STEP_ARGS, ENOMEM);
        }
        ssize_t n = read(STDIN_FILENO, block + size, room - size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fail(JW_STEP_ARGS, errno);
        }
        if (n == 0) {
            break;
        }
        size += (size_t)n;
        if (size == room) {
            if (room >= MESSAGE_MAX) {
                fail(JW_STEP_ARGS, E2BIG);
            }
            room *= 2;
            block = realloc(block, room);
        }
    }
    if (size == 0) {
        _exit(0);
    }
    if (block[size - 1] != '\0') {
        fail(JW_STEP_ARGS, EINVAL);
    }
    size_t count = 0;
    for (size_t k = 0; k < size; k++) {
        count += block[k] == '\0';
    }
    char **list = calloc(count + 1, sizeof *list);
    if (list == NULL) {
        fail(JW_STEP_ARGS, ENOMEM);
    }
    size_t k = 0;
    for (size_t at = 0; at < size; at += strlen(block + at) + 1) {
        list[k++] = block + at;
    }
    /* The shim's cgroup, then the command line (16 fixed strings and two counted lists); the environment is the rest. */
    if (count < 2) {
        fail(JW_STEP_ARGS, EINVAL);
    }
    *shim_cgroup = list[0];
    list++;
    count--;
    int argc = 16;
    for (int lists = 0; lists < 2; lists++) {
        uint64_t n;
        if ((size_t)argc >= count || parse_u64(list[argc], &n) < 0 || n > count - (size_t)argc - 1) {
            fail(JW_STEP_ARGS, EINVAL);
        }
        argc += 1 + (int)n;
    }
    *strings = list;
    *envp = list + argc;
    return argc;
}

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct shim_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* A pooled shim, launched: continue as a copy of this process created in the job's shim cgroup, as the server's
 * child (CLONE_PARENT: the server reaps it and may wait on its pidfd, as on a shim it started itself); every
 * report names the shim that supervises the job (shim_pid). The pooled shim waits until its copy has reported,
 * so that a copy that dies first is still reported, and the server reaps it; then it exits. Kernels without
 * clone3 or CLONE_INTO_CGROUP (before 5.7), or under a seccomp profile that refuses clone3, get the migration
 * instead. */
static void enter_cgroup(const char *cgroup)
{
    int fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fail(JW_STEP_CGROUP, errno);
    }
    int handover[2];
    if (pipe2(handover, O_CLOEXEC) < 0) {
        fail(JW_STEP_STDIO, errno);
    }
    struct shim_clone_args ca;
    memset(&ca, 0, sizeof ca);
    /* clone3 takes no exit_signal with CLONE_PARENT: the copy inherits this process's (SIGCHLD). */
    ca.flags = CLONE_PARENT | CLONE_INTO_CGROUP;
    ca.cgroup = (uint64_t)fd;
    long pid = syscall(SYS_clone3, &ca, sizeof ca);
    if (pid > 0) {
        close(handover[1]);
        char c;
        ssize_t n;
        do {
            n = read(handover[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            /* Killed before its report: the server still learns which process to reap. */
            report_as((int32_t)pid, JW_STEP_SHIM_LOST, 0, -1, 0, 0);
        }
        _exit(0);
    }
    if (pid == 0) {
        close(handover[0]);
        handover_fd = handover[1];
        close(fd);
        return;
    }
    close(handover[0]);
    close(handover[1]);
    /* As jw_spawn: seccomp profiles may refuse clone3 (ENOSYS or EPERM), older kernels lack the larger struct (E2BIG)
     * or CLONE_INTO_CGROUP (EINVAL). A real permission problem with the group fails the move below just as clearly. */
    if (errno != ENOSYS && errno != EPERM && errno != E2BIG && errno != EINVAL) {
        /* EAGAIN: the user's pids.max; the server names the limit. */
        fail(JW_STEP_CLONE, errno);
    }
    char text[24];
    int len = snprintf(text, sizeof text, "%d", (int)getpid());
    int procs = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (procs < 0 || write(procs, text, (size_t)len) != len) {
        fail(JW_STEP_CGROUP, errno);
    }
    close(procs);
    close(fd);
}

int main(int argc, char **argv)
{
    static const int ignored[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2 };
    for (size_t k = 0; k < sizeof ignored / sizeof ignored[0]; k++) {
        signal(ignored[k], SIG_IGN);
    }

    char **job_envp = NULL;
    if (argc == 2 && strcmp(argv[1], "pool") == 0) {
        const char *shim_cgroup;
        argc = read_launch(&shim_cgroup, &argv, &job_envp);
        /* "" when the server started this shim in the job's shim cgroup already (a user's start made ready ahead). */
        if (shim_cgroup[0] != '\0') {
            enter_cgroup(shim_cgroup);
        }
    }

    uint64_t cap, eof_ms, spawn_flags, ns_flags, uid, gid, nofile_soft, nofile_hard, umask_bits;
    int32_t oom_score_adj, nice;
    if (argc < 19 || strcmp(argv[1], "2") != 0 || parse_u64(argv[4], &cap) < 0 || parse_u64(argv[5], &eof_ms) < 0 ||
        parse_u64(argv[6], &spawn_flags) < 0 || parse_u64(argv[7], &ns_flags) < 0 || parse_u64(argv[8], &uid) < 0 ||
        parse_u64(argv[9], &gid) < 0 || parse_u64(argv[11], &nofile_soft) < 0 || parse_u64(argv[12], &nofile_hard) < 0 ||
        parse_u64(argv[13], &umask_bits) < 0 || parse_i32(argv[14], &oom_score_adj) < 0 || parse_i32(argv[15], &nice) < 0 ||
        cap == 0 || eof_ms > 3600000 || umask_bits > 0777) {
        fail(JW_STEP_ARGS, EINVAL);
    }
    const char *job_dir = argv[2];
    const char *cgroup = argv[3];
    const char *cwd = argv[10][0] == '\0' ? NULL : argv[10];
    int i = 16;
    char **exec_paths = take_list(argc, argv, &i);
    char **job_argv = exec_paths == NULL ? NULL : take_list(argc, argv, &i);
    if (job_argv == NULL || i != argc || exec_paths[0] == NULL || job_argv[0] == NULL) {
        fail(JW_STEP_ARGS, EINVAL);
    }
    if (job_envp == NULL) {
        int env_count = jw_read_env(STDIN_FILENO, &job_envp);
        if (env_count < 0) {
            fail(JW_STEP_ENVIRONMENT, -env_count);
        }
    }

    int dir_fd = open(job_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        fail(JW_STEP_SHIM_STATE, errno);
    }
    int cgroup_fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd < 0) {
        fail(JW_STEP_CGROUP, errno);
    }
    int events_fd = openat(cgroup_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (events_fd < 0) {
        fail(JW_STEP_CGROUP, errno);
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0) {
        fail(JW_STEP_STDIO, errno);
    }
    int log_fd = open_log(dir_fd);
    if (log_fd < 0) {
        fail(JW_STEP_SHIM_LOG, -log_fd);
    }

    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
        fail(JW_STEP_STDIO, errno);
    }
    /* Fewer wake-ups per byte, and slack while we are busy elsewhere (best effort). */
    (void)fcntl(out[1], F_SETPIPE_SZ, PIPE_SIZE);

    int status_pipe[2] = { -1, -1 };
    if ((ns_flags & CLONE_NEWPID) && (pipe2(status_pipe, O_CLOEXEC) < 0 || fcntl(status_pipe[0], F_SETFL, O_NONBLOCK) < 0)) {
        fail(JW_STEP_STDIO, errno);
    }

    struct jw_spawn_args a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.flags = (uint32_t)spawn_flags;
    if (a.flags & JW_SPAWN_INIT) {
        /* This process is small and single-threaded: the job's init can be a copy of it instead of an exec. */
        a.flags |= JW_SPAWN_INIT_IN_PROCESS;
    }
    a.namespace_flags = ns_flags;
    a.exec_paths = (const char *const *)exec_paths;
    a.argv = (const char *const *)job_argv;
    a.envp = (const char *const *)job_envp;
    a.cwd = cwd;
    a.stdin_fd = devnull;
    a.stdout_fd = out[1];
    a.stderr_fd = out[1];
    a.cgroup_fd = cgroup_fd;
    a.uid = (uint32_t)uid;
    a.gid = (uint32_t)gid;
    /* Bound to this single-threaded process: if the shim is killed, the job's main process dies too. */
    a.pdeath_signal = SIGKILL;
    a.status_fd = status_pipe[1];
    a.nofile_soft = nofile_soft;
    a.nofile_hard = nofile_hard;
    a.umask = (uint32_t)umask_bits;
    a.oom_score_adj = oom_score_adj;
    a.nice = nice;
    int spawned = jw_spawn(&a);
    int64_t started = now_ns();
    close(out[1]);
    if (status_pipe[1] >= 0) {
        close(status_pipe[1]);
    }
    if (spawned < 0) {
        unlinkat(dir_fd, "output.log", 0);
        fail(a.failed_step, a.error);
    }

    /* Report first, record second: the server's start does not wait for a file to be created. The shim is found
     * again through its cgroup, not through this record, so a server that restarts in between only misses the
     * pid and start time for a moment. */
    report(JW_STEP_NONE, 0, a.pid, a.used_clone3, started);
    /* The server has what it needs; from here on it may come and go. */
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);

    char text[1024];
    int len = snprintf(text, sizeof text, "version=1\nshim_pid=%d\npid=%d\nstarted_at_ns=%" PRId64 "\n", (int)getpid(), a.pid,
                       started);
    if (write_start_status(dir_fd, text, (size_t)len) < 0) {
        /* Without its record the job's end could not be recorded either (no disk space, an I/O error): end it now
         * rather than let it run unaccounted; the server reports it as killed and logs why. */
        kill_group(cgroup_fd);
        return 1;
    }

    struct drain d = { .pipe = out[0], .log = log_fd, .devnull = devnull, .cap = cap };
    int main_exited = 0;
    int populated = 1;
    int32_t kind = 0, code = 0;
    int64_t ended = 0;
    int64_t eof_deadline = -1;
    int output_incomplete = 0;

    for (;;) {
        struct pollfd p[3];
        int n = 0;
        int pipe_slot = -1, pidfd_slot = -1, events_slot = -1;
        if (!d.eof) {
            p[n] = (struct pollfd){ .fd = d.pipe, .events = POLLIN };
            pipe_slot = n++;
        }
        if (!main_exited) {
            p[n] = (struct pollfd){ .fd = a.pidfd, .events = POLLIN };
            pidfd_slot = n++;
        } else if (populated) {
            p[n] = (struct pollfd){ .fd = events_fd, .events = POLLPRI };
            events_slot = n++;
        }
        if (main_exited && !populated && d.eof) {
            break;
        }
        int timeout = -1;
        if (eof_deadline >= 0) {
            int64_t left = eof_deadline - monotonic_ms();
            if (left <= 0) {
                output_incomplete = 1;
                break;
            }
            timeout = (int)left;
        }
        int ready = poll(p, (nfds_t)n, timeout);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pipe_slot >= 0 && p[pipe_slot].revents != 0) {
            drain(&d);
        }
        if (pidfd_slot >= 0 && p[pidfd_slot].revents != 0) {
            if (jw_pidfd_wait(a.pidfd, 1, &kind, &code) == 0 && kind != 0) {
                ended = now_ns();
                main_exited = 1;
                if (status_pipe[0] >= 0) {
                    /* The target's own status: a PID 1 cannot report "killed by SIGSEGV" through its exit. */
                    int32_t tk, tc;
                    if (jw_init_status(status_pipe[0], &tk, &tc) == 1) {
                        kind = tk;
                        code = tc;
                    }
                }
                /* The job ends with its main process: nothing it left behind may keep running. */
                kill_group(cgroup_fd);
                populated = read_populated(events_fd);
            }
        }
        if (events_slot >= 0 && p[events_slot].revents != 0) {
            populated = read_populated(events_fd);
            if (populated) {
                kill_group(cgroup_fd); /* a fork that raced with the first kill */
            }
        }
        if (main_exited && !populated && !d.eof && eof_deadline < 0) {
            eof_deadline = monotonic_ms() + (int64_t)eof_ms;
        }
    }

    if (!d.eof) {
        drain(&d);
        output_incomplete = output_incomplete || !d.eof;
    }
    len = snprintf(text, sizeof text,
                   "version=1\nshim_pid=%d\npid=%d\nstarted_at_ns=%" PRId64 "\nexit=%s\ncode=%d\nended_at_ns=%" PRId64
                   "\nlog_bytes=%" PRIu64 "\nlog_dropped_bytes=%" PRIu64 "\nlog_errno=%d\noutput_incomplete=%d\n",
                   (int)getpid(), a.pid, started, kind == 1 ? "exited" : "signaled", (int)code, ended, d.written, d.dropped,
                   d.sealed_errno, output_incomplete);
    /* If this fails (an I/O error) the server finds no exit record and reports the job as killed, and logs it. */
    (void)write_end_status(text, (size_t)len);
    return 0;
}
