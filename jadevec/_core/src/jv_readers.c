#define _GNU_SOURCE
#include "jv_readers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jv_platform.h"
#include "jv_records.h"

#define TABLE_BYTES (JV_FILE_HEADER + JV_READER_SLOTS * JV_READER_SLOT)

static uint64_t slot_offset(uint32_t i)
{
    return JV_FILE_HEADER + (uint64_t)i * JV_READER_SLOT;
}

static int header_ok(const jv_file_header *h, uint64_t set_id)
{
    return h->magic == JV_MAGIC_READERS && h->version == JV_FORMAT_VERSION &&
           h->set_id == set_id && h->unit == JV_READER_SLOT && h->count == JV_READER_SLOTS &&
           jv_header_crc_ok(h);
}

int jv_readers_open(jv_readers *r, int dir, const char *path, uint64_t set_id, int claim,
                    int create)
{
    int fd, rc;
    uint64_t size = 0;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->mine = -1;
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        return ENOMEM;
    r->mu_ready = 1;
    do {
        fd = openat(dir == JV_CWD ? AT_FDCWD : dir, path,
                    O_RDWR | O_CLOEXEC | O_NONBLOCK | (create ? O_CREAT : 0), 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        rc = errno;
        /* A read-only file system: no writer can be running, so a reader
         * needs no registration. */
        return claim && rc == EROFS ? 0 : rc == EISDIR ? JV_ENOTREG : rc;
    }
    /* O_NONBLOCK above so a FIFO in the file's place cannot hang the open. */
    struct stat stat_buf;
    if (fstat(fd, &stat_buf) != 0) {
        rc = errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(stat_buf.st_mode)) {
        close(fd);
        return JV_ENOTREG;
    }
    if ((rc = jv_file_size(fd, &size)) != 0 ||
        (size < TABLE_BYTES && (rc = jv_allocate(fd, 0, TABLE_BYTES)) != 0)) {
        close(fd);
        return rc;
    }
    void *m = mmap(NULL, TABLE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        rc = errno;
        close(fd);
        return rc;
    }
    jv_file_header h;
    memcpy(&h, m, sizeof h);
    if (!header_ok(&h, set_id)) {
        /* Runtime state only: whoever finds the header damaged (or a new
         * file) writes it again, in place, so everyone keeps the same file. */
        jv_file_header_fill(&h, JV_MAGIC_READERS, set_id, 0, JV_READER_SLOT, JV_READER_SLOTS);
        memcpy(m, &h, sizeof h);
    }
    r->fd = fd;
    r->mapping = m;
    r->slots = (jv_reader_slot *)((char *)m + JV_FILE_HEADER);
    if (!claim)
        return 0;
    for (uint32_t i = 0; i < JV_READER_SLOTS; i++) {
        rc = jv_byte_lock(fd, slot_offset(i));
        if (rc == EAGAIN)
            continue;
        if (rc) {
            jv_readers_close(r, 0);
            return rc;
        }
        r->mine = (int32_t)i;
        __atomic_store_n(&r->slots[i].generation, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&r->slots[i].pid, (uint64_t)getpid(), __ATOMIC_RELAXED);
        return 0;
    }
    jv_readers_close(r, 0);
    return EBUSY;
}

/* The generation to publish: the oldest in flight, or 0. Under mu. */
static void publish(jv_readers *r)
{
    uint64_t low = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (low == 0 || r->gens[i] < low)
            low = r->gens[i];
    __atomic_store_n(&r->slots[r->mine].generation, low, __ATOMIC_SEQ_CST);
}

int jv_readers_enter(jv_readers *r, uint64_t gen)
{
    if (r->mine < 0)
        return 0;
    pthread_mutex_lock(&r->mu);
    uint32_t i;
    for (i = 0; i < r->n && r->gens[i] != gen; i++)
        ;
    if (i == r->n) {
        if (r->n == r->cap) {
            uint32_t cap = r->cap ? 2 * r->cap : 8;
            uint64_t *g = realloc(r->gens, cap * sizeof *g);
            if (!g) {
                pthread_mutex_unlock(&r->mu);
                return ENOMEM;
            }
            r->gens = g;
            uint32_t *c = realloc(r->counts, cap * sizeof *c);
            if (!c) {
                pthread_mutex_unlock(&r->mu);
                return ENOMEM;
            }
            r->counts = c;
            r->cap = cap;
        }
        r->gens[i] = gen;
        r->counts[i] = 0;
        r->n++;
    }
    r->counts[i]++;
    publish(r);
    pthread_mutex_unlock(&r->mu);
    /* The caller reads the commit records next: that load must not pass the
     * store above (the writer does the mirror image: commit, fence, read). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return 0;
}

void jv_readers_leave(jv_readers *r, uint64_t gen)
{
    if (r->mine < 0)
        return;
    pthread_mutex_lock(&r->mu);
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->gens[i] == gen) {
            if (--r->counts[i] == 0) {
                r->gens[i] = r->gens[r->n - 1];
                r->counts[i] = r->counts[r->n - 1];
                r->n--;
            }
            break;
        }
    }
    publish(r);
    pthread_mutex_unlock(&r->mu);
}

uint64_t jv_readers_oldest(jv_readers *r)
{
    uint64_t low = UINT64_MAX;
    if (r->fd < 0)
        return low;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (uint32_t i = 0; i < JV_READER_SLOTS; i++) {
        uint64_t g = __atomic_load_n(&r->slots[i].generation, __ATOMIC_ACQUIRE);
        /* A slot whose lock nobody holds belongs to a dead process: ignore
         * what it says (it is never cleared here, which could race a new
         * owner claiming it). An error reading the lock counts as held. */
        if (g != 0 && g < low && jv_byte_locked(r->fd, slot_offset(i)) != 0)
            low = g;
    }
    return low;
}

void jv_readers_close(jv_readers *r, int inherited)
{
    if (r->mine >= 0 && !inherited) {
        __atomic_store_n(&r->slots[r->mine].generation, 0, __ATOMIC_SEQ_CST);
        jv_byte_unlock(r->fd, slot_offset((uint32_t)r->mine));
    }
    r->mine = -1;
    if (r->mapping) {
        munmap(r->mapping, TABLE_BYTES);
        r->mapping = NULL;
        r->slots = NULL;
    }
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
    free(r->gens);
    free(r->counts);
    r->gens = NULL;
    r->counts = NULL;
    r->n = r->cap = 0;
    if (r->mu_ready && !inherited) {
        pthread_mutex_destroy(&r->mu);
        r->mu_ready = 0;
    }
}
