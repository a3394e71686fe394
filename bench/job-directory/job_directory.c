/*
 * What a start's files cost on the state directory's file system, timed per start: the way a start made them
 * before (mkdir of the job's directory, job.json.tmp created and renamed, output.log created by the supervisor)
 * against a directory made ahead (FileJobStore.PrepareAhead: job.json.tmp and output.log already there, empty;
 * the record written, renamed, and the directory renamed into place with RENAME_NOREPLACE), and what O_TRUNC adds
 * to rewriting an existing empty file. A pause before each step lets every step meet an idle machine, as starts that
 * come one at a time do. Works in a fresh directory under the given one, removed at the end.
 *
 *   cc -O2 -o /tmp/job-directory bench/job-directory/job_directory.c && /tmp/job-directory /var/lib/jobworker 200 20
 *   (a directory on the file system to measure, iterations, pause in ms)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void check(int ok, const char *what, const char *path)
{
    if (!ok) {
        perror(what);
        fprintf(stderr, "  at %s\n", path);
        exit(1);
    }
}

static void make_file(const char *path, int flags, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
    check(fd >= 0, "open", path);
    check(len == 0 || write(fd, data, len) == (ssize_t)len, "write", path);
    close(fd);
}

static void report(const char *name, int64_t *samples, int n)
{
    qsort(samples, (size_t)n, sizeof *samples, compare);
    printf("| %s | %.1f µs | %.1f µs |\n", name, samples[n / 2] / 1000.0, samples[n * 9 / 10] / 1000.0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIRECTORY ITERATIONS PAUSE_MS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]), pause_ms = atoi(argv[3]);
    char root[4096];
    snprintf(root, sizeof root, "%s/jobworker-bench-%d", argv[1], (int)getpid());
    check(mkdir(root, 0700) == 0, "mkdir", root);
    char spares[4200], jobs[4200];
    snprintf(spares, sizeof spares, "%s/spares", root);
    snprintf(jobs, sizeof jobs, "%s/jobs", root);
    check(mkdir(spares, 0700) == 0 && mkdir(jobs, 0700) == 0, "mkdir", root);

    int64_t *made = calloc((size_t)n, sizeof *made), *ahead = calloc((size_t)n, sizeof *ahead);
    int64_t *trunc = calloc((size_t)n, sizeof *trunc), *notrunc = calloc((size_t)n, sizeof *notrunc);
    char record[1500];
    memset(record, '{', sizeof record);
    char a[4400], b[4600], c[4500];
    for (int i = 0; i < n; i++) {
        /* Off the clock: a directory made ahead, as PrepareAhead makes it. */
        snprintf(a, sizeof a, "%s/s%d", spares, i);
        check(mkdir(a, 0700) == 0, "mkdir", a);
        snprintf(b, sizeof b, "%s/job.json.tmp", a);
        make_file(b, O_CREAT | O_EXCL, NULL, 0);
        snprintf(b, sizeof b, "%s/output.log", a);
        make_file(b, O_CREAT | O_EXCL, NULL, 0);

        usleep((useconds_t)pause_ms * 1000);
        int64_t t0 = now_ns();
        snprintf(a, sizeof a, "%s/m%d", jobs, i);
        check(mkdir(a, 0700) == 0, "mkdir", a);
        snprintf(b, sizeof b, "%s/job.json.tmp", a);
        snprintf(c, sizeof c, "%s/job.json", a);
        make_file(b, O_CREAT | O_TRUNC, record, sizeof record);
        check(rename(b, c) == 0, "rename", b);
        snprintf(b, sizeof b, "%s/output.log", a);
        make_file(b, O_CREAT | O_EXCL, NULL, 0);
        made[i] = now_ns() - t0;

        usleep((useconds_t)pause_ms * 1000);
        t0 = now_ns();
        snprintf(a, sizeof a, "%s/s%d", spares, i);
        snprintf(b, sizeof b, "%s/job.json.tmp", a);
        snprintf(c, sizeof c, "%s/job.json", a);
        make_file(b, O_CREAT, record, sizeof record);
        check(rename(b, c) == 0, "rename", b);
        snprintf(c, sizeof c, "%s/a%d", jobs, i);
        check(renameat2(AT_FDCWD, a, AT_FDCWD, c, RENAME_NOREPLACE) == 0, "renameat2", a);
        snprintf(b, sizeof b, "%s/output.log", c);
        int fd = open(b, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        check(fd >= 0 && fstat(fd, &st) == 0, "open", b);
        close(fd);
        ahead[i] = now_ns() - t0;

        /* An existing empty file rewritten, with and without O_TRUNC. */
        snprintf(a, sizeof a, "%s/t%d", root, i);
        snprintf(b, sizeof b, "%s/u%d", root, i);
        make_file(a, O_CREAT | O_EXCL, NULL, 0);
        make_file(b, O_CREAT | O_EXCL, NULL, 0);
        usleep((useconds_t)pause_ms * 1000);
        t0 = now_ns();
        make_file(a, O_CREAT | O_TRUNC, record, sizeof record);
        trunc[i] = now_ns() - t0;
        usleep((useconds_t)pause_ms * 1000);
        t0 = now_ns();
        make_file(b, O_CREAT, record, sizeof record);
        notrunc[i] = now_ns() - t0;
    }

    printf("## A start's files on %s: %d iterations, %d ms pause before each step\n\n", argv[1], n, pause_ms);
    printf("| step | p50 | p90 |\n|---|---:|---:|\n");
    report("made by the start: mkdir, job.json.tmp created and renamed, output.log created", made, n);
    report("made ahead: job.json.tmp written and renamed, directory renamed (RENAME_NOREPLACE), output.log opened", ahead, n);
    report("existing empty file rewritten with O_TRUNC", trunc, n);
    report("existing empty file rewritten without O_TRUNC", notrunc, n);

    char command[4500];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    return system(command) == 0 ? 0 : 1;
}
