# The C side of the vector file set, declared once: the on-disk structs
# (jv_layout.h, whose _Static_asserts check every size and offset at compile
# time; tests/core/test_format_bytes.py checks them against the doc), record
# encoding (jv_records.h), the paged hash table (jv_index.h) and the file set
# itself (jv_fileset.h). Every Cython module of the file set cimports from here.
from jadevec._core._types cimport uint8_t, uint16_t, uint32_t, uint64_t
from jadevec._core.mapped_file cimport jv_map, jv_mfile, jv_rwlock


cdef extern from "jv_crc32c.h" nogil:
    uint32_t jv_crc32c(uint32_t crc, const void *data, size_t len)
    int jv_crc32c_force_software(int force)


cdef extern from "jv_hash.h" nogil:
    uint64_t jv_hash(const void *data, size_t len)


cdef extern from "jv_layout.h" nogil:
    enum:
        JV_MAGIC_VECTORS
        JV_MAGIC_SLOTS
        JV_MAGIC_INDEX
        JV_MAGIC_IDS
        JV_MAGIC_READERS
        JV_FORMAT_VERSION
        JV_HEADER_PAGE
        JV_COMMIT_B_OFFSET
        JV_FILE_HEADER
        JV_MAX_DIMENSION
        JV_MAX_ID_BYTES
        JV_SLOT_RECORD
        JV_ID_ALIGN
        JV_READER_SLOT
        JV_READER_SLOTS
        JV_PAGE
        JV_PAGE_ENTRIES
        JV_MIN_TABLE
        JV_SLOT_FREE
        JV_SLOT_LIVE
        JV_SLOT_DELETED
        JV_STATE_CLEAN
        JV_STATE_DIRTY
        JV_STATE_MOVED
        JV_ENTRY_EMPTY
        JV_ENTRY_LIVE
        JV_ENTRY_TOMBSTONE
    const uint64_t JV_MAX_SLOTS
    const uint64_t JV_MAX_TABLE
    const uint64_t JV_MAX_COUNTER

    ctypedef struct jv_commit:
        uint32_t magic
        uint32_t version
        uint32_t dimension
        uint32_t state
        uint64_t vector_count
        uint64_t index_offset
        uint64_t data_offset
        uint64_t generation
        uint32_t capacity
        uint32_t high_water
        uint32_t row_stride
        uint32_t header_crc
        uint64_t table_size
        uint64_t tombstones
        uint64_t ids_end
        uint64_t next_sequence
        uint64_t set_id
        uint32_t map_crc
        uint32_t crc

    ctypedef struct jv_file_header:
        uint32_t magic
        uint32_t version
        uint64_t set_id
        uint32_t dimension
        uint32_t unit
        uint32_t count
        uint32_t crc

    ctypedef struct jv_slot:
        uint64_t id_offset
        uint32_t id_length
        uint32_t flags
        uint64_t sequence
        uint32_t vector_crc
        uint32_t crc

    ctypedef struct jv_entry:
        uint64_t hash
        uint32_t slot
        uint16_t id_length
        uint16_t flags
        uint64_t id_offset
        uint32_t vector_crc
        uint32_t crc

    ctypedef struct jv_id_record:
        uint32_t length
        uint32_t crc


cdef extern from "jv_records.h" nogil:
    uint32_t jv_slot_crc(const jv_slot *rec)
    void jv_slot_seal(jv_slot *rec)
    bint jv_slot_is_blank(const jv_slot *rec)
    void jv_commit_seal(jv_commit *c)
    int jv_commit_check(const jv_commit *c)
    void jv_file_header_fill(jv_file_header *h, uint32_t magic, uint64_t set_id,
                             uint32_t dimension, uint32_t unit, uint32_t count)
    bint jv_header_crc_ok(const void *header)
    uint64_t jv_id_record_size(uint32_t n)
    int jv_id_at(const char *ids, uint64_t end, uint64_t off, uint32_t n, const char **key)
    uint64_t jv_id_append(char *ids, uint64_t end, const char *key, uint32_t n)


cdef extern from "jv_index.h" nogil:
    enum:
        JV_FOUND
        JV_ABSENT
        JV_ERR_ENTRY
        JV_ERR_KEY
        JV_ERR_FULL

    ctypedef struct jv_retired:
        pass

    ctypedef struct jv_pages:
        uint64_t npages
        uint64_t nfree
        uint64_t tag
        jv_retired retired

    ctypedef struct jv_table:
        char *base
        uint32_t *map
        uint64_t size
        uint64_t live
        uint64_t tombs
        const char *ids
        uint64_t ids_end
        uint64_t slot_limit
        jv_pages *pages
        uint64_t owned_pages

    uint64_t jv_retired_count(const jv_retired *r)
    int jv_pages_alloc(jv_pages *p, uint32_t *page)
    jv_entry *jv_entry_at(const jv_table *t, uint64_t pos)
    uint64_t jv_table_pages(const jv_table *t)
    int jv_table_find(const jv_table *t, uint64_t h, const char *key, uint32_t len,
                      uint64_t *pos)
    uint32_t jv_entry_crc(const jv_entry *e)
    int jv_entry_check(const jv_table *t, const jv_entry *e)
    void jv_table_put(jv_table *t, uint64_t pos, uint64_t h, uint32_t slot, uint64_t id_offset,
                      uint32_t id_length, uint32_t vector_crc)
    void jv_table_remove(jv_table *t, uint64_t pos)
    int jv_table_insert_new(jv_table *t, const jv_entry *e)
    uint64_t jv_table_size_for(uint64_t n)


