/* JobWorker spawn library: starts one job process with clone3 and reports the failing step on error.
 * The struct is versioned by its size so later fields (namespaces, init) are additive. */
#ifndef JOBWORKER_SPAWN_H
#define JOBWORKER_SPAWN_H

#include <stdint.h>

/* jw_spawn_args.flags */
#define JW_SPAWN_SET_CREDENTIALS 0x1u /* setgroups(0), setgid(gid), setuid(uid) */
#define JW_SPAWN_SETSID 0x2u          /* new session, so signals to the server's group never reach the job */
#define JW_SPAWN_NO_CLONE3 0x4u       /* skip clone3 (tests and benchmarks of the fallback path) */
#define JW_SPAWN_INIT 0x8u            /* exec_paths/argv start jobworker-init (isolation): the child keeps an
                                       * error pipe on fd 4 (and status_fd on fd 3), and jw_spawn waits until the
                                       * init has exec'd the target or reported the step that failed. The init
                                       * is exec'd with an empty environment; envp reaches it on fd 5 (a
                                       * memfd, see jw_env_fd) and it passes that to the target */
#define JW_SPAWN_START_STATE 0x10u    /* reset what a job would otherwise inherit from its spawner: the fields
                                       * after `reserved` (RLIMIT_NOFILE, umask, oom_score_adj, nice), the
                                       * scheduling policy (SCHED_OTHER), the I/O priority (none) and the CPU
                                       * affinity (every CPU the cgroup allows); and, without JW_SPAWN_INIT, a
                                       * fresh session keyring after the uid change (with it, the init joins
                                       * one after its own uid change) */
#define JW_SPAWN_INIT_IN_PROCESS 0x20u /* with JW_SPAWN_INIT, for a small single-threaded caller that links
                                       * jobworker_init.c in (jobworker-shim): the child is a copy of the
                                       * caller (clone3 without CLONE_VM|CLONE_VFORK) and runs jw_init_main
                                       * with the init's argv instead of exec'ing exec_paths[0]; saves the
                                       * init's exec on every isolated start. Failures come back on the error
                                       * pipe, not in this struct's shared memory */

/* Steps reported in jw_spawn_args.failed_step. */
enum jw_step {
    JW_STEP_NONE = 0,
    JW_STEP_CLONE = 1,
    JW_STEP_SIGNALS = 2,
    JW_STEP_CGROUP = 3,
    JW_STEP_SETSID = 4,
    JW_STEP_STDIO = 5,
    JW_STEP_SETGROUPS = 6,
    JW_STEP_SETGID = 7,
    JW_STEP_SETUID = 8,
    JW_STEP_NO_NEW_PRIVS = 9,
    JW_STEP_PDEATHSIG = 10,
    JW_STEP_CHDIR = 11,
    JW_STEP_CLOSE_FDS = 12,
    JW_STEP_EXEC = 13,
    JW_STEP_ARGS = 14,
    JW_STEP_NAMESPACES = 15,
    JW_STEP_MOUNT = 16,          /* jobworker-init: mount namespace setup */
    JW_STEP_NETWORK = 17,        /* jobworker-init: loopback up in the network namespace */
    JW_STEP_FORK = 18,           /* jobworker-init: fork of the target */
    JW_STEP_SHIM_STATE = 19,     /* jobworker-shim: the job's state directory or its shim.status record */
    JW_STEP_SHIM_LOG = 20,       /* jobworker-shim: creating output.log */
    JW_STEP_RLIMIT = 21,         /* JW_SPAWN_START_STATE: setrlimit(RLIMIT_NOFILE) */
    JW_STEP_OOM_SCORE = 22,      /* JW_SPAWN_START_STATE: writing /proc/self/oom_score_adj */
    JW_STEP_PRIORITY = 23,       /* JW_SPAWN_START_STATE: scheduling policy, nice or I/O priority */
    JW_STEP_AFFINITY = 24,       /* JW_SPAWN_START_STATE: sched_setaffinity */
    JW_STEP_KEYRING = 25,        /* a fresh session keyring (KEYCTL_JOIN_SESSION_KEYRING) */
    JW_STEP_ENVIRONMENT = 26,    /* the job's environment could not be passed on (memfd) or read back */
    JW_STEP_SHIM_LOST = 27,      /* the supervisor ended before its report (a pooled one reports it for its copy) */
};

