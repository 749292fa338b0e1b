/* uuid.h — RFC 4122 version-4 UUID text from caller-supplied random bytes. Pure.
 *
 * The caller (session.c / gateway.c) owns the randomness source; this module only
 * sets the version and variant bits and formats. Used for generated
 * correlation_id and message_id values (SPEC §6).
 */
#ifndef GW_UUID_H
#define GW_UUID_H

#include <stdint.h>

#define GW_UUID_TEXT_LEN 36 /* "xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx", N in 8..b */

/* Writes the lowercase 36-character form of a version-4 UUID built from
 * random16 (borrowed) plus a NUL into out. 122 of the 128 bits come from
 * random16; the version nibble is 4 and the variant bits are 10. */
void gw_uuid_v4(const uint8_t random16[16], char out[GW_UUID_TEXT_LEN + 1]);

#endif
