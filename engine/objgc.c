/* objgc.c: pending, condemned and deleted objects (see objgc.h). */
#include "objgc.h"
#include "keylist.h"
#include "mailcache.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct objgc {
	struct objstore *store;
	struct mailcache *mc;
	char *garbage_path;

	pthread_mutex_t lock;
	struct keylist pending;	/* protected by lock */
	struct keylist condemned;	/* protected by lock */
	/* taken by a running objgc_flush() (protected by lock; the keys
	   belong to the flush) */
	struct keylist flushing;
	int garbage_fd;			/* protected by lock */
	/* released, deleted, delete_failures (pending and condemned are
	   the lists' counts) */
	struct objgc_stats stats;	/* protected by lock */
	/* one flush at a time */
	pthread_mutex_t flush_lock;
};

/* read the keys a previous run condemned; a line that is not a valid key
   (torn by a crash, over-long, junk) is skipped whole */
static void garbage_load(struct objgc *gc)
{
	FILE *f = fopen(gc->garbage_path, "r");
	const char *error;
	char *line = NULL;
	size_t size = 0;
	ssize_t len;

	if (f == NULL)
		return;
	while ((len = getline(&line, &size, f)) > 0) {
		if (line[len - 1] != '\n' || len - 1 > OBJSTORE_KEY_MAX)
			continue;
		line[len - 1] = '\0';
		if (strlen(line) != (size_t)len - 1)
			continue;	/* a NUL inside */
		if (objstore_key_check(line, &error) < 0)
			continue;
		char *key = strdup(line);

		if (key == NULL || keylist_push(&gc->condemned, key) < 0) {
			free(key);
			break;
		}
	}
	free(line);
	fclose(f);
}

struct objgc *objgc_init(struct objstore *store, struct mailcache *mc,
			 const char *garbage_path)
{
	struct objgc *gc = calloc(1, sizeof(*gc));

	if (gc == NULL)
		return NULL;
	gc->store = store;
	gc->mc = mc;
	gc->garbage_fd = -1;
	pthread_mutex_init(&gc->lock, NULL);
	pthread_mutex_init(&gc->flush_lock, NULL);
	if (garbage_path != NULL) {
		gc->garbage_path = strdup(garbage_path);
		if (gc->garbage_path == NULL) {
			objgc_deinit(&gc);
			return NULL;
		}
		garbage_load(gc);
		gc->garbage_fd = open(garbage_path, O_WRONLY | O_CREAT |
				      O_APPEND | O_CLOEXEC, 0600);
		if (gc->garbage_fd < 0) {
			obox_log(OBOX_LOG_ERR, "open(%s) failed: %s\n",
				 garbage_path, strerror(errno));
		}
	}
	return gc;
}

void objgc_deinit(struct objgc **_gc)
{
	struct objgc *gc = *_gc;

	if (gc == NULL)
		return;
	*_gc = NULL;
	if (gc->pending.count > 0) {
		obox_log(OBOX_LOG_WARNING, "%zu released objects were not "
			 "deleted (no index upload covered them); they "
			 "come back as mails if the user is loaded from the "
			 "store\n", gc->pending.count);
	}
	keylist_clear(&gc->pending);
	keylist_clear(&gc->condemned);
	if (gc->garbage_fd >= 0)
		close(gc->garbage_fd);
	pthread_mutex_destroy(&gc->lock);
	pthread_mutex_destroy(&gc->flush_lock);
	free(gc->garbage_path);
	free(gc);
}

int objgc_release(struct objgc *gc, const char *key)
{
	char *copy = strdup(key);
	int ret;

	mailcache_remove(gc->mc, key);
	pthread_mutex_lock(&gc->lock);
	ret = copy == NULL ? -1 : keylist_push(&gc->pending, copy);
	if (ret == 0) {
		gc->stats.released++;
	}
	pthread_mutex_unlock(&gc->lock);
	if (ret < 0) {
		free(copy);
		obox_log(OBOX_LOG_ERR, "releasing %s: out of memory (the "
			 "object leaks)\n", key);
	}
	return ret;
}

void objgc_take_pending(struct objgc *gc, const char *prefix,
			struct objgc_batch *batch_r)
{
	size_t prefix_len = strlen(prefix), kept = 0;
	struct keylist taken = { 0 };

	pthread_mutex_lock(&gc->lock);
	for (size_t i = 0; i < gc->pending.count; i++) {
		char *key = gc->pending.keys[i];

		if (strncmp(key, prefix, prefix_len) == 0 &&
		    keylist_push(&taken, key) == 0)
			continue;
		gc->pending.keys[kept++] = key;
	}
	gc->pending.count = kept;
	pthread_mutex_unlock(&gc->lock);
	batch_r->keys = taken.keys;
	batch_r->count = taken.count;
}

void objgc_return_pending(struct objgc *gc, struct objgc_batch *batch)
{
	pthread_mutex_lock(&gc->lock);
	for (size_t i = 0; i < batch->count; i++) {
		if (keylist_push(&gc->pending, batch->keys[i]) == 0)
			batch->keys[i] = NULL;
	}
	pthread_mutex_unlock(&gc->lock);
	objgc_batch_free(batch);
}

