/* fuzzinput.h — what the libFuzzer targets share: cutting the fuzzer's bytes into fields,
 * and the check that a message the code under test wrote is one printable line. */
#ifndef GW_FUZZ_INPUT_H
#define GW_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Takes up to want bytes from *p into a fresh exact-size buffer (its length in *len), so
 * that AddressSanitizer sees a read past the field. */
static inline char *fuzz_take(const uint8_t **p, size_t *left, size_t want, size_t *len)
{
    size_t n = want < *left ? want : *left;
    char *b = malloc(n ? n : 1);
    if (b == NULL)
        abort();
    memcpy(b, *p, n);
    *p += n;
    *left -= n;
    *len = n;
    return b;
}

/* Aborts (a finding) unless s is printable ASCII only: one line for a log or a header. */
static inline void fuzz_check_printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            abort();
}

#endif
