/* keys.h: the store key layout of a user (CONTRACT.md section 4), built
 * and parsed here and nowhere else:
 *
 *   <h1>/<h2>/<user>                              the user prefix
 *   <user prefix>/idx/<bundle name>               a bundle of the user root
 *   <user prefix>/mailboxes/<guid>/idx/<bundle>   a bundle of folder <guid>
 *   <user prefix>/mailboxes/<guid>/<oid>          a mail of folder <guid>
 *
 * h1/h2 come from ids_user_hash().  A "root prefix" is the user prefix
 * for the user root (guid "") or "<user prefix>/mailboxes/<guid>" for a
 * folder; bundle_key_build() appends "/idx/<name>" to it.  Prefixes are
 * written without a trailing '/' except the listing prefixes
 * (keys_root_list_prefix(), keys_idx_prefix()).
 *
 * Builders return 0, or -1 with errno = ENAMETOOLONG if the result does
 * not fit in size (or in OBJSTORE_KEY_MAX), EINVAL if it is not a valid
 * objstore key.  Pure functions, no I/O, no shared state.
 */
#ifndef OBOXFS_KEYS_H
#define OBOXFS_KEYS_H

#include "ids.h"
#include "objstore.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the tree root's owner and mode (rootattr.h): outside every user's
   keys ("<h1>/<h2>/..." has a 2-character first segment) */
#define KEYS_ROOT_ATTR "oboxfs/root-attr"

/* fits any user or root prefix of a valid user name (255 bytes) */
#define KEYS_PREFIX_MAX 320

/* "<h1>/<h2>/<user>" */
int keys_user_prefix(const char *user, char *buf, size_t size);
/* the root prefix of folder guid ("" = the user root) below user_prefix */
int keys_root_prefix(const char *user_prefix, const char *guid, char *buf,
		     size_t size);
/* "<root prefix>/": what to list for all of a root's objects (for the
   user root that is all of the user's objects) */
int keys_root_list_prefix(const char *user_prefix, const char *guid,
			  char *buf, size_t size);
/* "<root prefix>/idx/": what to list for a root's bundles */
int keys_idx_prefix(const char *user_prefix, const char *guid, char *buf,
		    size_t size);
/* "<h1>/<h2>/<user>/mailboxes/<guid>/<time prefix>": where a listing of
   folder guid's mails made at or after (secs, usecs) starts
   (objstore_list_from(); mail oids are time-ordered: ids.h) */
int keys_mail_list_start(const char *user_prefix, const char *guid,
			 uint32_t secs, uint32_t usecs, char *buf,
			 size_t size);
/* "<h1>/<h2>/<user>/mailboxes/<folder_guid>/<oid>" */
int keys_mail_key(const char *user, const char *folder_guid, const char *oid,
		  char *buf, size_t size);
/* "<root prefix>/idx/" of the folder a mail key ("<user prefix>/mailboxes/
   <guid>/<oid>") belongs to: where the bundles that may reference it are.
   -1 with errno EINVAL if mail_key is not of that shape. */
int keys_mail_idx_prefix(const char *mail_key, char *buf, size_t size);
/* The oid (last segment) of a key, or NULL if the key does not end in a
   valid 32-hex-digit id. */
const char *keys_key_oid(const char *key);

enum keys_kind {
	KEYS_OTHER = 0,		/* not of this user, or not of the layout */
	KEYS_MAIL,		/* a mail: guid, name = its oid */
	KEYS_ROOT_BUNDLE,	/* a bundle of the user root: guid "" */
	KEYS_FOLDER_BUNDLE,	/* a bundle of folder guid */
};

struct keys_parsed {
	enum keys_kind kind;
	char guid[IDS_HEX_LEN + 1];	/* "" unless a mail or folder bundle */
	/* the oid of a mail, the bundle name of a bundle (not checked: see
	   bundle_name_parse()), NULL otherwise; points into the key */
	const char *name;
};

/* Parse key (untrusted) as an object below user_prefix (as
   keys_user_prefix() writes it).  Returns the kind (also in parsed_r):
   KEYS_OTHER for another user's key, a key longer than OBJSTORE_KEY_MAX,
   a GUID or oid that is not 32 lowercase hex digits, anything else. */
enum keys_kind keys_parse(const char *user_prefix, const char *key,
			  struct keys_parsed *parsed_r);

#endif
