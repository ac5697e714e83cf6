/* ids.h: unique ids (OIDs, folder GUIDs) and the user-name hash (the
 * store keys made of them: keys.h). */
#ifndef OBOXFS_IDS_H
#define OBOXFS_IDS_H

#include <stdbool.h>
#include <stddef.h>

/* 128-bit ids are written as 32 lowercase hex digits */
#define IDS_HEX_LEN 32

/* Fill hex_r with a new random 128-bit id (getrandom()).  Returns 0, or -1
   with errno set. */
int ids_generate(char hex_r[IDS_HEX_LEN + 1]);
/* True if s is exactly 32 lowercase hex digits. */
bool ids_is_hex_id(const char *s);

/* The user's partition: the first 5 hex digits of SHA-256(user), split 2/3
   (h1 = digits 0-1, h2 = digits 2-4), e.g. "b5" and "899". */
void ids_user_hash(const char *user, char h1_r[3], char h2_r[4]);

#endif
