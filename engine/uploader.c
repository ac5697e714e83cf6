/* uploader.c: the upload thread and its triggers (see uploader.h). */
#include "monotime.h"
#include "uploader.h"
#include "cachestate.h"
#include "ids.h"
#include "metacache.h"
#include "objgc.h"
#include "upload.h"
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include "log.h"
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UPLOADER_TICK_MS 5000
/* threads doing folder uploads */
#define UPLOADER_WORKERS 4

struct folder_request {
	struct folder_request *next;
	struct ouser *user;
	char *path;
};

struct uploader {
	struct upload_ctx *ctx;
	struct users *users;
	struct metacache *metacache;
	unsigned int interval;
	int pipe_fds[2];
	pthread_t thread;
	bool thread_started;
	pthread_t workers[UPLOADER_WORKERS];
	unsigned int worker_count;
	pthread_cond_t cond;		/* a folder upload was queued */

	/* monotonic seconds when the last full pass began */
	int64_t last_pass;
	atomic_bool stop;
	atomic_bool all_requested;

	pthread_mutex_t lock;
	struct folder_request *queue;	/* protected by lock */
	unsigned int queued;		/* protected by lock */
	struct uploader_stats stats;	/* protected by lock */
};

static void wake(struct uploader *up)
{
	char c = 1;

	/* a full pipe already wakes the thread */
	(void)!write(up->pipe_fds[1], &c, 1);
}

/* upload every user with changes, then delete what became garbage */
int uploader_pass(struct upload_ctx *ctx, struct users *users,
		  int64_t accessed_since)
{
	struct ouser **list;
	unsigned int count;
	int ret = 0;

	if (users_list(users, &list, &count) < 0) {
		obox_log(OBOX_LOG_ERR, "upload: out of memory\n");
		return -1;
	}
	for (unsigned int i = 0; i < count; i++) {
		if (users_is_dirty(list[i])) {
			if (upload_user(ctx, list[i], NULL) < 0)
				ret = -1;
		} else if (atomic_load(&list[i]->last_access) >=
			   accessed_since) {
			upload_split_check_user(ctx, list[i]);
		}
	}
	free(list);
	if (objgc_flush(ctx->gc) < 0)
		ret = -1;
	/* what this run's watermarks went up to (cachestate.h) */
	cachestate_clock_save(ctx->cs, ids_clock_us());
	/* snapshots of big folders were freed: give the memory back */
	(void)malloc_trim(0);
	return ret;
}

static void full_pass(struct uploader *up)
{
	int64_t start = monotime_secs();

	(void)uploader_pass(up->ctx, up->users, up->last_pass);
	up->last_pass = start;
	pthread_mutex_lock(&up->lock);
	up->stats.full_passes++;
	pthread_mutex_unlock(&up->lock);
}

/* one queued folder upload, or false if the queue is empty; the request
   counts as queued until it is done */
static bool run_one(struct uploader *up)
{
	struct folder_request *req;

	pthread_mutex_lock(&up->lock);
	req = up->queue;
	if (req != NULL)
		up->queue = req->next;
	pthread_mutex_unlock(&up->lock);
	if (req == NULL)
		return false;
	(void)upload_user(up->ctx, req->user, req->path);
	pthread_mutex_lock(&up->lock);
	up->queued--;
	up->stats.folder_uploads++;
	pthread_mutex_unlock(&up->lock);
	free(req->path);
	free(req);
	return true;
}

static void run_queue(struct uploader *up)
{
	while (run_one(up))
		;
}

/* folder uploads: several at once, so that slow store requests of one
   user do not hold up the others (one user's are serialized by its
   upload_lock) */
static void *folder_worker(void *context)
{
	struct uploader *up = context;

	pthread_mutex_lock(&up->lock);
	while (!atomic_load(&up->stop)) {
		if (up->queue == NULL) {
			pthread_cond_wait(&up->cond, &up->lock);
			continue;
		}
		pthread_mutex_unlock(&up->lock);
		(void)run_one(up);
		pthread_mutex_lock(&up->lock);
	}
	pthread_mutex_unlock(&up->lock);
	return NULL;
}

