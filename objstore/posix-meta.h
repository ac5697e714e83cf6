/* posix-meta.h: object metadata of the file:// store, kept as a JSON object
 * {"name": "value" | {"hex": "..."}} in the user.oboxfs.meta xattr: encoding,
 * and decoding with validation (the xattr is untrusted input). */
#ifndef OBOXFS_POSIX_META_H
#define OBOXFS_POSIX_META_H

#include "objstore-private.h"

#define POSIX_META_XATTR "user.oboxfs.meta"
/* the largest xattr value read back */
#define POSIX_META_XATTR_MAX 16384

/* Encode already validated metadata as JSON.  Values that are not UTF-8 are
   stored hex-encoded.  Returns a malloc()ed string, or NULL (out of memory
   or an over-long value). */
char *posix_meta_encode(const struct objstore_meta *meta,
			unsigned int meta_count);

/* Parse and validate size bytes of JSON read back from a file and set them
   as stat's metadata.  Returns 0, or -1 with *reason_r saying what is
   wrong. */
int posix_meta_decode(const char *buf, size_t size, struct objstore_stat *stat,
		      const char **reason_r);

#endif
