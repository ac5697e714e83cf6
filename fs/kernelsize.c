/* kernelsize.c: ending a file's growth once the kernel has its new size
 * (obox_size_grow_begin(), engine/obox.h).
 *
 * The kernel extends its i_size of a FUSE file in the writer's context,
 * once it has processed the WRITE reply (after the last one, for a write
 * sent in several requests); on a loaded machine that may be milliseconds
 * later.  A GETATTR answered meanwhile gives fstat() the new size although
 * the kernel refuses it for i_size while the write is in flight, and a
 * process that maps the file to that size (Dovecot's dovecot.index.log and
 * dovecot.index.cache) faults past the kernel's end of file: SIGBUS.  So a
 * write or fallocate that grew a file registers its growth here (before
 * its reply), and attribute replies measure a file only with no growth of
 * it pending (kernel_size_measure_begin(): fsops.c, inode.c): no size
 * reaches fstat() ahead of the kernel's i_size.
 *
 * The kernel's size is read with statx(AT_STATX_DONT_SYNC) of an O_PATH fd
 * of the file on the mount, which sends no request.  (A zero-length
 * FUSE_NOTIFY_STORE would move i_size from here, but kernel 6.18 ignores
 * it, and storing real bytes waits for the page the write in flight keeps
 * locked until its reply.)  A growth ends when
 * - an attribute reply finds it caught up: the measuring thread polls the
 *   kernel's size itself while it waits (a writer that fstat()s its own
 *   file after a write, Dovecot's usual case, finds it caught up at once);
 * - a later growth of the same file registers: its end is beyond this one's
 *   (a growth is a write past the metacache file's size), so it covers it;
 * - the handle it was written through is released: the kernel sends
 *   RELEASE only once every write syscall through the file has returned,
 *   its i_size updated (so a growth's fd on the mount never outlives the
 *   file's last close by more than the RELEASE: an unmount right after
 *   it is not refused as busy);
 * - the waiter thread's sweep, every KERNEL_SIZE_SWEEP_MS, finds it caught
 *   up, or KERNEL_SIZE_WAIT_MS passed (a writer that does not get to run
 *   again must not stop attribute replies for long).
 * (Until issue #13's LMTP profile a waiter thread polled every growth
 * every 50 us after yielding: ~15 % of the daemon's CPU under 8 LMTP
 * sessions on 2 cores, and attribute replies waited ~0.4 ms for it to be
 * scheduled, 3 times per delivery.)
 * kernel_fd_open() takes the fd of the file on the mount from the writing
 * process's own (/proc/PID/fd: no path walk, no request).  It used to walk
 * the file's path on the mount from the FUSE worker: a request that walk
 * sends (a directory's attributes after Dovecot changed it) is served by
 * another worker, but a daemon SIGKILLed meanwhile could not die: that
 * worker waited in the kernel for its own request, the device stayed open,
 * so the connection was never aborted and the mount hung, Dovecot's
 * processes with it (a CI run of test_dovecot_crash_stream).  The walk is
 * only the fallback now, and it walks the kernel's dentry cache alone
 * (RESOLVE_CACHED: it fails rather than send a request).  One waiter per
 * daemon (state of this file), started by the first growth, after
 * daemonizing.
 */
#include "fs.h"
#include "monotime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* a waiting measurement's polls that only yield the CPU before it sleeps
   between polls */
#define KERNEL_SIZE_SPINS 64
#define KERNEL_SIZE_SLEEP_NS 50000L
/* the waiter's sweep of growths nothing waits for */
#define KERNEL_SIZE_SWEEP_MS 10

struct growth {
	struct growth *next;
	ino_t ino;
	const void *owner;	/* the handle written through (identity only) */
	int kfd;
	off_t end;
	int64_t deadline_ms;
};

static struct {
	pthread_once_t once;
	pthread_mutex_t lock;
	pthread_cond_t added;
	pthread_t thread;
	bool started, stopping;	/* protected by lock */
	struct growth *growths;	/* protected by lock */
	struct obox *obox;	/* protected by lock */
} waiter = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.added = PTHREAD_COND_INITIALIZER,
};

