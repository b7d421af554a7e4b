/* The on-disk spool of a log sink. Records are appended to the last
 * segment, read from the first unacknowledged one, and segments disappear
 * once every record in them was delivered. Segment names are the sequence
 * number of their first record, so listing the directory gives the replay
 * order after a restart. See anonproxy/logspool.h for the format. */
#include "anonproxy/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "anonproxy/logspool.h"

#define REC_MAGIC 0x31525041u /* "APR1" little-endian */
#define RBUF_MIN (256u * 1024u)

/* ---- encoding ---- */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t record_crc(const unsigned char *hdr, const void *data, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr, 28);
    /* zlib takes uInt lengths; records are at most 1 MiB. */
    if (len > 0)
        c = crc32(c, data, (uInt)len);
    return (uint32_t)c;
}

void ap_logspool_encode_header(unsigned char out[AP_LOGSPOOL_HDR], const struct ap_logspool_item *it)
{
    memset(out, 0, AP_LOGSPOOL_HDR);
    put32(out, REC_MAGIC);
    put32(out + 4, (uint32_t)it->len);
    put64(out + 8, it->seq);
    put64(out + 16, (uint64_t)it->time_us);
    out[24] = it->pri;
    put32(out + 28, record_crc(out, it->data, it->len));
}

/* ---- small helpers ---- */

static void seg_name(char out[32], uint64_t id)
{
    snprintf(out, 32, "%016" PRIx64 ".seg", id);
}

static int parse_seg_name(const char *name, uint64_t *id)
{
    if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0)
        return -EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -EINVAL;
        v = v << 4 | d;
    }
    *id = v;
    return 0;
}

static int mkdirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int write_all(int fd, const struct iovec *iov, int n, size_t total)
{
    struct iovec v[4];
    AP_BUG_ON(n > 4);
    memcpy(v, iov, (size_t)n * sizeof(*v));
    size_t done = 0;
    int i = 0;
    while (done < total) {
        ssize_t w = writev(fd, v + i, n - i);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        done += (size_t)w;
        size_t left = (size_t)w;
        while (i < n && left >= v[i].iov_len) {
            left -= v[i].iov_len;
            i++;
        }
        if (i < n) {
            v[i].iov_base = (char *)v[i].iov_base + left;
            v[i].iov_len -= left;
        }
    }
    return 0;
}

static size_t seg_index(const struct ap_logspool *sp, uint64_t id)
{
    /* First segment whose id is >= `id` (nsegs when none). */
    size_t lo = 0, hi = sp->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sp->segs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int segs_insert(struct ap_logspool *sp, size_t at, const struct ap_logspool_seg *s)
{
    if (sp->nsegs == sp->capsegs) {
        size_t cap = sp->capsegs ? sp->capsegs * 2 : 16;
        struct ap_logspool_seg *ns = realloc(sp->segs, cap * sizeof(*ns));
        if (ns == NULL)
            return -ENOMEM;
        sp->segs = ns;
        sp->capsegs = cap;
    }
    memmove(sp->segs + at + 1, sp->segs + at, (sp->nsegs - at) * sizeof(*s));
    sp->segs[at] = *s;
    sp->nsegs++;
    return 0;
}

static void close_reader_fd(struct ap_logspool *sp)
{
    if (sp->rfd >= 0)
        close(sp->rfd);
    sp->rfd = -1;
    sp->rbuf_len = 0;
}

static void segs_remove(struct ap_logspool *sp, size_t at)
{
    char name[32];
    seg_name(name, sp->segs[at].id);
    if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT) {
        /* Left behind, it would be replayed again after a restart: a
         * duplicate, never a loss. Nothing better to do here. */
    }
    if (sp->rfd >= 0 && sp->rfd_seg == sp->segs[at].id)
        close_reader_fd(sp);
    if (at == sp->nsegs - 1 && sp->wfd >= 0) {
        close(sp->wfd);
        sp->wfd = -1;
    }
    sp->bytes -= sp->segs[at].size;
    memmove(sp->segs + at, sp->segs + at + 1, (sp->nsegs - at - 1) * sizeof(*sp->segs));
    sp->nsegs--;
}

