/* posix-path.h: safe path handling below the file:// store's root: opening
 * an existing path without following any symlink (openat2 RESOLVE_BENEATH,
 * else an O_NOFOLLOW walk) and opening (or creating, mkdir -p style) the
 * directory that holds a key. */
#ifndef OBOXFS_POSIX_PATH_H
#define OBOXFS_POSIX_PATH_H

#include <stdbool.h>

/* Open path (relative to root_fd) with open(2) flags, never following a
   symlink in any segment.  Returns the fd or -1 with errno (ELOOP/EXDEV for
   a symlink, ENAMETOOLONG for a path longer than OBJSTORE_KEY_MAX). */
int posix_open_beneath(int root_fd, const char *path, int flags);

/* posix_open_parent() flags: create the missing directories (mode 0700);
   and fsync the parent of each directory created. */
#define POSIX_PARENT_CREATE 0x1
#define POSIX_PARENT_SYNC 0x2

/* Open the directory that holds key (relative to root_fd), creating the
   missing ones if flags has POSIX_PARENT_CREATE.  *name_r points to the
   last segment inside key.  Returns 0 or -1 with errno. */
int posix_open_parent(int root_fd, const char *key, int flags, int *dfd_r,
		      const char **name_r);

#endif
