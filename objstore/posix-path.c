/* posix-path.c: safe path handling below the file:// store's root.  Symlinks
 * are never followed: openat2() with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS
 * where the kernel has it, else a walk opening every segment O_NOFOLLOW.
 * Also opens (or creates, mkdir -p style) the directory that holds a key. */
#include "posix-path.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static _Atomic int openat2_missing;

/* close fd unless it is root_fd, keeping errno */
static void close_keep_errno(int fd, int root_fd)
{
	int saved = errno;

	if (fd != root_fd)
		close(fd);
	errno = saved;
}

/* open path (relative to the root) with O_NOFOLLOW on every segment */
static int walk_open(int root_fd, const char *path, int flags)
{
	char buf[OBJSTORE_KEY_MAX + 1];
	int cur = root_fd, fd;
	char *seg = buf, *slash;

	if (strlen(path) > OBJSTORE_KEY_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	while ((slash = strchr(seg, '/')) != NULL) {
		*slash = '\0';
		fd = openat(cur, seg, DIR_FLAGS);
		close_keep_errno(cur, root_fd);
		if (fd < 0)
			return -1;
		cur = fd;
		seg = slash + 1;
	}
	fd = openat(cur, seg, flags | O_NOFOLLOW | O_CLOEXEC);
	close_keep_errno(cur, root_fd);
	return fd;
}

int posix_open_beneath(int root_fd, const char *path, int flags)
{
#ifdef SYS_openat2
	if (!atomic_load(&openat2_missing)) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
				   RESOLVE_NO_MAGICLINKS,
		};
		long fd;

		/* EAGAIN: a concurrent rename somewhere; try again */
		for (int i = 0; i < 10; i++) {
			fd = syscall(SYS_openat2, root_fd, path, &how,
				     sizeof(how));
			if (fd >= 0 || errno != EAGAIN)
				break;
		}
		if (fd >= 0 || (errno != ENOSYS && errno != EAGAIN))
			return (int)fd;
		if (errno == ENOSYS)
			atomic_store(&openat2_missing, 1);
	}
#endif
	return walk_open(root_fd, path, flags);
}

int posix_open_parent(int root_fd, const char *key, int flags, int *dfd_r,
		      const char **name_r)
{
	char buf[OBJSTORE_KEY_MAX + 1];
	char *seg = buf, *slash;
	int cur, fd;

	if (strlen(key) > OBJSTORE_KEY_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, key);
	cur = dup(root_fd);
	if (cur < 0)
		return -1;
	while ((slash = strchr(seg, '/')) != NULL) {
		*slash = '\0';
		fd = openat(cur, seg, DIR_FLAGS);
		if (fd < 0 && errno == ENOENT &&
		    (flags & POSIX_PARENT_CREATE) != 0) {
			/* EEXIST: another thread created it first */
			if (mkdirat(cur, seg, 0700) == 0) {
				/* the new directory's name must survive a
				   crash like the object put into it */
				if ((flags & POSIX_PARENT_SYNC) != 0 &&
				    fsync(cur) < 0) {
					close_keep_errno(cur, -1);
					return -1;
				}
			} else if (errno != EEXIST) {
				close_keep_errno(cur, -1);
				return -1;
			}
			fd = openat(cur, seg, DIR_FLAGS);
		}
		close_keep_errno(cur, -1);
		if (fd < 0)
			return -1;
		cur = fd;
		seg = slash + 1;
	}
	*dfd_r = cur;
	*name_r = key + (seg - buf);
	return 0;
}