static void *uploader_thread(void *context)
{
	struct uploader *up = context;
	int64_t next_pass = up->interval == 0 ? INT64_MAX :
		monotime_ms() + (int64_t)up->interval * 1000;

	while (!atomic_load(&up->stop)) {
		struct pollfd pfd = { .fd = up->pipe_fds[0], .events = POLLIN };
		int64_t now = monotime_ms(), wait = next_pass - now;
		char buf[64];

		/* the metacache cap is checked this often */
		if (wait > UPLOADER_TICK_MS)
			wait = UPLOADER_TICK_MS;
		if (wait > 0 && !atomic_load(&up->all_requested))
			(void)poll(&pfd, 1, (int)(wait < 0 ? 0 : wait));
		while (read(up->pipe_fds[0], buf, sizeof(buf)) > 0)
			;
		if (atomic_load(&up->stop))
			break;
		if (atomic_exchange(&up->all_requested, false) ||
		    monotime_ms() >= next_pass) {
			full_pass(up);
			if (up->interval != 0)
				next_pass = monotime_ms() +
					(int64_t)up->interval * 1000;
		}
		if (up->metacache != NULL)
			metacache_enforce(up->metacache, up->users, up->ctx);
	}
	return NULL;
}

int uploader_start(struct upload_ctx *ctx, struct users *users,
		   unsigned int interval, struct metacache *metacache,
		   struct uploader **uploader_r, const char **error_r)
{
	struct uploader *up = calloc(1, sizeof(*up));

	if (up == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	up->ctx = ctx;
	up->users = users;
	up->interval = interval;
	up->metacache = metacache;
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->cond, NULL);
	atomic_init(&up->stop, false);
	atomic_init(&up->all_requested, false);
	if (pipe2(up->pipe_fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		*error_r = "pipe2() failed";
		pthread_cond_destroy(&up->cond);
		pthread_mutex_destroy(&up->lock);
		free(up);
		return -1;
	}
	if (pthread_create(&up->thread, NULL, uploader_thread, up) != 0) {
		*error_r = "pthread_create() failed";
		uploader_stop(&up, false);
		return -1;
	}
	up->thread_started = true;
	for (; up->worker_count < UPLOADER_WORKERS; up->worker_count++) {
		if (pthread_create(&up->workers[up->worker_count], NULL,
				   folder_worker, up) != 0) {
			*error_r = "pthread_create() failed";
			uploader_stop(&up, false);
			return -1;
		}
	}
	*uploader_r = up;
	return 0;
}

void uploader_stop(struct uploader **_up, bool final)
{
	struct uploader *up = *_up;

	if (up == NULL)
		return;
	*_up = NULL;
	atomic_store(&up->stop, true);
	wake(up);
	pthread_mutex_lock(&up->lock);
	pthread_cond_broadcast(&up->cond);
	pthread_mutex_unlock(&up->lock);
	for (unsigned int i = 0; i < up->worker_count; i++)
		pthread_join(up->workers[i], NULL);
	if (up->thread_started)
		pthread_join(up->thread, NULL);
	if (final) {
		run_queue(up);
		full_pass(up);
	}
	while (up->queue != NULL) {
		struct folder_request *req = up->queue;

		up->queue = req->next;
		free(req->path);
		free(req);
	}
	close(up->pipe_fds[0]);
	close(up->pipe_fds[1]);
	pthread_cond_destroy(&up->cond);
	pthread_mutex_destroy(&up->lock);
	free(up);
}

void uploader_request_folder(struct uploader *up, struct ouser *user,
			     const char *folder_path)
{
	struct folder_request *req, **p;

	pthread_mutex_lock(&up->lock);
	for (p = &up->queue; *p != NULL; p = &(*p)->next) {
		if ((*p)->user == user && strcmp((*p)->path, folder_path) == 0) {
			pthread_mutex_unlock(&up->lock);
			return;
		}
	}
	req = calloc(1, sizeof(*req));
	if (req != NULL)
		req->path = strdup(folder_path);
	if (req == NULL || req->path == NULL) {
		/* the interval's pass uploads it */
		free(req);
		pthread_mutex_unlock(&up->lock);
		return;
	}
	req->user = user;
	*p = req;
	up->queued++;
	pthread_cond_signal(&up->cond);
	pthread_mutex_unlock(&up->lock);
}

void uploader_request_all(struct uploader *up)
{
	atomic_store(&up->all_requested, true);
	wake(up);
}

static void count_dirty(struct users *users, unsigned int *dirty_r)
{
	struct ouser **list;
	unsigned int count;

	*dirty_r = 0;
	if (users_list(users, &list, &count) < 0)
		return;
	for (unsigned int i = 0; i < count; i++) {
		if (users_is_dirty(list[i]))
			(*dirty_r)++;
	}
	free(list);
}

void uploader_get_stats(struct uploader *up, struct users *users,
			struct uploader_stats *stats_r)
{
	if (up == NULL) {
		/* not started (obox_stats_text() before obox_start()) */
		memset(stats_r, 0, sizeof(*stats_r));
	} else {
		pthread_mutex_lock(&up->lock);
		*stats_r = up->stats;
		stats_r->queued = up->queued;
		pthread_mutex_unlock(&up->lock);
	}
	count_dirty(users, &stats_r->dirty_users);
}
