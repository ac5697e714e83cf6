/* pathopen.c: openat() below a directory without following symlinks
 * (pathopen.h). */
#include "pathopen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* a ".." component anywhere */
static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
		if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	}
	return false;
}

/* openat() of one component, a symlink refused with ELOOP (as openat2()
   does; O_DIRECTORY | O_NOFOLLOW alone says ENOTDIR) */
static int open_component(int dirfd, const char *name, int flags)
{
	struct stat st;
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOTDIR &&
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		errno = ELOOP;
	return fd;
}

int pathopen_walk(int dirfd, const char *path, int flags)
{
	char name[NAME_MAX + 1];
	const char *p = path, *slash;
	int fd = -1, next;

	for (;;) {
		size_t len;

		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		len = slash == NULL ? strlen(p) : (size_t)(slash - p);
		if (len > NAME_MAX) {
			errno = ENAMETOOLONG;
			goto fail;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		while (slash != NULL && slash[1] == '/')
			slash++;
		if (slash == NULL || slash[1] == '\0') {
			next = open_component(fd < 0 ? dirfd : fd, name,
					      flags);
			if (fd >= 0)
				close(fd);
			return next;
		}
		next = open_component(fd < 0 ? dirfd : fd, name,
				      O_PATH | O_DIRECTORY);
		if (fd >= 0)
			close(fd);
		if (next < 0)
			return -1;
		fd = next;
		p = slash + 1;
	}
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

int pathopen(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (unsigned int)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	};
	long fd;

	if (path[0] == '\0')
		path = ".";
	if (path[0] == '/' || has_dotdot(path)) {
		errno = EXDEV;
		return -1;
	}
	fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return pathopen_walk(dirfd, path, flags);
	return (int)fd;
}