static void note_bytes(struct ap_logspool *sp)
{
    if (sp->bytes > sp->peak_bytes)
        sp->peak_bytes = sp->bytes;
}

/* ---- scanning a segment ---- */

/* Validate the record at buf[0..avail): 1 (valid, *reclen set), 0 (needs
 * more bytes than avail, which may be a torn end), -1 (not a record). */
static int check_record(const unsigned char *buf, size_t avail, size_t *reclen)
{
    if (avail < AP_LOGSPOOL_HDR)
        return get32(buf) == REC_MAGIC || avail < 4 ? 0 : -1;
    if (get32(buf) != REC_MAGIC || buf[25] || buf[26] || buf[27])
        return -1;
    uint32_t len = get32(buf + 4);
    if (len > AP_LOGSPOOL_MAX_RECORD)
        return -1;
    if (avail < AP_LOGSPOOL_HDR + (size_t)len)
        return 0;
    if (record_crc(buf, buf + AP_LOGSPOOL_HDR, len) != get32(buf + 28))
        return -1;
    *reclen = AP_LOGSPOOL_HDR + len;
    return 1;
}

/* Read the whole file `fd` of `size` bytes into a malloc'd buffer. */
static int slurp(int fd, uint64_t size, unsigned char **out)
{
    if (size > (uint64_t)SIZE_MAX / 2)
        return -EFBIG;
    unsigned char *b = malloc(size ? (size_t)size : 1);
    if (b == NULL)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, b + got, (size_t)size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? -errno : -EIO;
            free(b);
            return e;
        }
        got += (size_t)r;
    }
    *out = b;
    return 0;
}

/* Find the end of the last valid record of the segment and its highest
 * sequence number; a damaged region in the middle is skipped over. */
static int scan_tail(struct ap_logspool *sp, int fd, uint64_t size, uint64_t *valid_end,
                     uint64_t *max_seq)
{
    unsigned char *b = NULL;
    int rc = slurp(fd, size, &b);
    if (rc != 0)
        return rc;
    size_t off = 0, end = 0;
    uint64_t maxs = 0;
    while (off < size) {
        size_t rl = 0;
        int v = check_record(b + off, (size_t)size - off, &rl);
        if (v == 1) {
            uint64_t s = get64(b + off + 8);
            if (s > maxs)
                maxs = s;
            off += rl;
            end = off;
            continue;
        }
        /* Torn or damaged: look for the next valid header. */
        size_t k = off + 1;
        for (; k < size; k++) {
            size_t r2;
            if (b[k] == 'A' && check_record(b + k, (size_t)size - k, &r2) == 1)
                break;
        }
        if (k >= size)
            break;
        off = k;
    }
    free(b);
    *valid_end = end;
    *max_seq = maxs;
    return 0;
}

/* ---- open and close ---- */

