/* CRC32C (Castagnoli), the checksum of every jadevec record.
 *
 * The SSE4.2 `crc32` instruction is used when the CPU has it (checked once);
 * elsewhere a slicing-by-8 table loop gives the same values. */
#ifndef JV_CRC32C_H
#define JV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: jv_crc32c(0, p, n) is the CRC of p[0..n). */
uint32_t jv_crc32c(uint32_t crc, const void *data, size_t len);
/* Force the portable path (1) or the best available (0); returns whether
 * hardware is in use afterwards. For tests. */
int jv_crc32c_force_software(int force);

#endif