/* The kernel's own size of the file kfd (no request), or -1. */
static off_t kernel_size(int kfd, ino_t *ino_r)
{
	struct statx stx;

	if (statx(kfd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW |
		  AT_STATX_DONT_SYNC, STATX_SIZE | STATX_INO, &stx) < 0)
		return -1;
	if (ino_r != NULL)
		*ino_r = (ino_t)stx.stx_ino;
	return (off_t)stx.stx_size;
}

/* An O_PATH fd of inode's file on the mount from the writer's own fd of
   it (pid: the requesting thread): /proc/PID/fd/N are followed without a
   path walk and an O_PATH open sends no request, so no FUSE request of
   this daemon's own is made.  -1 if none is found. */
static int writer_fd_open(struct oboxfs *fs, struct oinode *inode, pid_t pid)
{
	char dir[64], link[PATH_MAX + 32], target[PATH_MAX];
	size_t mlen = strlen(fs->mountpoint);
	struct dirent *d;
	int dfd, fd = -1;
	DIR *fds;
	ino_t ino;

	if (pid <= 0)
		return -1;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (fds = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	while (fd < 0 && (d = readdir(fds)) != NULL) {
		ssize_t len;

		if (d->d_name[0] == '.')
			continue;
		len = readlinkat(dfd, d->d_name, target, sizeof(target) - 1);
		/* only a file below the mountpoint (procfs says where) */
		if (len <= (ssize_t)mlen ||
		    strncmp(target, fs->mountpoint, mlen) != 0 ||
		    target[mlen] != '/')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, d->d_name);
		fd = open(link, O_PATH | O_CLOEXEC);
		if (fd >= 0 && (kernel_size(fd, &ino) < 0 ||
				ino != inode->ino)) {
			close(fd);
			fd = -1;
		}
	}
	closedir(fds);
	return fd;
}

int kernel_fd_open(struct oboxfs *fs, struct oinode *inode, pid_t pid)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_CACHED | RESOLVE_NO_SYMLINKS,
	};
	char rel[PATH_MAX], path[PATH_MAX];
	ino_t ino;
	int fd;

	if (fs->mountpoint == NULL)
		return -1;
	fd = writer_fd_open(fs, inode, pid);
	if (fd >= 0)
		return fd;
	/* not found (a writer in a pid namespace this daemon cannot see):
	   the path on the mount, from the kernel's dentry cache only
	   (RESOLVE_CACHED: a walk that would send a request, to look a name
	   up again or to refresh a directory's attributes, fails with
	   EAGAIN instead).  A request of this worker's own would keep it
	   waiting in the kernel, and a daemon SIGKILLed meanwhile could not
	   exit: its connection would never be aborted and the mount would
	   hang (mount.oboxfs(8)) */
	if (inode_path(fs, inode, rel, sizeof(rel)) < 0 ||
	    snprintf(path, sizeof(path), "%s/%s", fs->mountpoint, rel) >=
	    (int)sizeof(path))
		return -1;
	fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	if (fd < 0)
		return -1;
	/* the name may have come to name another file meanwhile */
	if (kernel_size(fd, &ino) < 0 || ino != inode->ino) {
		close(fd);
		return -1;
	}
	return fd;
}

static void growth_end(struct growth *g)
{
	obox_size_grow_end(waiter.obox, g->ino);
	if (g->kfd >= 0)
		close(g->kfd);
	free(g);
}

/* End the growths of ino (any: 0) the kernel has caught up with, or all
   (stopping).  Call with waiter.lock held. */
static void poll_locked(ino_t ino)
{
	struct growth **gp = &waiter.growths;
	int64_t now = monotime_ms();

	while (*gp != NULL) {
		struct growth *g = *gp;
		off_t size = 0;

		if (ino != 0 && g->ino != ino) {
			gp = &g->next;
			continue;
		}
		if (!waiter.stopping)
			size = kernel_size(g->kfd, NULL);
		if (waiter.stopping || size < 0 || size >= g->end ||
		    now >= g->deadline_ms) {
			*gp = g->next;
			growth_end(g);
		} else {
			gp = &g->next;
		}
	}
}

/* End the growths of ino that a new one to end covers (their ends are not
   beyond it: the new one stays pending until the kernel has reached them
   too), or of owner (released: every write through it has returned).
   Call with waiter.lock held. */