static int read_ack(struct ap_logspool *sp, uint64_t *seg, uint64_t *off)
{
    int fd = openat(sp->dirfd, "ack", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long a = strtoull(buf, &end, 16);
    if (errno != 0 || end == buf || *end != ' ')
        return 0; /* unreadable: replay everything (duplicates, no loss) */
    char *p = end + 1;
    unsigned long long b = strtoull(p, &end, 10);
    if (errno != 0 || end == p)
        return 0;
    *seg = a;
    *off = b;
    return 1;
}

int ap_logspool_open(struct ap_logspool *sp, const char *dir, const struct ap_logspool_opts *opts)
{
    memset(sp, 0, sizeof(*sp));
    sp->dirfd = sp->lockfd = sp->wfd = sp->rfd = -1;
    sp->opts = *opts;
    if (sp->opts.segment_bytes == 0)
        sp->opts.segment_bytes = 16u * 1024u * 1024u;
    int rc = mkdirs(dir);
    if (rc != 0)
        return rc;
    sp->dir = strdup(dir);
    if (sp->dir == NULL)
        return -ENOMEM;
    sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        rc = -errno;
        goto fail;
    }
    sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->lockfd < 0) {
        rc = -errno;
        goto fail;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }
    int dfd = dup(sp->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        rc = -errno;
        if (dfd >= 0)
            close(dfd);
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (parse_seg_name(de->d_name, &id) != 0)
            continue;
        struct stat st;
        if (fstatat(sp->dirfd, de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue;
        struct ap_logspool_seg s = {.id = id, .size = (uint64_t)st.st_size, .start = 0};
        rc = segs_insert(sp, seg_index(sp, id), &s);
        if (rc != 0) {
            closedir(d);
            goto fail;
        }
    }
    closedir(d);

    uint64_t ack_seg = 0, ack_off = 0;
    if (read_ack(sp, &ack_seg, &ack_off) == 1) {
        /* Segments before the acknowledged one were delivered; their
         * deletion was interrupted. */
        while (sp->nsegs > 0 && sp->segs[0].id < ack_seg) {
            sp->bytes += sp->segs[0].size;
            segs_remove(sp, 0);
        }
        if (sp->nsegs > 0 && sp->segs[0].id == ack_seg)
            sp->segs[0].start = ack_off <= sp->segs[0].size ? ack_off : 0;
    }
    for (size_t i = 0; i < sp->nsegs; i++)
        sp->bytes += sp->segs[i].size;

    /* The last segment decides where appends go: cut a torn end off, and
     * learn the highest sequence number. Empty segments are removed. */
    while (sp->nsegs > 0) {
        struct ap_logspool_seg *last = &sp->segs[sp->nsegs - 1];
        char name[32];
        seg_name(name, last->id);
        int fd = openat(sp->dirfd, name, O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            goto fail;
        }
        uint64_t vend = 0, maxs = 0;
        rc = scan_tail(sp, fd, last->size, &vend, &maxs);
        if (rc != 0) {
            close(fd);
            goto fail;
        }
        if (vend < last->size) {
            if (ftruncate(fd, (off_t)vend) != 0) {
                rc = -errno;
                close(fd);
                goto fail;
            }
            sp->bytes -= last->size - vend;
            last->size = vend;
            if (last->start > vend)
                last->start = vend;
        }
        if (maxs == 0 || last->start >= last->size) {
            close(fd);
            if (maxs > sp->last_seq)
                sp->last_seq = maxs;
            segs_remove(sp, sp->nsegs - 1);
            continue;
        }
        sp->last_seq = maxs;
        sp->wfd = fd;
        break;
    }
    /* Wholly acknowledged segments at the front go too. */
    while (sp->nsegs > 1 && sp->segs[0].start >= sp->segs[0].size)
        segs_remove(sp, 0);
    /* An ack file that names no present segment is stale: left alone, it
     * would make a later open delete newer segments with smaller ids. */
    if (sp->nsegs == 0 || sp->segs[0].start == 0)
        unlinkat(sp->dirfd, "ack", 0);
    note_bytes(sp);
    sp->magic = AP_LOGSPOOL_MAGIC;
    ap_logspool_rewind(sp);
    return 0;
fail:
    if (sp->wfd >= 0)
        close(sp->wfd);
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    free(sp->segs);
    free(sp->dir);
    memset(sp, 0, sizeof(*sp));
    sp->dirfd = sp->lockfd = sp->wfd = sp->rfd = -1;
    return rc;
}

void ap_logspool_close(struct ap_logspool *sp)
{
    if (sp->magic != AP_LOGSPOOL_MAGIC)
        return;
    ap_logspool_sync(sp);
    close_reader_fd(sp);
    if (sp->wfd >= 0)
        close(sp->wfd);
    /* Closing the descriptor releases the flock. */
    close(sp->lockfd);
    close(sp->dirfd);
    free(sp->segs);
    free(sp->rbuf);
    free(sp->dir);
    memset(sp, 0, sizeof(*sp));
    sp->dirfd = sp->lockfd = sp->wfd = sp->rfd = -1;
}

/* ---- writing ---- */

static int sync_dir(struct ap_logspool *sp)
{
    return fsync(sp->dirfd) == 0 ? 0 : -errno;
}

/* Create segment `id` (it must not exist) and return its descriptor. */
static int create_seg(struct ap_logspool *sp, uint64_t id)
{
    char name[32];
    seg_name(name, id);
    int fd = openat(sp->dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    return fd;
}

static void remove_file(struct ap_logspool *sp, uint64_t id)
{
    char name[32];
    seg_name(name, id);
    unlinkat(sp->dirfd, name, 0);
}

/* Write one record to fd at the end of a file of `size` bytes; on failure
 * cut the file back to `size`. */
static int write_record(int fd, uint64_t size, const struct ap_logspool_item *it)
{
    unsigned char hdr[AP_LOGSPOOL_HDR];
    ap_logspool_encode_header(hdr, it);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)it->data, it->len}};
    int rc = write_all(fd, iov, it->len ? 2 : 1, sizeof(hdr) + it->len);
    if (rc != 0 && ftruncate(fd, (off_t)size) != 0) {
        /* The torn record stays; readers skip it by its checksum. */
    }
    return rc;
}

