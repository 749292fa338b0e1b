/* uuid.c — RFC 4122 §4.4 version-4 UUID formatting.
 *
 * Sets the four version bits of octet 6 to 0100 and the two variant bits of
 * octet 8 to 10, then prints 8-4-4-4-12 lowercase hex. No randomness here.
 */
#include "uuid.h"

void gw_uuid_v4(const uint8_t random16[16], char out[GW_UUID_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    for (int i = 0; i < 16; i++)
        b[i] = random16[i];
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);

    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}
