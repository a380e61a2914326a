/*
 * sha256.c - SHA-256 via mbedTLS (the only mbedTLS user of the core).
 * mbedTLS 2.x has the *_ret functions; 3.x renamed them. Both return codes
 * are checked.
 */
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <string.h>

#include "internal.h"

int mydb__sha256(unsigned char out[32], const void *buf, size_t len) {
  mbedtls_sha256_context c;
  int rc;
  mbedtls_sha256_init(&c);
#if MBEDTLS_VERSION_MAJOR >= 3
  rc = mbedtls_sha256_starts(&c, 0);
  if (rc == 0) rc = mbedtls_sha256_update(&c, buf, len);
  if (rc == 0) rc = mbedtls_sha256_finish(&c, out);
#else
  rc = mbedtls_sha256_starts_ret(&c, 0);
  if (rc == 0) rc = mbedtls_sha256_update_ret(&c, buf, len);
  if (rc == 0) rc = mbedtls_sha256_finish_ret(&c, out);
#endif
  mbedtls_sha256_free(&c);
  if (rc != 0)
    return mydb__seterr(MYDB_EIO, "sha256 failed (mbedtls error -0x%04x)",
                        (unsigned)-rc);
  return MYDB_OK;
}

void mydb__hex(char *out, const unsigned char *in, size_t n) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[in[i] >> 4];
    out[2 * i + 1] = hx[in[i] & 15];
  }
}

int mydb_sha256_hex(char out[MYDB_DIGEST_BUF], const void *buf, size_t len) {
  unsigned char md[32];
  if (!out) return mydb__seterr(MYDB_EINVAL, "sha256: out is NULL");
  if (!buf && len) return mydb__seterr(MYDB_EINVAL, "sha256: buf is NULL");
  int rc = mydb__sha256(md, buf ? buf : "", len);
  if (rc) return rc;
  mydb__hex(out, md, 32);
  out[MYDB_DIGEST_HEX] = '\0';
  return MYDB_OK;
}

int mydb_digest_valid(const char *s, size_t len) {
  if (!s || len != MYDB_DIGEST_HEX) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
  }
  return 1;
}