static int check_item(const struct ap_logspool *sp, const struct ap_logspool_item *it)
{
    if (it->len > AP_LOGSPOOL_MAX_RECORD)
        return -EMSGSIZE;
    uint64_t need = AP_LOGSPOOL_HDR + (uint64_t)it->len;
    if (sp->opts.max_bytes != 0 && sp->bytes + need > sp->opts.max_bytes)
        return -EDQUOT;
    return 0;
}

int ap_logspool_append(struct ap_logspool *sp, const struct ap_logspool_item *it)
{
    AP_CHECK_OBJ(sp, AP_LOGSPOOL_MAGIC);
    if (it->seq <= sp->last_seq)
        return -EINVAL;
    int rc = check_item(sp, it);
    if (rc != 0)
        return rc;
    uint64_t need = AP_LOGSPOOL_HDR + (uint64_t)it->len;
    struct ap_logspool_seg *last = sp->nsegs ? &sp->segs[sp->nsegs - 1] : NULL;
    if (last != NULL && sp->wfd >= 0 && last->size > 0 && last->size + need > sp->opts.segment_bytes) {
        /* Rotate: segments stay small enough to be deleted soon after
         * their records were delivered. */
        if (sp->opts.fsync != AP_LOGSPOOL_FSYNC_NEVER && sp->wdirty)
            fdatasync(sp->wfd);
        sp->wdirty = 0;
        close(sp->wfd);
        sp->wfd = -1;
        last = NULL;
    }
    if (last == NULL || sp->wfd < 0) {
        int fd = create_seg(sp, it->seq);
        if (fd < 0)
            return fd;
        struct ap_logspool_seg s = {.id = it->seq, .size = 0, .start = 0};
        rc = segs_insert(sp, sp->nsegs, &s);
        if (rc != 0) {
            close(fd);
            remove_file(sp, it->seq);
            return rc;
        }
        sp->wfd = fd;
        last = &sp->segs[sp->nsegs - 1];
        if (sp->opts.fsync == AP_LOGSPOOL_FSYNC_ALWAYS)
            sync_dir(sp);
    }
    rc = write_record(sp->wfd, last->size, it);
    if (rc != 0) {
        if (last->size == 0) {
            /* Do not leave an empty segment behind. */
            close(sp->wfd);
            sp->wfd = -1;
            remove_file(sp, last->id);
            sp->nsegs--;
        }
        return rc;
    }
    last->size += need;
    sp->bytes += need;
    sp->last_seq = it->seq;
    note_bytes(sp);
    sp->wdirty = 1;
    if (sp->opts.fsync == AP_LOGSPOOL_FSYNC_ALWAYS) {
        if (fdatasync(sp->wfd) != 0)
            return -errno;
        sp->wdirty = 0;
    }
    return 0;
}

