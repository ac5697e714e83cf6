/* kinval.c: the kernel's entries of names that changed behind its back
 * are dropped by a thread of its own (fs.h: kinval_entry()).
 *
 * A stub's entry is given to the kernel with a positive entry timeout
 * (inode.c), so a name the daemon changes without the kernel doing it
 * (a relocating rename gives the new name another file, a split-brain
 * merge renames and removes stubs, a missing mail is dropped) must be
 * invalidated: fuse_lowlevel_notify_inval_entry().  That call takes the
 * directory's lock in the kernel, which the kernel holds during a request
 * on the directory until its reply: sent from the request's handler (or
 * from any thread a handler waits for) it would deadlock.  So the callers
 * only queue (a leaf lock, never blocking on the kernel) and this thread
 * sends, in the order queued, holding no lock.  The parent stays pinned
 * in the inode table (inode_pin()) until then, so its node id is valid;
 * one the kernel forgot meanwhile is answered with ENOENT, harmless.
 *
 * The thread stops sending once the session ends: a request the kernel
 * sent and no worker will read any more would keep the directory's lock,
 * and the invalidation's wait for it, for ever.
 */
#include "fs.h"

#include <errno.h>
#include <fuse_log.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kinval_item {
	struct kinval_item *next;
	struct oinode *parent;	/* pinned */
	char name[];
};

static pthread_mutex_t kinval_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kinval_cond = PTHREAD_COND_INITIALIZER;
/* the queue, oldest first (protected by kinval_lock) */
static struct kinval_item *kinval_head, **kinval_tail = &kinval_head;
/* the thread runs / was told to stop (protected by kinval_lock) */
static bool kinval_running, kinval_stopping;
static pthread_t kinval_thread;

void kinval_entry(struct oboxfs *fs, struct oinode *parent, const char *name)
{
	size_t len = strlen(name);
	struct kinval_item *item = malloc(sizeof(*item) + len + 1);

	if (item == NULL) {
		fuse_log(FUSE_LOG_ERR, "out of memory: the kernel may keep "
			 "a stale entry of %s\n", name);
		return;
	}
	memcpy(item->name, name, len + 1);
	item->parent = parent;
	item->next = NULL;
	inode_pin(fs, parent);
	pthread_mutex_lock(&kinval_lock);
	if (!kinval_running || kinval_stopping) {
		pthread_mutex_unlock(&kinval_lock);
		inode_name_unpin(fs, parent);
		free(item);
		return;
	}
	*kinval_tail = item;
	kinval_tail = &item->next;
	pthread_cond_signal(&kinval_cond);
	pthread_mutex_unlock(&kinval_lock);
}

static void *kinval_main(void *context)
{
	struct oboxfs *fs = context;

	for (;;) {
		struct kinval_item *item;
		bool send;

		pthread_mutex_lock(&kinval_lock);
		while (kinval_head == NULL && !kinval_stopping)
			pthread_cond_wait(&kinval_cond, &kinval_lock);
		item = kinval_head;
		if (item != NULL) {
			kinval_head = item->next;
			if (kinval_head == NULL)
				kinval_tail = &kinval_head;
		}
		send = !kinval_stopping;
		pthread_mutex_unlock(&kinval_lock);
		if (item == NULL)
			break;
		if (send && !fuse_session_exited(fs->se)) {
			fuse_ino_t parent = item->parent == &fs->root ?
				FUSE_ROOT_ID : (uintptr_t)item->parent;
			int ret = fuse_lowlevel_notify_inval_entry(
				fs->se, parent, item->name,
				strlen(item->name));

			/* -ENOENT: the kernel has no such entry (or
			   forgot the directory): nothing to drop */
			if (ret < 0 && ret != -ENOENT && fs->debug) {
				fuse_log(FUSE_LOG_DEBUG, "invalidating the "
					 "entry %s: %s\n", item->name,
					 strerror(-ret));
			}
		}
		inode_name_unpin(fs, item->parent);
		free(item);
	}
	return NULL;
}

int kinval_start(struct oboxfs *fs)
{
	int err;

	pthread_mutex_lock(&kinval_lock);
	kinval_stopping = false;
	err = pthread_create(&kinval_thread, NULL, kinval_main, fs);
	kinval_running = err == 0;
	pthread_mutex_unlock(&kinval_lock);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

void kinval_stop(struct oboxfs *fs)
{
	struct timespec deadline;

	(void)fs;
	pthread_mutex_lock(&kinval_lock);
	if (!kinval_running) {
		pthread_mutex_unlock(&kinval_lock);
		return;
	}
	kinval_stopping = true;
	pthread_cond_signal(&kinval_cond);
	pthread_mutex_unlock(&kinval_lock);
	/* the queue is dropped (the mount goes); an invalidation already
	   waiting in the kernel for a request no one reads any more would
	   never return: not waited for long */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	if (pthread_timedjoin_np(kinval_thread, NULL, &deadline) != 0) {
		fuse_log(FUSE_LOG_WARNING, "an invalidation of the kernel's "
			 "entries is stuck: left behind\n");
		(void)pthread_detach(kinval_thread);
		return;
	}
	pthread_mutex_lock(&kinval_lock);
	kinval_running = false;
	pthread_mutex_unlock(&kinval_lock);
}
