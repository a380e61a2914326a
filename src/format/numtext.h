/*
 * numtext.h - the text of a float in every byte mydb hashes: the shortest
 * decimal (of 15, 16 or 17 significant digits, or fewer for a subnormal)
 * that reads back to the same double, as printf's %g writes it.
 */
#ifndef MYDB_NUMTEXT_H
#define MYDB_NUMTEXT_H

#include <stddef.h>

#define MYDB_NUMTEXT_MAX 40 /* bytes of the longest text, with its NUL */

/* Writes d's text (finite d) to out; its length. A decimal comma (the
 * locale's) is written as a point; no ".0" is added to a whole number. */
size_t mydb__numtext(char out[MYDB_NUMTEXT_MAX], double d);

#endif