static void end_covered_locked(ino_t ino, off_t end, const void *owner)
{
	struct growth **gp = &waiter.growths;

	while (*gp != NULL) {
		struct growth *g = *gp;

		if ((owner != NULL && g->owner == owner) ||
		    (owner == NULL && g->ino == ino && g->end <= end)) {
			*gp = g->next;
			growth_end(g);
		} else {
			gp = &g->next;
		}
	}
}

static void *waiter_main(void *context)
{
	const struct timespec pause = {
		0, KERNEL_SIZE_SWEEP_MS * 1000000L
	};

	(void)context;
	pthread_mutex_lock(&waiter.lock);
	for (;;) {
		poll_locked(0);
		if (waiter.stopping)
			break;
		if (waiter.growths == NULL) {
			pthread_cond_wait(&waiter.added, &waiter.lock);
			continue;
		}
		pthread_mutex_unlock(&waiter.lock);
		nanosleep(&pause, NULL);
		pthread_mutex_lock(&waiter.lock);
	}
	pthread_mutex_unlock(&waiter.lock);
	return NULL;
}

static void waiter_start(void)
{
	pthread_mutex_lock(&waiter.lock);
	if (pthread_create(&waiter.thread, NULL, waiter_main, NULL) == 0)
		waiter.started = true;
	else
		fuse_log(FUSE_LOG_ERR, "starting the kernel size waiter "
			 "failed: growths end unchecked\n");
	pthread_mutex_unlock(&waiter.lock);
}

void kernel_size_grown(struct oboxfs *fs, ino_t ino, const void *owner,
		       int kfd, off_t end)
{
	struct growth *g = NULL;

	if (kfd >= 0) {
		pthread_once(&waiter.once, waiter_start);
		g = calloc(1, sizeof(*g));
	}
	pthread_mutex_lock(&waiter.lock);
	waiter.obox = fs->obox;
	if (g != NULL && waiter.started && !waiter.stopping) {
		end_covered_locked(ino, end, NULL);
		g->ino = ino;
		g->owner = owner;
		g->kfd = kfd;
		g->end = end;
		g->deadline_ms = monotime_ms() + KERNEL_SIZE_WAIT_MS;
		g->next = waiter.growths;
		if (waiter.growths == NULL)
			pthread_cond_signal(&waiter.added);
		waiter.growths = g;
		pthread_mutex_unlock(&waiter.lock);
		return;
	}
	pthread_mutex_unlock(&waiter.lock);
	/* nothing to wait on: ended now */
	free(g);
	if (kfd >= 0)
		close(kfd);
	obox_size_grow_end(fs->obox, ino);
}

void kernel_size_released(const void *owner)
{
	pthread_mutex_lock(&waiter.lock);
	end_covered_locked(0, 0, owner);
	pthread_mutex_unlock(&waiter.lock);
}

void kernel_size_measure_begin(struct oboxfs *fs, ino_t ino)
{
	const struct timespec pause = { 0, KERNEL_SIZE_SLEEP_NS };
	unsigned int spins = 0;
	int64_t deadline;

	if (obox_size_measure_try(fs->obox, ino))
		return;
	deadline = monotime_ms() + KERNEL_SIZE_WAIT_MS;
	for (;;) {
		pthread_mutex_lock(&waiter.lock);
		poll_locked(ino);
		pthread_mutex_unlock(&waiter.lock);
		if (obox_size_measure_try(fs->obox, ino))
			return;
		if (monotime_ms() >= deadline)
			break;
		if (spins++ < KERNEL_SIZE_SPINS)
			sched_yield();
		else
			nanosleep(&pause, NULL);
	}
	/* waited long enough (the growths' own deadlines end them too) */
	obox_size_measure_begin(fs->obox, ino, 0);
}

void kernel_size_stop(void)
{
	bool started;

	pthread_mutex_lock(&waiter.lock);
	waiter.stopping = true;
	started = waiter.started;
	pthread_cond_signal(&waiter.added);
	pthread_mutex_unlock(&waiter.lock);
	if (started)
		pthread_join(waiter.thread, NULL);
}