int ap_logspool_prepend(struct ap_logspool *sp, const struct ap_logspool_item *items, size_t n)
{
    AP_CHECK_OBJ(sp, AP_LOGSPOOL_MAGIC);
    if (n == 0)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (items[i].seq <= items[i - 1].seq)
            return -EINVAL;
    if (sp->nsegs > 0 && items[n - 1].seq >= sp->segs[0].id)
        return -EINVAL;
    /* With no segment left, appends continue after last_seq: the new
     * segment then also holds the newest records. */
    if (sp->nsegs == 0 && items[0].seq <= sp->last_seq)
        return -EINVAL;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].len > AP_LOGSPOOL_MAX_RECORD)
            return -EMSGSIZE;
        total += AP_LOGSPOOL_HDR + (uint64_t)items[i].len;
    }
    if (sp->opts.max_bytes != 0 && sp->bytes + total > sp->opts.max_bytes)
        return -EDQUOT;
    int fd = create_seg(sp, items[0].seq);
    if (fd < 0)
        return fd;
    uint64_t size = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = write_record(fd, size, &items[i]);
        size += AP_LOGSPOOL_HDR + (uint64_t)items[i].len;
    }
    if (rc == 0 && sp->opts.fsync != AP_LOGSPOOL_FSYNC_NEVER && fdatasync(fd) != 0)
        rc = -errno;
    if (rc != 0) {
        close(fd);
        remove_file(sp, items[0].seq);
        return rc;
    }
    struct ap_logspool_seg s = {.id = items[0].seq, .size = size, .start = 0};
    rc = segs_insert(sp, 0, &s);
    if (rc != 0) {
        close(fd);
        remove_file(sp, items[0].seq);
        return rc;
    }
    if (sp->nsegs == 1) {
        /* The only segment is also where appends go. */
        sp->wfd = fd;
        if (items[n - 1].seq > sp->last_seq)
            sp->last_seq = items[n - 1].seq;
    } else {
        close(fd);
    }
    if (sp->opts.fsync != AP_LOGSPOOL_FSYNC_NEVER)
        sync_dir(sp);
    sp->bytes += size;
    note_bytes(sp);
    ap_logspool_rewind(sp);
    return 0;
}

int ap_logspool_sync(struct ap_logspool *sp)
{
    AP_CHECK_OBJ(sp, AP_LOGSPOOL_MAGIC);
    if (!sp->wdirty || sp->wfd < 0 || sp->opts.fsync == AP_LOGSPOOL_FSYNC_NEVER) {
        sp->wdirty = 0;
        return 0;
    }
    sp->wdirty = 0;
    return fdatasync(sp->wfd) == 0 ? 0 : -errno;
}

/* ---- reading ---- */

void ap_logspool_rewind(struct ap_logspool *sp)
{
    sp->reading = 1;
    sp->last_read_seq = 0;
    if (sp->nsegs == 0) {
        sp->rseg = sp->last_seq + 1;
        sp->roff = 0;
        return;
    }
    sp->rseg = sp->segs[0].id;
    sp->roff = sp->segs[0].start;
}

bool ap_logspool_is_empty(const struct ap_logspool *sp)
{
    for (size_t i = 0; i < sp->nsegs; i++)
        if (sp->segs[i].start < sp->segs[i].size)
            return false;
    return true;
}

bool ap_logspool_is_drained(const struct ap_logspool *sp)
{
    size_t i = seg_index(sp, sp->rseg);
    if (i >= sp->nsegs)
        return true;
    uint64_t off = sp->segs[i].start;
    if (sp->segs[i].id == sp->rseg && sp->roff > off)
        off = sp->roff;
    if (off < sp->segs[i].size)
        return false;
    for (size_t j = i + 1; j < sp->nsegs; j++)
        if (sp->segs[j].start < sp->segs[j].size)
            return false;
    return true;
}

/* Make rbuf hold at least `need` bytes of segment `seg` from `off` on, or
 * as many as the segment has. Returns the bytes available, or an error. */
