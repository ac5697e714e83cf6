/* smallfile.h: small files of a user's tree the engine itself reads and
 * rewrites behind Dovecot (a split-brain merge: dovecot-keywords,
 * subscriptions): read whole with a bound, rewritten in place (the inode
 * stays, so the front end only drops the kernel's cached view of it) with
 * an mtime moved past the old one, since Dovecot rereads such files when
 * their mtime in seconds changes. */
#ifndef OBOXFS_SMALLFILE_H
#define OBOXFS_SMALLFILE_H

#include <stddef.h>

/* dir_fd's file name (not followed if a symlink) into *text_r (malloc()ed,
   NUL-terminated, *len_r bytes; at most max bytes are read).  1 if read,
   0 if there is no such file (*text_r NULL), -1 with errno. */
int smallfile_read(int dir_fd, const char *name, size_t max, char **text_r,
		   size_t *len_r);
/* write() all of data (len bytes) to fd, again after EINTR and short
   writes: 0, or -1 with errno. */
int smallfile_write_all(int fd, const void *data, size_t len);
/* Make dir_fd's file name hold text (len bytes), in place; a file made
   here gets the directory's owner and mode 0600.  0, or -1 with errno
   (EINVAL: not a regular file). */
int smallfile_rewrite(int dir_fd, const char *name, const char *text,
		      size_t len);

#endif
