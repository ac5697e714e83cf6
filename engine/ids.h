/* ids.h: unique ids (OIDs, folder GUIDs) and the store key of a mail. */
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

/* Write "<h1>/<h2>/<user>/mailboxes/<folder_guid>/<oid>" to buf.  Returns 0,
   or -1 with errno = ENAMETOOLONG if it does not fit or is not a valid
   objstore key (errno = EINVAL). */
int ids_mail_key(const char *user, const char *folder_guid, const char *oid,
		 char *buf, size_t size);
/* The oid (last segment) of a mail key, or NULL if the key does not end in
   a valid 32-hex-digit id. */
const char *ids_key_oid(const char *key);

#endif