static ssize_t fill(struct ap_logspool *sp, const struct ap_logspool_seg *seg, uint64_t off, size_t need)
{
    uint64_t avail_file = seg->size - off;
    if (sp->rbuf_seg == seg->id && sp->rbuf_len > 0 && off >= sp->rbuf_off &&
        off + need <= sp->rbuf_off + sp->rbuf_len)
        return (ssize_t)(sp->rbuf_off + sp->rbuf_len - off);
    if (sp->rbuf_seg == seg->id && sp->rbuf_len > 0 && off >= sp->rbuf_off &&
        sp->rbuf_off + sp->rbuf_len >= seg->size)
        return (ssize_t)(sp->rbuf_off + sp->rbuf_len - off);
    size_t want = need > RBUF_MIN ? need : RBUF_MIN;
    if (want > sp->rbuf_cap) {
        char *nb = realloc(sp->rbuf, want);
        if (nb == NULL)
            return -ENOMEM;
        sp->rbuf = nb;
        sp->rbuf_cap = want;
    }
    if (sp->rfd < 0 || sp->rfd_seg != seg->id) {
        close_reader_fd(sp);
        char name[32];
        seg_name(name, seg->id);
        sp->rfd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (sp->rfd < 0)
            return -errno;
        sp->rfd_seg = seg->id;
    }
    size_t toread = sp->rbuf_cap < avail_file ? sp->rbuf_cap : (size_t)avail_file;
    size_t got = 0;
    while (got < toread) {
        ssize_t r = pread(sp->rfd, sp->rbuf + got, toread - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    sp->rbuf_seg = seg->id;
    sp->rbuf_off = off;
    sp->rbuf_len = got;
    return (ssize_t)got;
}

/* Offset of the first valid record of `seg` at or after `off`, or the
 * segment's size when there is none. */
static ssize_t next_valid(struct ap_logspool *sp, const struct ap_logspool_seg *seg, uint64_t off)
{
    while (off + AP_LOGSPOOL_HDR <= seg->size) {
        ssize_t avail = fill(sp, seg, off, AP_LOGSPOOL_HDR);
        if (avail < 0)
            return avail;
        const unsigned char *p = (const unsigned char *)sp->rbuf + (off - sp->rbuf_off);
        for (size_t k = 0; k + AP_LOGSPOOL_HDR <= (size_t)avail; k++) {
            size_t rl;
            if (p[k] != 'A')
                continue;
            int v = check_record(p + k, (size_t)avail - k, &rl);
            if (v == 1)
                return (ssize_t)(off + k);
            if (v == 0 && off + k + AP_LOGSPOOL_HDR + get32(p + k + 4) <= seg->size) {
                /* Plausible header whose payload lies past the buffer. */
                uint64_t at = off + k;
                ssize_t a2 = fill(sp, seg, at, AP_LOGSPOOL_HDR + get32(p + k + 4));
                if (a2 < 0)
                    return a2;
                const unsigned char *q = (const unsigned char *)sp->rbuf + (at - sp->rbuf_off);
                if (check_record(q, (size_t)a2, &rl) == 1)
                    return (ssize_t)at;
                /* Not a record after all: continue the scan from here. */
                avail = fill(sp, seg, at, AP_LOGSPOOL_HDR);
                if (avail < 0)
                    return avail;
                off = at;
                p = (const unsigned char *)sp->rbuf + (off - sp->rbuf_off);
                k = 0;
            }
        }
        /* Keep a header's worth of overlap so a header split across two
         * reads is still seen. */
        if ((size_t)avail <= AP_LOGSPOOL_HDR)
            break;
        off += (uint64_t)avail - AP_LOGSPOOL_HDR + 1;
    }
    return (ssize_t)seg->size;
}

int ap_logspool_read(struct ap_logspool *sp, struct ap_logspool_item *it, struct ap_logspool_pos *pos)
{
    AP_CHECK_OBJ(sp, AP_LOGSPOOL_MAGIC);
    if (!sp->reading)
        ap_logspool_rewind(sp);
    for (;;) {
        size_t i = seg_index(sp, sp->rseg);
        if (i >= sp->nsegs)
            return 0;
        struct ap_logspool_seg *seg = &sp->segs[i];
        if (seg->id != sp->rseg) {
            /* The segment we were in is gone: continue with the next. */
            sp->rseg = seg->id;
            sp->roff = seg->start;
        }
        if (sp->roff < seg->start)
            sp->roff = seg->start;
        if (sp->roff >= seg->size) {
            if (i + 1 >= sp->nsegs)
                return 0;
            sp->rseg = sp->segs[i + 1].id;
            sp->roff = sp->segs[i + 1].start;
            continue;
        }
        ssize_t avail = fill(sp, seg, sp->roff, AP_LOGSPOOL_HDR);
        if (avail < 0)
            return (int)avail;
        const unsigned char *b = (const unsigned char *)sp->rbuf + (sp->roff - sp->rbuf_off);
        size_t rl = 0;
        int v = check_record(b, (size_t)avail, &rl);
        if (v == 0 && (uint64_t)avail < seg->size - sp->roff) {
            /* The record continues past the buffer: read it whole. */
            size_t need = AP_LOGSPOOL_HDR + (avail >= (ssize_t)AP_LOGSPOOL_HDR ? get32(b + 4) : 0);
            avail = fill(sp, seg, sp->roff, need);
            if (avail < 0)
                return (int)avail;
            b = (const unsigned char *)sp->rbuf + (sp->roff - sp->rbuf_off);
            v = check_record(b, (size_t)avail, &rl);
        }
        if (v == 1) {
            it->seq = get64(b + 8);
            it->time_us = (int64_t)get64(b + 16);
            it->pri = b[24];
            it->len = get32(b + 4);
            it->data = b + AP_LOGSPOOL_HDR;
            sp->roff += rl;
            pos->seg = seg->id;
            pos->off = sp->roff;
            if (it->seq <= sp->last_read_seq)
                sp->order_errors++;
            sp->last_read_seq = it->seq;
            return 1;
        }
        /* Damaged or torn: skip to the next header that checks, or to the
         * end of the segment. */
        sp->corrupt++;
        ssize_t next = next_valid(sp, seg, sp->roff + 1);
        if (next < 0)
            return (int)next;
        sp->roff = (uint64_t)next;
    }
}

/* ---- acknowledging ---- */

static int write_ack(struct ap_logspool *sp, uint64_t seg, uint64_t off)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%016" PRIx64 " %" PRIu64 "\n", seg, off);
    int fd = openat(sp->dirfd, "ack.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    struct iovec iov = {buf, (size_t)n};
    int rc = write_all(fd, &iov, 1, (size_t)n);
    if (rc == 0 && sp->opts.fsync == AP_LOGSPOOL_FSYNC_ALWAYS && fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && renameat(sp->dirfd, "ack.tmp", sp->dirfd, "ack") != 0)
        rc = -errno;
    return rc;
}

int ap_logspool_ack(struct ap_logspool *sp, const struct ap_logspool_pos *pos)
{
    AP_CHECK_OBJ(sp, AP_LOGSPOOL_MAGIC);
    size_t i = seg_index(sp, pos->seg);
    if (i >= sp->nsegs || sp->segs[i].id != pos->seg)
        return -ENOENT;
    if (pos->off > sp->segs[i].size)
        return -EINVAL;
    /* Everything before this segment was delivered. */
    while (i > 0) {
        segs_remove(sp, 0);
        i--;
    }
    struct ap_logspool_seg *s = &sp->segs[0];
    if (pos->off > s->start)
        s->start = pos->off;
    if (s->start >= s->size) {
        /* Wholly delivered. The last segment goes too: the next append
         * starts a new one named after its record. */
        segs_remove(sp, 0);
        if (sp->nsegs == 0) {
            unlinkat(sp->dirfd, "ack", 0);
            return 0;
        }
        return write_ack(sp, sp->segs[0].id, sp->segs[0].start);
    }
    return write_ack(sp, s->id, s->start);
}
