/* stubattr.h: the xattrs that make a metacache file a mail stub, written
 * and read here and nowhere else (bundle scan/write, engine/stub.c).
 *
 * A stub is an empty regular file whose xattrs give its object key and
 * the mail's size.  Two encodings:
 *
 *   compact (written whenever the key is "<prefix>/<32 hex>/<32 hex>",
 *   as every mail key is):
 *     BUNDLE_XATTR_STUB    1 byte version (1), the two 32-hex segments
 *                          as 16 bytes each, the size as 8 bytes little
 *                          endian: 41 bytes, set first, so it lands in
 *                          the inode (ext4 keeps ~60 bytes of value
 *                          there in a 256-byte inode)
 *     BUNDLE_XATTR_KPREFIX <prefix>, the same for every mail of a user:
 *                          it does not fit in the inode any more, and the
 *                          filesystem shares one xattr block among every
 *                          stub with the same value (ext4's mbcache)
 *   legacy (any other key, and every stub written before):
 *     BUNDLE_XATTR_KEY     the key;  BUNDLE_XATTR_SIZE the size, decimal
 *
 * A unique xattr block per stub cost ~40 us of CPU and 4 KiB of disk
 * each; the compact one costs neither.  Readers take both encodings.
 *
 * fd may be any fd of the file, O_PATH too (through /proc/self/fd).  Keys
 * read back are checked for shape only (bundle_key_check()): callers
 * validate them as their layout wants.
 */
#ifndef OBOXFS_BUNDLE_STUBATTR_H
#define OBOXFS_BUNDLE_STUBATTR_H

#include "bundle.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BUNDLE_XATTR_STUB "user.oboxfs.stub"
#define BUNDLE_XATTR_KPREFIX "user.oboxfs.kp"
#define BUNDLE_STUB_ATTR_VERSION 1
#define BUNDLE_STUB_ATTR_LEN 41

/* xattr calls on any fd (O_PATH too) */
ssize_t bundle_fd_getxattr(int fd, const char *name, void *value,
			   size_t size);
int bundle_fd_setxattr(int fd, const char *name, const void *value,
		       size_t size, int flags);
/* removing a missing xattr is fine */
int bundle_fd_removexattr(int fd, const char *name);

/* Make fd a stub of key (valid: bundle_key_check()) and size, replacing
   the other encoding's xattrs if any.  Returns 0 or -1 with errno. */
int bundle_stub_attr_write(int fd, const char *key, uint64_t size);
/* The same for a file just created (it has no xattrs to replace). */
int bundle_stub_attr_write_new(int fd, const char *key, uint64_t size);
/* Read the stub xattrs of fd: 1 with key_r (room for BUNDLE_KEY_MAX + 1;
   NULL: only the size is wanted, one xattr read for a compact stub) and
   *size_r filled, 0 if fd has none, -1 with errno: EIO and *error_r for
   damaged ones, else the read's error. */
int bundle_stub_attr_read(int fd, char *key_r, uint64_t *size_r,
			  const char **error_r);
/* Remove every stub xattr of fd.  Returns 0 or -1 with errno. */
int bundle_stub_attr_clear(int fd);

#endif
