/* mountappend.c: the engine appends to a file of the tree as a process on
 * the mount does (obox_file_append_cb, engine/obox.h): through the mount,
 * so that the kernel's size and pages stay right, under the file's POSIX
 * write lock (the kernel's: Dovecot's lock on dovecot.index.log), at the
 * end of the file the kernel knows.
 *
 * The IO on the mount is done by a child process that closed every
 * descriptor it inherited (the FUSE device among them), never by a thread
 * of the daemon.  A thread of the daemon waiting in the kernel for a
 * request of its own that a worker has read cannot be killed: a daemon
 * SIGKILLed at that moment could not exit, its device stayed open, the
 * connection was never aborted and the mount hung with Dovecot's
 * processes (the same class as kernelsize.c's path walk).  A SIGKILLed
 * daemon exits while its thread waits for the child; its device closes,
 * the connection is aborted and the child's request fails (ENOTCONN).
 * The child calls only async-signal-safe functions.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* how long the append waits for the file's lock (Dovecot holds its log's
   lock for one transaction's append) */
#define MOUNT_APPEND_LOCK_MS 5000

/* the child's exit status: 0, or an errno value below this */
#define CHILD_ERRNO_MAX 250
#define CHILD_SHORT_WRITE 251

static int child_status(int err)
{
	return err > 0 && err < CHILD_ERRNO_MAX ? err : EIO;
}

/* the child: never returns */
static void child_append(const char *full, const void *data, size_t len)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct timespec ms = { .tv_nsec = 1000000L };
	unsigned int waited = 0;
	struct stat locked, named;
	ssize_t ret;
	int fd;

	/* nothing of the daemon's: above all not the FUSE device */
	(void)syscall(SYS_close_range, 0U, ~0U, 0U);
	for (;;) {
		fd = open(full, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			_exit(child_status(errno));
		for (; fcntl(fd, F_SETLK, &fl) < 0; waited++) {
			if (errno != EAGAIN && errno != EACCES)
				_exit(child_status(errno));
			if (waited >= MOUNT_APPEND_LOCK_MS)
				_exit(ENOLCK);
			(void)nanosleep(&ms, NULL);
		}
		/* Dovecot rotates its log under this lock (the file
		   renamed to .log.2, a new one in its place): the file
		   locked must still be the one of that name, as Dovecot's
		   own lock of the head checks */
		if (fstat(fd, &locked) < 0)
			_exit(child_status(errno));
		if (stat(full, &named) == 0 && named.st_dev == locked.st_dev &&
		    named.st_ino == locked.st_ino)
			break;
		(void)close(fd);
		if (waited++ >= MOUNT_APPEND_LOCK_MS)
			_exit(ENOLCK);
	}
	ret = write(fd, data, len);
	if (ret < 0)
		_exit(child_status(errno));
	/* the close releases the lock; its FLUSH may report a late error */
	if (close(fd) < 0 && errno != EINTR)
		_exit(child_status(errno));
	_exit(ret == (ssize_t)len ? 0 : CHILD_SHORT_WRITE);
}

int mount_append(struct oboxfs *fs, const char *path, const void *data,
		 size_t len)
{
	char full[PATH_MAX];
	int status;
	pid_t pid;

	if (fs->se == NULL || fs->mountpoint == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", fs->mountpoint,
			     path) >= sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		child_append(full, data, len);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (!WIFEXITED(status)) {
		errno = EIO;
		return -1;
	}
	switch (WEXITSTATUS(status)) {
	case 0:
		return 0;
	case CHILD_SHORT_WRITE:
		errno = EIO;
		return -1;
	default:
		errno = WEXITSTATUS(status);
		return -1;
	}
}