/* What jobworker-shim writes to its stdout once: the job's pid after its exec, or the step that failed. */
struct jw_shim_report {
    int32_t step;                /* enum jw_step; JW_STEP_NONE on success */
    int32_t error;               /* errno of the failed step */
    int32_t pid;                 /* the job's main process (the shim's child) */
    int32_t used_clone3;
    int64_t started_at_ns;       /* CLOCK_REALTIME right after the exec */
    int32_t shim_pid;            /* the shim that wrote this report (a pooled shim hands over to a copy of itself) */
    int32_t reserved;
};

struct jw_spawn_args {
    uint32_t size;               /* sizeof(struct jw_spawn_args) as the caller knows it */
    uint32_t flags;              /* JW_SPAWN_* */
    uint64_t namespace_flags;    /* CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS only; needs
                                  * JW_SPAWN_INIT */
    const char *const *exec_paths; /* candidate executables, tried in order (PATH lookup done by the caller) */
    const char *const *argv;
    const char *const *envp;
    const char *cwd;             /* NULL: stay in the inherited directory */
    int32_t stdin_fd;
    int32_t stdout_fd;
    int32_t stderr_fd;
    int32_t cgroup_fd;           /* directory fd of the job's cgroup, or -1 */
    uint32_t uid;
    uint32_t gid;
    int32_t pdeath_signal;       /* 0: none */
    /* out */
    int32_t pid;
    int32_t pidfd;
    int32_t failed_step;         /* enum jw_step */
    int32_t error;               /* errno of the failed step */
    int32_t used_clone3;         /* 1 if CLONE_INTO_CGROUP placed the child, 0 if the child joined itself */
    /* in (appended for isolation; only read when size covers it) */
    int32_t status_fd;           /* JW_SPAWN_INIT: write end of the init's status pipe, becomes fd 3; -1 none */
    int32_t reserved;
    /* in (appended for JW_SPAWN_START_STATE; only read when size covers it and the flag is set) */
    uint64_t nofile_soft;        /* RLIMIT_NOFILE */
    uint64_t nofile_hard;
    uint32_t umask;              /* 0..0777 */
    int32_t oom_score_adj;       /* -1000..1000 */
    int32_t nice;                /* -20..19 */
    int32_t reserved2;
};

/* jobworker-init's main (native/jobworker_init.c), for JW_SPAWN_INIT_IN_PROCESS: never returns to the caller's code
 * in a useful way (it execs the target or stays as PID 1 and exits with it). Weak: the shared library has none. */
int jw_init_main(int argc, char **argv) __attribute__((weak));

/* Returns 0 after a successful execve (pid and pidfd set), -1 on failure (failed_step and error set).
 * Safe to call with fds 0-2 closed: every fd the child needs is moved out of the way before the dup2s. */
int jw_spawn(struct jw_spawn_args *args);

/* An environment as a sealed memfd (close-on-exec, offset 0): the strings of envp, each with its NUL.
 * How a job's environment reaches a root process (jobworker-shim on fd 0, jobworker-init on fd 5) without
 * being that process's own environment (which static glibc would honour: GLIBC_TUNABLES) or its argv (which
 * /proc/<pid>/cmdline shows every user). Returns the fd or -errno. */
int jw_env_fd(const char *const *envp);

/* Reads an environment written by jw_env_fd from fd (from offset 0, to its end) into a NULL-terminated array
 * of strings in one allocation (free(*out) releases it). Returns the count or -errno. */
int jw_read_env(int fd, char ***out);

/* Reads the 4-byte wait status jobworker-init wrote to its status pipe before exiting (non-blocking fd).
 * Returns 1 and sets kind/code like jw_pidfd_wait, 0 when nothing was written (the init was killed), or -errno. */
int jw_init_status(int fd, int32_t *kind, int32_t *code);

/* waitid(P_PIDFD, WEXITED): returns 0 and sets code (exit code or signal) and kind (1 exited, 2 signaled), or -errno. */
int jw_pidfd_wait(int pidfd, int nohang, int32_t *kind, int32_t *code);

/* pidfd_send_signal: 0 or -errno. */
int jw_pidfd_send_signal(int pidfd, int sig);

/* pidfd_open(pid, 0) (close-on-exec): the fd or -errno. Works for processes that are not our children. */
int jw_pidfd_open(int pid);

/* pipe2(O_CLOEXEC) with a non-blocking read end grown to size bytes (F_SETPIPE_SZ, best effort):
 * fds[0] read end, fds[1] write end. 0 or -errno. */
int jw_pipe(int32_t fds[2], int32_t size);

/* open(path, O_RDONLY|O_DIRECTORY|O_CLOEXEC): the fd or -errno. */
int jw_open_directory(const char *path);

/* Writes data to an existing file in one write(2) (cgroup interface files need that): 0 or -errno. */
int jw_write_file(const char *path, const char *data, int32_t length);

#endif
