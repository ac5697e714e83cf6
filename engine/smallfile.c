/* smallfile.c: see smallfile.h. */
#include "smallfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int smallfile_read(int dir_fd, const char *name, size_t max, char **text_r,
		   size_t *len_r)
{
	size_t len = 0;
	ssize_t ret;
	char *buf;
	int fd, saved;

	*text_r = NULL;
	*len_r = 0;
	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if ((buf = malloc(max + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (len < max && (ret = read(fd, buf + len, max - len)) != 0) {
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(buf);
			close(fd);
			errno = saved;
			return -1;
		}
		len += (size_t)ret;
	}
	close(fd);
	buf[len] = '\0';
	*text_r = buf;
	*len_r = len;
	return 1;
}

int smallfile_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t ret = write(fd, p, len);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += ret;
		len -= (size_t)ret;
	}
	return 0;
}

int smallfile_rewrite(int dir_fd, const char *name, const char *text,
		      size_t len)
{
	struct stat dir_st, st;
	struct timespec times[2];
	int fd, ret = -1, saved;

	if (fstat(dir_fd, &dir_st) < 0)
		return -1;
	fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto out;
	}
	/* a file made here: the folder's owner (the daemon runs as root) */
	if (st.st_size == 0 && st.st_uid != dir_st.st_uid &&
	    fchown(fd, dir_st.st_uid, dir_st.st_gid) < 0)
		goto out;
	if (ftruncate(fd, 0) < 0 || smallfile_write_all(fd, text, len) < 0)
		goto out;
	clock_gettime(CLOCK_REALTIME, &times[1]);
	if (times[1].tv_sec <= st.st_mtim.tv_sec)
		times[1].tv_sec = st.st_mtim.tv_sec + 1;
	times[0] = times[1];
	if (futimens(fd, times) < 0)
		goto out;
	ret = 0;
out:
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}
