/*
 * crc32.c - CRC-32 (the IEEE 802.3 / zlib polynomial, reflected 0xEDB88320)
 * for the pack backend's record framing. Slicing-by-4 tables, built once.
 */
#include <pthread.h>

#include "internal.h"

static uint32_t table[4][256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 4; t++)
      table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t mydb__crc32(uint32_t crc, const void *buf, size_t len) {
  pthread_once(&once, build);
  const unsigned char *p = buf;
  uint32_t c = ~crc;
  while (len >= 4) {
    c ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
    c = table[3][c & 0xff] ^ table[2][(c >> 8) & 0xff] ^
        table[1][(c >> 16) & 0xff] ^ table[0][c >> 24];
    p += 4;
    len -= 4;
  }
  while (len--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}
