/* File and stdout sinks: one line per record, written with write(2) from
 * the logger thread (never a worker). A file is opened with O_APPEND and
 * reopened on SIGUSR1, and also when logrotate moved it away: once a
 * second the path is compared with the open descriptor (device and
 * inode). A write that fails half-way keeps the rest of the torn line and
 * writes it first next time, so lines stay whole and none is written
 * twice. */
#include "anonproxy/common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anonproxy/buf.h"
#include "anonproxy/log.h"
#include "logger-int.h"

struct filesink {
    int fd;
    int is_stdout;
    dev_t dev;
    ino_t ino;
    struct ap_buf tail; /* the rest of a line cut by a failed write */
    struct ap_buf buf;  /* one batch */
};

static int mkparents(const char *path)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, n + 1);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

static int open_file(struct ap_logsink *s)
{
    struct filesink *f = s->impl;
    if (f->is_stdout) {
        f->fd = STDOUT_FILENO;
        return 0;
    }
    int rc = mkparents(s->cfg->path);
    if (rc != 0)
        return rc;
    int fd = open(s->cfg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

static void close_file(struct filesink *f)
{
    if (f->fd >= 0 && !f->is_stdout)
        close(f->fd);
    f->fd = -1;
}

static int init_common(struct ap_logsink *s, int is_stdout)
{
    struct filesink *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    f->fd = -1;
    f->is_stdout = is_stdout;
    ap_buf_init(&f->tail, 2u * 1024u * 1024u);
    ap_buf_init(&f->buf, 4u * 1024u * 1024u);
    s->impl = f;
    int rc = open_file(s);
    if (rc != 0)
        ap_logsink_error(s, "cannot open %s: %s (will retry)", s->cfg->path, strerror(-rc));
    return 0;
}

static int file_init(struct ap_logsink *s)
{
    return init_common(s, 0);
}

static int stdout_init(struct ap_logsink *s)
{
    return init_common(s, 1);
}

/* Write all of buf[0..len); returns bytes written and sets *err on failure. */
static size_t write_all(int fd, const char *p, size_t len, int *err)
{
    size_t done = 0;
    *err = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *err = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
    }
    return done;
}

static enum ap_logsink_result classify(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK ? AP_LOGSINK_BUSY : AP_LOGSINK_RETRY;
}

static void file_deliver(struct ap_logsink *s, struct ap_lrec *first, size_t n)
{
    struct filesink *f = s->impl;
    if (f->fd < 0) {
        int rc = open_file(s);
        if (rc != 0) {
            ap_logsink_error(s, "cannot open %s: %s", s->cfg->path, strerror(-rc));
            ap_logsink_done(s, AP_LOGSINK_RETRY, 0, 0);
            return;
        }
    }
    int err;
    if (f->tail.len > 0) {
        size_t w = write_all(f->fd, f->tail.data, f->tail.len, &err);
        memmove(f->tail.data, f->tail.data + w, f->tail.len - w);
        f->tail.len -= w;
        if (err != 0) {
            ap_logsink_error(s, "write failed: %s", strerror(err));
            ap_logsink_done(s, classify(err), 0, 0);
            return;
        }
    }
    ap_buf_reset(&f->buf);
    struct ap_lrec *r = first;
    for (size_t i = 0; i < n; i++, r = r->next) {
        if (ap_buf_append(&f->buf, r->data, r->len) != 0 || ap_buf_append(&f->buf, "\n", 1) != 0) {
            ap_logsink_done(s, AP_LOGSINK_BUSY, 0, 0);
            return;
        }
    }
    size_t w = write_all(f->fd, f->buf.data, f->buf.len, &err);
    if (err == 0) {
        ap_logsink_done(s, AP_LOGSINK_OK, n, 0);
        return;
    }
    /* Records wholly written are delivered; so is the torn one, whose
     * rest is written first next time. */
    size_t k = 0, off = 0;
    r = first;
    while (k < n && off + r->len + 1 <= w) {
        off += r->len + 1;
        r = r->next;
        k++;
    }
    if (k < n && w > off) {
        size_t rest = off + r->len + 1 - w;
        if (ap_buf_append(&f->tail, f->buf.data + w, rest) == 0)
            k++;
    }
    ap_logsink_error(s, "write to %s failed: %s", f->is_stdout ? "stdout" : s->cfg->path, strerror(err));
    ap_logsink_done(s, classify(err), k, 0);
}

/* logrotate renames the file (or deletes it) and starts a new one: follow
 * the path, not the descriptor. */
static void file_tick(struct ap_logsink *s)
{
    struct filesink *f = s->impl;
    if (f == NULL || f->is_stdout || f->fd < 0)
        return;
    struct stat st;
    if (stat(s->cfg->path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino)
        return;
    ap_log(AP_LOG_INFO, "log sink %s: %s was moved or removed, reopening", s->cfg->name, s->cfg->path);
    close_file(f);
    int rc = open_file(s);
    if (rc != 0)
        ap_logsink_error(s, "cannot open %s: %s (will retry)", s->cfg->path, strerror(-rc));
}

static void file_reopen(struct ap_logsink *s)
{
    struct filesink *f = s->impl;
    if (f == NULL || f->is_stdout)
        return;
    close_file(f);
    int rc = open_file(s);
    if (rc != 0)
        ap_logsink_error(s, "cannot open %s: %s (will retry)", s->cfg->path, strerror(-rc));
}

static void file_close(struct ap_logsink *s)
{
    struct filesink *f = s->impl;
    if (f != NULL)
        close_file(f);
}

static void file_destroy(struct ap_logsink *s)
{
    struct filesink *f = s->impl;
    if (f == NULL)
        return;
    close_file(f);
    ap_buf_free(&f->tail);
    ap_buf_free(&f->buf);
    free(f);
    s->impl = NULL;
}

const struct ap_logsink_ops ap_logsink_file_ops = {
    .name = "file",
    .init = file_init,
    .deliver = file_deliver,
    .tick = file_tick,
    .reopen = file_reopen,
    .close = file_close,
    .destroy = file_destroy,
    .batching = 0,
};

const struct ap_logsink_ops ap_logsink_stdout_ops = {
    .name = "stdout",
    .init = stdout_init,
    .deliver = file_deliver,
    .close = file_close,
    .destroy = file_destroy,
    .batching = 0,
};
