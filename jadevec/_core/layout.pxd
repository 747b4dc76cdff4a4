# On-disk structs of the vector file set (docs/vector_file_format.md), declared
# from jv_layout.h, whose _Static_asserts check every size and offset at
# compile time; tests/core/test_format_bytes.py checks them against the doc.
from jadevec._core._types cimport uint8_t, uint32_t, uint64_t


cdef extern from "jv_crc32c.h" nogil:
    uint32_t jv_crc32c(uint32_t crc, const void *data, size_t len)
    int jv_crc32c_force_software(int force)


cdef extern from "jv_hash.h" nogil:
    uint64_t jv_hash(const void *data, size_t len)


cdef extern from "jv_index.h" nogil:
    enum:
        JV_ENTRY_EMPTY
        JV_ENTRY_LIVE
        JV_ENTRY_TOMBSTONE
        JV_FOUND
        JV_ABSENT
        JV_ERR_ENTRY
        JV_ERR_KEY
        JV_ERR_FULL

    ctypedef struct jv_entry:
        uint64_t hash
        uint32_t slot
        uint32_t size
        uint32_t flags
        uint32_t vector_crc
        uint32_t sequence
        uint32_t crc

    ctypedef int (*jv_key_fn)(void *ctx, uint32_t slot, const char **key,
                              uint32_t *len) noexcept nogil

    ctypedef struct jv_table:
        jv_entry *entries
        uint64_t size
        uint64_t live
        uint64_t tombs
        jv_key_fn key
        void *ctx

    int jv_table_find(const jv_table *t, uint64_t h, const char *key, uint32_t len,
                      uint64_t *pos)
    uint32_t jv_entry_crc(const jv_entry *e)
    void jv_entry_seal(jv_entry *e)
    void jv_table_put(jv_table *t, uint64_t pos, uint64_t h, uint32_t slot, uint32_t size,
                      uint32_t vector_crc, uint32_t sequence)
    void jv_table_remove(jv_table *t, uint64_t pos)
    int jv_table_insert_new(jv_table *t, const jv_entry *e)
    uint64_t jv_table_size_for(uint64_t n)
    int jv_table_needs_grow(const jv_table *t, uint64_t more)
    int jv_table_rehash_into(const jv_table *t, jv_table *dst)


cdef extern from "jv_layout.h" nogil:
    enum:
        JV_MAGIC_VECTORS
        JV_MAGIC_SLOTS
        JV_MAGIC_INDEX
        JV_MAGIC_IDS
        JV_FORMAT_VERSION
        JV_HEADER_PAGE
        JV_COMMIT_B_OFFSET
        JV_FILE_HEADER
        JV_MAX_DIMENSION
        JV_MAX_ID_BYTES
        JV_SLOT_FREE
        JV_SLOT_LIVE
        JV_SLOT_DELETED
        JV_SLOT_SUPERSEDED
        JV_STATE_CLEAN
        JV_STATE_DIRTY

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
        uint32_t crc

    ctypedef struct jv_slots_header:
        uint32_t magic
        uint32_t version
        uint64_t generation
        uint64_t next_sequence
        uint32_t record_size
        uint32_t dimension
        uint32_t crc

    ctypedef struct jv_index_header:
        uint32_t magic
        uint32_t version
        uint64_t generation
        uint64_t table_size
        uint64_t live
        uint64_t tombstones
        uint32_t entry_size
        uint32_t crc

    ctypedef struct jv_ids_header:
        uint32_t magic
        uint32_t version
        uint64_t generation
        uint64_t end
        uint32_t crc

    ctypedef struct jv_slot:
        uint64_t id_offset
        uint32_t id_length
        uint32_t flags
        uint64_t sequence
        uint32_t vector_crc
        uint32_t crc

    ctypedef struct jv_id_record:
        uint32_t length
        uint32_t crc


cdef extern from "jv_records.h" nogil:
    const uint64_t JV_MAX_SLOTS

    ctypedef struct jv_key_view:
        char *slots
        char *ids
        uint64_t ids_size
        uint32_t high_water

    uint32_t jv_slot_crc(const jv_slot *rec)
    void jv_slot_seal(jv_slot *rec)
    bint jv_slot_is_blank(const jv_slot *rec)
    void jv_slot_supersede(jv_slot *rec)
    void jv_commit_fill(jv_commit *c, uint32_t dimension, uint32_t state,
                        uint64_t vector_count, uint64_t generation, uint32_t capacity,
                        uint32_t high_water, uint32_t row_stride)
    void jv_slots_header_fill(jv_slots_header *h, uint64_t generation,
                              uint64_t next_sequence, uint32_t dimension)
    void jv_index_header_fill(jv_index_header *h, uint64_t generation, uint64_t table_size,
                              uint64_t live, uint64_t tombstones)
    void jv_ids_header_fill(jv_ids_header *h, uint64_t generation, uint64_t end)
    bint jv_header_crc_ok(const void *header)
    uint64_t jv_id_record_size(uint32_t n)
    int jv_key_of_slot(void *view, uint32_t slot, const char **key,
                       uint32_t *len) noexcept
    uint64_t jv_id_append(char *ids, uint64_t end, const char *key, uint32_t n)
