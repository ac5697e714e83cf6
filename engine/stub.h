/* stub.h: mail stubs in the metacache.
 *
 * A stored mail is an empty regular file in the metacache whose xattrs
 * give its object key (relative to the store root) and the mail's size;
 * their encoding is bundles/stubattr.h's, the lowest layer that writes
 * them.  A file is a stub iff it is a regular file of size 0 on disk with
 * those xattrs: the size test keeps the common case (a non-empty index
 * file) free of xattr calls.
 * Values read back are validated: a damaged stub is an error (EIO), never
 * trusted.
 */
#ifndef OBOXFS_STUB_H
#define OBOXFS_STUB_H

#include "bundle.h"
#include "objstore.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* On a plain file that was a stub (rewritten, truncated): the object key it
   had.  The object is released only once the new content is stored
   (mailstore_store()) or the file's last name goes, never before. */
#define STUB_XATTR_OLDKEY "user.oboxfs.oldkey"

/* On a stub stored from a maildir tmp/ file at its fsync (mailfile.c),
   or on the plain file it became again (with STUB_XATTR_OLDKEY): its
   object has never had a name in a mail location (nor anywhere an index
   bundle could list it).  When such a file's object loses its last
   reference (the tmp/ file unlinked or replaced: Dovecot aborted the
   save; or rewritten and stored again) it is deleted at once
   (objgc_discard()), so no rescan ever puts back a delivery that was
   refused.  Removed before the file gets a name anywhere else
   (mailnames.c); a lost marker only means the object is released the
   usual way instead. */
#define STUB_XATTR_UNNAMED "user.oboxfs.unnamed"

struct stub {
	char key[OBJSTORE_KEY_MAX + 1];
	uint64_t size;
};

/* fd may be any fd of the file, O_PATH too; st its fstat().  Returns 1 and
   fills stub_r if it is a stub, 0 if not, -1 with errno on error (EIO for a
   damaged stub, logged). */
int stub_read(int fd, const struct stat *st, struct stub *stub_r);
/* Read the STUB_XATTR_OLDKEY of fd (any fd).  Returns 1 with key_r filled,
   0 if there is none, -1 with errno on error (EIO if damaged, logged). */
int stub_read_oldkey(int fd, char key_r[OBJSTORE_KEY_MAX + 1]);
/* Is STUB_XATTR_UNNAMED set on fd (any fd)?  Returns 1, 0, or -1 with
   errno. */
int stub_read_unnamed(int fd);
/* Set (unnamed) or remove (missing is fine) STUB_XATTR_UNNAMED on fd.
   Returns 0 or -1 with errno. */
int stub_set_unnamed(int fd, bool unnamed);
/* Write the stub xattrs to fd.  Returns 0 or -1 with errno. */
int stub_write(int fd, const struct stub *stub);
/* What one stub takes on the disk of directory dir_fd (st_blocks of a
   probe stub with a key of typical length: 0, or a block when the xattrs
   do not fit in the inode), for the metacache's accounting; 4096 if it
   cannot be measured. */
uint64_t stub_disk_bytes(int dir_fd);
/* Remove the stub xattrs from fd (missing ones are fine). */
int stub_clear(int fd);
/* If st is a stub's stat, replace st_size/st_blocks with the mail's.  Returns
   0 or -1 with errno. */
int stub_fix_stat(int fd, struct stat *st);

/* xattr calls on any fd (O_PATH too): bundle_fd_*xattr() */
ssize_t fd_getxattr(int fd, const char *name, void *value, size_t size);
int fd_setxattr(int fd, const char *name, const void *value, size_t size,
		int flags);
int fd_removexattr(int fd, const char *name);

#endif