cdef extern from "jv_fileset.h" nogil:
    enum:
        JV_FILE_VEC
        JV_FILE_SLOTS
        JV_FILE_INDEX
        JV_FILE_IDS
        JV_NFILES
        JV_FILE_READERS
        JV_ST_OK
        JV_ST_OS
        JV_ST_CORRUPT
        JV_ST_CLOSED
        JV_ST_READONLY
        JV_ST_FAILED
        JV_ST_FULL
        JV_ST_MOVED
        JV_ST_BUSY

    ctypedef struct jv_status:
        int code
        int err
        int file
        const char *what
        uint64_t where

    const uint64_t JV_NO_POSITION

    ctypedef struct jv_readers:
        int fd
        int mine

    ctypedef struct jv_snapshot:
        jv_commit commit
        jv_map *maps[4]
        jv_table table

    ctypedef struct jv_view:
        const jv_table *table
        const char *rows
        const char *slots
        uint32_t dimension
        uint32_t row_stride
        uint32_t high_water
        uint64_t count
        uint64_t hash_mask
        int check_reads

    ctypedef struct jv_fileset:
        jv_mfile f[4]
        jv_readers readers
        jv_rwlock lock
        uint32_t dimension
        uint32_t row_stride
        uint32_t capacity
        uint32_t high_water
        uint64_t set_id
        uint64_t hash_mask
        jv_commit newest
        int newest_record
        uint64_t generation
        uint64_t next_seq
        uint64_t ids_end
        jv_table table
        jv_pages pages
        uint32_t area[2]
        uint64_t area_pages
        int area_current
        uint64_t nfree_slots
        jv_retired retired_slots
        uint8_t *skip
        uint64_t skip_size
        int read_only
        int check_reads
        int dirty
        int changed
        int failed
        int closed
        int free_ready

    uint64_t jv_row_stride_for(uint32_t dimension)
    char *jv_fs_row(const jv_fileset *fs, uint32_t slot)
    jv_slot *jv_fs_slot(const jv_fileset *fs, uint32_t slot)
    int jv_fail(jv_status *st, int code, int file, const char *what, uint64_t where)
    int jv_fail_os(jv_status *st, int err, int file, const char *what)
    jv_fileset *jv_fs_new()
    void jv_fs_free(jv_fileset *fs, int inherited)
    int jv_fs_create(jv_fileset *fs, const char *dir, uint32_t dimension, uint32_t capacity,
                     uint64_t set_id, uint64_t first_generation, jv_status *st)
    int jv_fs_map_files(jv_fileset *fs, const char *dir, int read_only, jv_status *st)
    int jv_fs_close(jv_fileset *fs, int inherited, jv_status *st)
    int jv_fs_load_map(jv_fileset *fs, const jv_mfile *index, const jv_commit *c,
                       uint32_t **out, jv_status *st)
    int jv_fs_read_newest(const jv_fileset *fs, jv_commit *c, int *record)
    int jv_fs_begin_write(jv_fileset *fs, jv_status *st)
    int jv_fs_reserve(jv_fileset *fs, uint64_t vectors, uint64_t id_bytes, jv_status *st)
    void jv_fs_prefault(jv_fileset *fs, uint64_t vectors)
    int jv_fs_put(jv_fileset *fs, uint64_t h, const char *key, uint32_t n, const float *values,
                  int must_exist, jv_status *st)
    int jv_fs_delete(jv_fileset *fs, uint64_t h, const char *key, uint32_t n, jv_status *st)
    int jv_fs_checkpoint(jv_fileset *fs, uint32_t state, jv_status *st)
    ctypedef struct jv_pending:
        jv_commit commit
        int target
        uint64_t generation
        jv_map *maps[4]
        uint64_t sizes[4]
    int jv_fs_checkpoint_begin(jv_fileset *fs, uint32_t state, jv_pending *p, jv_status *st)
    int jv_fs_checkpoint_sync(jv_pending *p, jv_status *st)
    int jv_fs_checkpoint_end(jv_fileset *fs, jv_pending *p, int sync_rc, jv_status *st)
    int jv_fs_flush(jv_fileset *fs, jv_status *st)
    int jv_fs_build_free(jv_fileset *fs, const jv_table *committed, jv_status *st)
    int jv_fs_build_skip(jv_fileset *fs, jv_status *st)
    int jv_fs_reserve_pages(jv_fileset *fs, uint64_t n, jv_status *st)
    int jv_fs_rehash(jv_fileset *fs, uint64_t more, jv_status *st)
    void jv_fs_view(const jv_fileset *fs, jv_view *v)
    void jv_fs_fill_commit(const jv_fileset *fs, uint32_t state, uint64_t generation,
                           uint32_t map_crc, uint64_t index_offset, jv_commit *c)
    int jv_fs_snap_begin(jv_fileset *fs, jv_snapshot **out, jv_status *st)
    void jv_fs_snap_end(jv_fileset *fs, jv_snapshot *s)
    void jv_snap_view(const jv_fileset *fs, const jv_snapshot *s, jv_view *v)
    const uint8_t *jv_snap_skip(jv_snapshot *s, jv_status *st)
    int jv_view_get(const jv_view *v, uint64_t h, const char *key, uint32_t n, float *out,
                    jv_status *st)
    int jv_view_id_of(const jv_view *v, uint32_t slot, const char **key, uint32_t *n,
                      jv_status *st)
    int jv_table_status(int rc, uint64_t pos, jv_status *st)
    int jv_fs_open_readers(jv_fileset *fs, const char *dir, jv_status *st)
