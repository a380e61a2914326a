/*
 * sha256.c - SHA-256 via OpenSSL's libcrypto (the only libcrypto user).
 *
 * Why libcrypto and not mbedTLS (the first choice): every object is hashed
 * when written and again when read from disk, and libcrypto uses the CPU's
 * SHA instructions (SHA-NI, ARMv8 SHA2) where mbedTLS 2.28 has only
 * portable C: 1,375 against 329 MB/s on 2 KiB pieces on the machine the
 * README's figures come from.
 *
 * Through SHA256_Init/Update/Final, not EVP_Digest: OpenSSL 3's EVP_Digest
 * (and its one-shot SHA256(), now EVP_Q_digest) fetch the method from the
 * provider store on every call - a lock, a hash-table lookup, a context
 * allocated and freed: 0.6 us a call, measured, where a put hashes ~20
 * keys and pieces of 12 B to 2 KiB (chunk hashes, pieces, the commit).
 * The low-level functions are deprecated in 3.0 but kept, run the same
 * assembly (SHA-NI where the CPU has it), need no allocation, and are
 * thread-safe with the context on the stack. (An EVP_MD_fetch'ed method
 * held for the process would outlive libcrypto's own cleanup at exit: a
 * leak under valgrind.)
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final */
#include <openssl/sha.h>
#include <string.h>

#include "internal.h"

/* (relaxed: a count, read only as a diagnostic) */
static atomic_uint_least64_t hashed_bytes;

uint64_t mydb_hashed_bytes(void) {
  return (uint64_t)atomic_load_explicit(&hashed_bytes, memory_order_relaxed);
}

int mydb__sha256(unsigned char out[32], const void *buf, size_t len) {
  atomic_fetch_add_explicit(&hashed_bytes, (uint_least64_t)len,
                            memory_order_relaxed);
  SHA256_CTX c;
  if (!SHA256_Init(&c) || !SHA256_Update(&c, buf, len) || !SHA256_Final(out, &c))
    return mydb__seterr(MYDB_EIO, "sha256 failed (libcrypto SHA256)");
  return MYDB_OK;
}

/* The chaining value is SHA256_CTX's h (public in openssl/sha.h, the
 * low-level API's context); between whole 64-byte blocks the context is h
 * and the bit count alone (num 0: no partial block), so a kept h and the
 * offset it stands for make a context that hashes on as if it had hashed
 * the bytes before. */
int mydb__sha256_strides(unsigned char out[32], const void *buf, size_t len,
                         size_t from, mydb__shastate *st) {
  const unsigned char *p = buf;
  SHA256_CTX c;
  if (from > len || from % MYDB_SHA_STRIDE) from = 0; /* (never: the caller's bug) */
  atomic_fetch_add_explicit(&hashed_bytes, (uint_least64_t)(len - from),
                            memory_order_relaxed);
  if (!SHA256_Init(&c)) goto fail;
  if (from) {
    memcpy(c.h, st[from / MYDB_SHA_STRIDE - 1].h, sizeof c.h);
    uint64_t bits = (uint64_t)from * 8;
    c.Nl = (SHA_LONG)bits;
    c.Nh = (SHA_LONG)(bits >> 32);
  }
  size_t k = from / MYDB_SHA_STRIDE;
  for (; (k + 1) * MYDB_SHA_STRIDE <= len; k++) {
    if (!SHA256_Update(&c, p + k * MYDB_SHA_STRIDE, MYDB_SHA_STRIDE)) goto fail;
    memcpy(st[k].h, c.h, sizeof st[k].h);
  }
  if (!SHA256_Update(&c, p + k * MYDB_SHA_STRIDE, len - k * MYDB_SHA_STRIDE) ||
      !SHA256_Final(out, &c))
    goto fail;
  return MYDB_OK;
fail:
  return mydb__seterr(MYDB_EIO, "sha256 failed (libcrypto SHA256)");
}

void mydb__hex(char *out, const unsigned char *in, size_t n) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[in[i] >> 4];
    out[2 * i + 1] = hx[in[i] & 15];
  }
}

/* Arithmetic, no branch or table a digit: '0'-'9' are 0x30-0x39 and
 * 'a'-'f' 0x61-0x66, so the low nibble, plus 9 when bit 6 is set, is the
 * value. (A digest's digits are random: a test per digit mispredicts, as in
 * mydb_digest_valid below; roots are parsed twice a put.) */
void mydb__unhex(unsigned char out[32], const char *hex) {
  const unsigned char *h = (const unsigned char *)hex;
  for (size_t i = 0; i < 32; i++) {
    unsigned hi = h[2 * i], lo = h[2 * i + 1];
    hi = (hi & 15) + 9 * (hi >> 6);
    lo = (lo & 15) + 9 * (lo >> 6);
    out[i] = (unsigned char)(hi << 4 | lo);
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

/* Branch-free over the 64 characters (the compiler vectorizes it): a
 * digest's characters are random, so the two-range test per character with
 * an early exit mispredicted about every other character - 160 ns a call,
 * measured, against 8 ns; a put validates ~30 digests on pack. */
int mydb_digest_valid(const char *s, size_t len) {
  if (!s || len != MYDB_DIGEST_HEX) return 0;
  unsigned bad = 0;
  for (size_t i = 0; i < MYDB_DIGEST_HEX; i++) {
    unsigned char c = (unsigned char)s[i];
    bad |= (unsigned)((unsigned char)(c - '0') > 9) &
           (unsigned)((unsigned char)(c - 'a') > 5);
  }
  return !bad;
}
