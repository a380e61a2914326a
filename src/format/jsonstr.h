/*
 * jsonstr.h - JSON string literals, shared by the head journal (core) and
 * the value codec (Lua binding).
 */
#ifndef MYDB_JSONSTR_H
#define MYDB_JSONSTR_H

#include <stddef.h>

#include "buf.h"

/* 1 if s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int mydb_utf8_valid(const char *s, size_t len);

/* Appends s as a JSON string literal with its quotes. Escapes '"', '\\',
 * and bytes < 0x20 (as \n \t \r \b \f or \u00XX), and 0x7f as \u007f; other
 * bytes are copied as they are. Canonical: one output for one input. */
void mydb_json_put_string(mydb_buf *b, const char *s, size_t len);

/* Parses the JSON string literal starting at p (which must point at '"')
 * within [p, end). Appends the decoded bytes to out (\uXXXX escapes become
 * UTF-8; a surrogate pair becomes one code point; a lone surrogate is an
 * error). Returns a pointer just past the closing quote, or NULL on a
 * malformed literal. Raw bytes >= 0x20 are accepted as they are. */
const char *mydb_json_get_string(mydb_buf *out, const char *p, const char *end);

#endif
