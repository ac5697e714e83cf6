/* posix-tmp.c: the file:// store's temporary directory <root>/.oboxfs-tmp.
 * Every write goes to a uniquely named file there and is renamed into
 * place.  A writer that crashed leaves its file behind; those are removed
 * at init once they are old enough that no live writer can own them
 * (other processes may be writing fresh ones right now). */
#include "posix-tmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int posix_tmp_create(int tmp_fd, _Atomic uint64_t *counter, char *name,
		     size_t name_size)
{
	struct timespec ts;
	int fd;

	do {
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(name, name_size, "tmp.%ld.%llu.%ld", (long)getpid(),
			 (unsigned long long)atomic_fetch_add(counter, 1),
			 ts.tv_nsec);
		fd = openat(tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (fd < 0 && errno == EEXIST);
	return fd;
}

int posix_tmp_clean(int tmp_fd, time_t older_than)
{
	struct dirent *d;
	struct stat st;
	int fd, removed = 0;
	DIR *dir;

	/* a new fd: closedir() closes it, and readdir needs its own offset */
	fd = openat(tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), d->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode) || st.st_mtim.tv_sec >= older_than)
			continue;
		if (unlinkat(dirfd(dir), d->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}