/* with gc->lock held; takes key */
static void condemn_locked(struct objgc *gc, char *key)
{
	if (gc->garbage_fd >= 0) {
		size_t len = strlen(key);

		key[len] = '\n';
		if (write(gc->garbage_fd, key, len + 1) != (ssize_t)len + 1) {
			obox_log(OBOX_LOG_WARNING, "appending to %s failed: "
				 "%s\n", gc->garbage_path, strerror(errno));
		}
		key[len] = '\0';
	}
	if (keylist_push(&gc->condemned, key) < 0) {
		obox_log(OBOX_LOG_ERR, "condemning %s: out of memory (the "
			 "object leaks)\n", key);
		free(key);
	}
}

void objgc_condemn_batch(struct objgc *gc, struct objgc_batch *batch)
{
	pthread_mutex_lock(&gc->lock);
	for (size_t i = 0; i < batch->count; i++) {
		condemn_locked(gc, batch->keys[i]);
		batch->keys[i] = NULL;
	}
	pthread_mutex_unlock(&gc->lock);
	objgc_batch_free(batch);
}

void objgc_condemn(struct objgc *gc, const char *key)
{
	char *copy = malloc(strlen(key) + 2);

	if (copy == NULL) {
		obox_log(OBOX_LOG_ERR, "condemning %s: out of memory\n", key);
		return;
	}
	strcpy(copy, key);
	pthread_mutex_lock(&gc->lock);
	condemn_locked(gc, copy);
	pthread_mutex_unlock(&gc->lock);
}

int objgc_discard(struct objgc *gc, const char *key)
{
	mailcache_remove(gc->mc, key);
	if (objstore_delete(gc->store, key) < 0) {
		obox_log(OBOX_LOG_WARNING, "deleting %s at once failed (it "
			 "is deleted with the next batch): %s\n", key,
			 objstore_error());
		objgc_condemn(gc, key);
		return -1;
	}
	pthread_mutex_lock(&gc->lock);
	gc->stats.deleted++;
	pthread_mutex_unlock(&gc->lock);
	return 0;
}

void objgc_batch_free(struct objgc_batch *batch)
{
	for (size_t i = 0; i < batch->count; i++)
		free(batch->keys[i]);
	free(batch->keys);
	batch->keys = NULL;
	batch->count = 0;
}

bool objgc_is_garbage(struct objgc *gc, const char *key)
{
	bool ret;

	pthread_mutex_lock(&gc->lock);
	ret = keylist_has(&gc->condemned, key) ||
		keylist_has(&gc->pending, key) ||
		keylist_has(&gc->flushing, key);
	pthread_mutex_unlock(&gc->lock);
	return ret;
}

int objgc_flush(struct objgc *gc)
{
	struct keylist work;
	int ret = 0;

	pthread_mutex_lock(&gc->flush_lock);
	pthread_mutex_lock(&gc->lock);
	work = gc->condemned;
	memset(&gc->condemned, 0, sizeof(gc->condemned));
	gc->flushing = work;
	pthread_mutex_unlock(&gc->lock);

	if (work.count > 0 &&
	    objstore_delete_many(gc->store, (const char *const *)work.keys,
				 work.count) < 0) {
		obox_log(OBOX_LOG_ERR, "deleting %zu unreferenced objects "
			 "failed (tried again later): %s\n", work.count,
			 objstore_error());
		ret = -1;
	}
	pthread_mutex_lock(&gc->lock);
	memset(&gc->flushing, 0, sizeof(gc->flushing));
	if (ret < 0) {
		/* back in front of whatever was condemned meanwhile */
		for (size_t i = 0; i < gc->condemned.count; i++) {
			if (keylist_push(&work, gc->condemned.keys[i]) < 0)
				free(gc->condemned.keys[i]);
		}
		free(gc->condemned.keys);
		gc->condemned = work;
		gc->stats.delete_failures += 1;
	} else {
		gc->stats.deleted += work.count;
		keylist_clear(&work);
		/* rewrite the file with what was condemned meanwhile */
		if (gc->garbage_fd >= 0 && ftruncate(gc->garbage_fd, 0) == 0) {
			for (size_t i = 0; i < gc->condemned.count; i++) {
				char *key = gc->condemned.keys[i];

				if (dprintf(gc->garbage_fd, "%s\n", key) < 0)
					break;
			}
		}
	}
	pthread_mutex_unlock(&gc->lock);
	pthread_mutex_unlock(&gc->flush_lock);
	return ret;
}

void objgc_get_stats(struct objgc *gc, struct objgc_stats *stats_r)
{
	pthread_mutex_lock(&gc->lock);
	*stats_r = gc->stats;
	stats_r->pending = gc->pending.count;
	stats_r->condemned = gc->condemned.count + gc->flushing.count;
	pthread_mutex_unlock(&gc->lock);
}
