/* objgc.c: pending, condemned and deleted objects (see objgc.h). */
#include "objgc.h"
#include "bundle.h"
#include "gccheck.h"
#include "keylist.h"
#include "keys.h"
#include "mailcache.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* a condemned mail key and when it was condemned (wall clock seconds) */
struct gc_aging {
	char *key;
	int64_t at;
};

struct gc_aging_list {
	struct gc_aging *items;
	size_t count, alloc;
};

struct objgc {
	struct objstore *store;
	struct mailcache *mc;
	char *garbage_path;

	pthread_mutex_t lock;
	struct keylist pending;	/* protected by lock */
	/* condemned keys other than mails: deleted by the next flush */
	struct keylist condemned;	/* protected by lock */
	/* condemned mail keys: deleted by a flush once grace seconds old and
	   no other writer's bundle references them (gccheck.h) */
	struct gc_aging_list aging;	/* protected by lock */
	/* bundle keys this machine stored and has not condemned */
	struct keylist own;		/* protected by lock */
	unsigned int grace;		/* set before use, then read-only */
	/* taken by a running objgc_flush() (protected by lock; the keys
	   belong to the flush) */
	struct keylist flushing;
	struct gc_aging_list flushing_mails;	/* protected by lock */
	int garbage_fd;			/* protected by lock */
	/* released, deleted, delete_failures (pending and condemned are
	   the lists' counts) */
	struct objgc_stats stats;	/* protected by lock */
	/* one flush at a time */
	pthread_mutex_t flush_lock;
};

static int64_t wall_secs(void)
{
	return (int64_t)time(NULL);
}

/* append; takes key.  Returns 0 or -1 (out of memory: not taken) */
static int aging_push(struct gc_aging_list *list, char *key, int64_t at)
{
	if (list->count == list->alloc) {
		size_t alloc = list->alloc == 0 ? 64 : list->alloc * 2;
		struct gc_aging *items = realloc(list->items,
						 alloc * sizeof(*items));

		if (items == NULL)
			return -1;
		list->items = items;
		list->alloc = alloc;
	}
	list->items[list->count].key = key;
	list->items[list->count].at = at;
	list->count++;
	return 0;
}

static bool aging_has(const struct gc_aging_list *list, const char *key)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->items[i].key, key) == 0)
			return true;
	}
	return false;
}

static void aging_clear(struct gc_aging_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i].key);
	free(list->items);
	memset(list, 0, sizeof(*list));
}

static bool is_mail_key(const char *key)
{
	char prefix[OBJSTORE_KEY_MAX + 1];

	return keys_mail_idx_prefix(key, prefix, sizeof(prefix)) == 0;
}

/* key is a base bundle's (not a diff's, not a mail's) */
static bool is_base_key(const char *key)
{
	const char *slash = strrchr(key, '/'), *error;
	struct bundle_name name;

	return slash != NULL && bundle_name_parse(slash + 1, &name, &error) == 0 &&
		!name.is_diff;
}

/* with gc->lock held: file a condemned key (taken) in the right list */
static void file_locked(struct objgc *gc, char *key, int64_t at)
{
	int ret = is_mail_key(key) ? aging_push(&gc->aging, key, at) :
		keylist_push(&gc->condemned, key);

	if (ret < 0) {
		obox_log(OBOX_LOG_ERR, "condemning %s: out of memory (the "
			 "object leaks)\n", key);
		free(key);
	}
}

/* a garbage file line: "<key>" or "<key>\t<condemned at>" (a key has no
   control characters); *at_r = now when it has no time */
static bool garbage_line_parse(char *line, int64_t now, int64_t *at_r)
{
	char *tab = strchr(line, '\t'), *end;
	const char *error;
	long long at;

	*at_r = now;
	if (tab != NULL) {
		*tab = '\0';
		errno = 0;
		at = strtoll(tab + 1, &end, 10);
		if (errno != 0 || end == tab + 1 || *end != '\0' || at < 0)
			return false;
		*at_r = at > now ? now : (int64_t)at;
	}
	return objstore_key_check(line, &error) == 0;
}

/* read the keys a previous run condemned; a line that is not a valid key
   (torn by a crash, over-long, junk) is skipped whole */
static void garbage_load(struct objgc *gc)
{
	FILE *f = fopen(gc->garbage_path, "r");
	int64_t now = wall_secs(), at;
	char *line = NULL;
	size_t size = 0;
	ssize_t len;

	if (f == NULL)
		return;
	while ((len = getline(&line, &size, f)) > 0) {
		if (line[len - 1] != '\n' || len - 1 > OBJSTORE_KEY_MAX + 24)
			continue;
		line[len - 1] = '\0';
		if (strlen(line) != (size_t)len - 1)
			continue;	/* a NUL inside */
		if (!garbage_line_parse(line, now, &at))
			continue;
		char *key = strdup(line);

		if (key == NULL)
			break;
		file_locked(gc, key, at);
	}
	free(line);
	fclose(f);
}

/* with gc->lock held: one line of the garbage file */
static void garbage_append_locked(struct objgc *gc, const char *key,
				  bool mail, int64_t at)
{
	char line[OBJSTORE_KEY_MAX + 32];
	int len;

	if (gc->garbage_fd < 0)
		return;
	len = mail ? snprintf(line, sizeof(line), "%s\t%lld\n", key,
			      (long long)at) :
		snprintf(line, sizeof(line), "%s\n", key);
	if (len < 0 || (size_t)len >= sizeof(line) ||
	    write(gc->garbage_fd, line, (size_t)len) != len) {
		obox_log(OBOX_LOG_WARNING, "appending to %s failed: %s\n",
			 gc->garbage_path, strerror(errno));
	}
}

/* with gc->lock held: the garbage file holds what is condemned now */
static void garbage_rewrite_locked(struct objgc *gc)
{
	if (gc->garbage_fd < 0 || ftruncate(gc->garbage_fd, 0) < 0)
		return;
	for (size_t i = 0; i < gc->condemned.count; i++)
		garbage_append_locked(gc, gc->condemned.keys[i], false, 0);
	for (size_t i = 0; i < gc->aging.count; i++)
		garbage_append_locked(gc, gc->aging.items[i].key, true,
				      gc->aging.items[i].at);
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

void objgc_set_grace(struct objgc *gc, unsigned int secs)
{
	gc->grace = secs;
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
	keylist_clear(&gc->own);
	aging_clear(&gc->aging);
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
	bool mail = is_mail_key(key);
	int64_t now = wall_secs();

	/* a bundle of ours condemned is still ours (gccheck: not another
	   writer's), as garbage */
	for (size_t i = 0; i < gc->own.count; i++) {
		if (strcmp(gc->own.keys[i], key) == 0) {
			free(gc->own.keys[i]);
			gc->own.keys[i] = gc->own.keys[--gc->own.count];
			break;
		}
	}
	garbage_append_locked(gc, key, mail, now);
	file_locked(gc, key, now);
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
	char *copy = strdup(key);

	if (copy == NULL) {
		obox_log(OBOX_LOG_ERR, "condemning %s: out of memory\n", key);
		return;
	}
	pthread_mutex_lock(&gc->lock);
	condemn_locked(gc, copy);
	pthread_mutex_unlock(&gc->lock);
}

void objgc_own_bundle(struct objgc *gc, const char *key)
{
	pthread_mutex_lock(&gc->lock);
	/* a chain loaded again (the user evicted and loaded) is noted once */
	if (!keylist_has(&gc->own, key) && keylist_add(&gc->own, key) < 0) {
		/* then it looks like another writer's: its mails are kept
		   longer, never lost */
		obox_log(OBOX_LOG_WARNING, "noting bundle %s: out of "
			 "memory\n", key);
	}
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
		keylist_has(&gc->flushing, key) ||
		aging_has(&gc->aging, key) ||
		aging_has(&gc->flushing_mails, key);
	pthread_mutex_unlock(&gc->lock);
	return ret;
}

int objgc_revive(struct objgc *gc, const char *key)
{
	int ret = -1;

	pthread_mutex_lock(&gc->lock);
	for (size_t i = 0; ret < 0 && i < gc->pending.count; i++) {
		if (strcmp(gc->pending.keys[i], key) == 0) {
			free(gc->pending.keys[i]);
			gc->pending.keys[i] =
				gc->pending.keys[--gc->pending.count];
			ret = 0;
		}
	}
	for (size_t i = 0; ret < 0 && i < gc->aging.count; i++) {
		if (strcmp(gc->aging.items[i].key, key) == 0) {
			free(gc->aging.items[i].key);
			gc->aging.items[i] = gc->aging.items[--gc->aging.count];
			/* the garbage file lists what is condemned */
			garbage_rewrite_locked(gc);
			ret = 0;
		}
	}
	pthread_mutex_unlock(&gc->lock);
	return ret;
}

static bool keylist_has_prefix(const struct keylist *list, const char *prefix,
			       size_t len)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strncmp(list->keys[i], prefix, len) == 0)
			return true;
	}
	return false;
}

static bool aging_has_prefix(const struct gc_aging_list *list,
			     const char *prefix, size_t len)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strncmp(list->items[i].key, prefix, len) == 0)
			return true;
	}
	return false;
}

bool objgc_has_garbage_below(struct objgc *gc, const char *prefix)
{
	size_t len = strlen(prefix);
	bool ret;

	pthread_mutex_lock(&gc->lock);
	ret = keylist_has_prefix(&gc->condemned, prefix, len) ||
		keylist_has_prefix(&gc->pending, prefix, len) ||
		keylist_has_prefix(&gc->flushing, prefix, len) ||
		aging_has_prefix(&gc->aging, prefix, len) ||
		aging_has_prefix(&gc->flushing_mails, prefix, len);
	pthread_mutex_unlock(&gc->lock);
	return ret;
}

/* gccheck's question: is the bundle key this machine's (stored and live,
   or condemned)? */
static bool ours_cb(const char *bundle_key, void *context)
{
	struct objgc *gc = context;
	bool ret;

	pthread_mutex_lock(&gc->lock);
	ret = keylist_has(&gc->own, bundle_key) ||
		keylist_has(&gc->condemned, bundle_key) ||
		keylist_has(&gc->flushing, bundle_key);
	pthread_mutex_unlock(&gc->lock);
	return ret;
}

static int aging_cmp(const void *p1, const void *p2)
{
	const struct gc_aging *a = p1, *b = p2;

	return strcmp(a->key, b->key);
}

/* Of the mails (sorted by key, so a folder's are together), move those
   no other writer's bundle references into del (taking the keys); the
   others stay in mails (kept: they age on). */
static void check_mails(struct objgc *gc, struct gc_aging_list *mails,
			struct keylist *del)
{
	size_t kept = 0, start = 0;

	while (start < mails->count) {
		char prefix[OBJSTORE_KEY_MAX + 1], other[OBJSTORE_KEY_MAX + 1];
		size_t end = start + 1, n;
		struct gccheck_result result;
		const char **keys;
		bool *referenced;
		int ret = -1;

		(void)keys_mail_idx_prefix(mails->items[start].key, prefix,
					   sizeof(prefix));
		while (end < mails->count &&
		       keys_mail_idx_prefix(mails->items[end].key, other,
					    sizeof(other)) == 0 &&
		       strcmp(prefix, other) == 0)
			end++;
		n = end - start;
		keys = calloc(n, sizeof(*keys));
		referenced = calloc(n, sizeof(*referenced));
		if (keys != NULL && referenced != NULL) {
			for (size_t i = 0; i < n; i++)
				keys[i] = mails->items[start + i].key;
			ret = gccheck_referenced(gc->store, keys, n, ours_cb,
						 gc, referenced, &result);
		}
		for (size_t i = 0; i < n; i++) {
			struct gc_aging *item = &mails->items[start + i];

			if (ret == 0 && !referenced[i] &&
			    keylist_push(del, item->key) == 0)
				continue;
			mails->items[kept++] = *item;
		}
		if (ret == 0 && result.kept > 0) {
			obox_log(OBOX_LOG_WARNING, "%zu mail objects below %s "
				 "are not deleted: %zu bundles of another "
				 "writer (split brain) still reference them\n",
				 result.kept, prefix, result.foreign_bundles);
		}
		pthread_mutex_lock(&gc->lock);
		gc->stats.delete_checks++;
		gc->stats.kept_referenced += ret == 0 ? result.kept : n;
		pthread_mutex_unlock(&gc->lock);
		free(keys);
		free(referenced);
		start = end;
	}
	mails->count = kept;
}

/* with gc->lock held: the mails condemned at least grace seconds ago */
static void take_aged_locked(struct objgc *gc, struct gc_aging_list *out)
{
	int64_t now = wall_secs();
	size_t kept = 0;

	for (size_t i = 0; i < gc->aging.count; i++) {
		struct gc_aging *item = &gc->aging.items[i];

		if (now - item->at >= (int64_t)gc->grace &&
		    aging_push(out, item->key, item->at) == 0)
			continue;
		gc->aging.items[kept++] = *item;
	}
	gc->aging.count = kept;
}

/* Of the condemned bases, move those no other writer's diff applies to
   into del (pointers: the caller owns the keys); the others stay in
   bases (held).  One LIST per root with a condemned base.  Returns 0, or
   -1 if out of memory. */
static int check_bases(struct objgc *gc, struct gc_aging_list *bases,
		       struct keylist *del)
{
	size_t kept = 0, start = 0, held_count = 0;
	int ret = 0;

	if (bases->count > 1)
		qsort(bases->items, bases->count, sizeof(*bases->items),
		      aging_cmp);
	while (start < bases->count) {
		const char *first = bases->items[start].key;
		size_t dir = strrchr(first, '/') - first + 1, end = start + 1;
		const char **keys;
		bool *held;

		while (end < bases->count &&
		       strncmp(bases->items[end].key, first, dir) == 0)
			end++;
		keys = calloc(end - start, sizeof(*keys));
		held = calloc(end - start, sizeof(*held));
		if (keys != NULL && held != NULL) {
			for (size_t i = start; i < end; i++)
				keys[i - start] = bases->items[i].key;
			(void)gccheck_bases_built_on(gc->store, keys,
						     end - start, ours_cb, gc,
						     held);
		}
		for (size_t i = start; i < end; i++) {
			struct gc_aging *item = &bases->items[i];

			if (held != NULL && !held[i - start]) {
				if (keylist_push(del, item->key) == 0)
					continue;
				ret = -1;
			}
			bases->items[kept++] = *item;
			held_count++;
		}
		free(keys);
		free(held);
		start = end;
	}
	bases->count = kept;
	pthread_mutex_lock(&gc->lock);
	gc->stats.bundles_held += held_count;
	pthread_mutex_unlock(&gc->lock);
	return ret;
}

/* objstore_delete_many() of both lists */
static int delete_both(struct objgc *gc, const struct keylist *a,
		       const struct keylist *b)
{
	size_t count = a->count + b->count;
	const char **keys;
	int ret;

	if (count == 0)
		return 0;
	keys = malloc(count * sizeof(*keys));
	if (keys == NULL) {
		obox_log(OBOX_LOG_ERR, "deleting %zu unreferenced objects: out "
			 "of memory (tried again later)\n", count);
		return -1;
	}
	if (a->count > 0)
		memcpy(keys, a->keys, a->count * sizeof(*keys));
	if (b->count > 0)
		memcpy(keys + a->count, b->keys, b->count * sizeof(*keys));
	ret = objstore_delete_many(gc->store, keys, count);
	if (ret < 0) {
		obox_log(OBOX_LOG_ERR, "deleting %zu unreferenced objects "
			 "failed (tried again later): %s\n", count,
			 objstore_error());
	}
	free(keys);
	return ret;
}

int objgc_flush(struct objgc *gc)
{
	struct gc_aging_list mails = { 0 }, shown = { 0 };
	struct keylist work, del = { 0 };
	int ret = 0;

	pthread_mutex_lock(&gc->flush_lock);
	pthread_mutex_lock(&gc->lock);
	work = gc->condemned;
	memset(&gc->condemned, 0, sizeof(gc->condemned));
	take_aged_locked(gc, &mails);
	/* what objgc_is_garbage() sees meanwhile: the flush's lists as they
	   are now (the flush reorders its own copy; no key is freed before
	   these are reset) */
	if (mails.count > 0) {
		shown.items = malloc(mails.count * sizeof(*shown.items));
		if (shown.items == NULL) {
			for (size_t i = 0; i < mails.count; i++)
				file_locked(gc, mails.items[i].key,
					    mails.items[i].at);
			mails.count = 0;
		} else {
			memcpy(shown.items, mails.items,
			       mails.count * sizeof(*shown.items));
			shown.count = shown.alloc = mails.count;
		}
	}
	gc->flushing = work;
	gc->flushing_mails = shown;
	pthread_mutex_unlock(&gc->lock);

	/* the mails another writer's chain still references stay in mails;
	   the others move to del */
	if (mails.count > 1)
		qsort(mails.items, mails.count, sizeof(*mails.items),
		      aging_cmp);
	check_mails(gc, &mails, &del);
	/* the bases another writer's diffs apply to wait (gccheck.h);
	   bases and todo point at work's keys (work owns them) */
	struct gc_aging_list bases = { 0 };
	struct keylist todo = { 0 };
	bool oom = false;

	for (size_t i = 0; i < work.count && !oom; i++) {
		oom = is_base_key(work.keys[i]) ?
			aging_push(&bases, work.keys[i], 0) < 0 :
			keylist_push(&todo, work.keys[i]) < 0;
	}
	if (!oom)
		oom = check_bases(gc, &bases, &todo) < 0;
	ret = oom ? -1 : delete_both(gc, &todo, &del);
	free(todo.keys);

	pthread_mutex_lock(&gc->lock);
	memset(&gc->flushing, 0, sizeof(gc->flushing));
	memset(&gc->flushing_mails, 0, sizeof(gc->flushing_mails));
	free(shown.items);
	/* kept mails age on; their time is kept */
	for (size_t i = 0; i < mails.count; i++)
		file_locked(gc, mails.items[i].key, mails.items[i].at);
	free(mails.items);
	if (ret < 0) {
		/* back where they were (the mails aged and were checked
		   already: the next flush checks them again) */
		for (size_t i = 0; i < work.count; i++)
			file_locked(gc, work.keys[i], 0);
		for (size_t i = 0; i < del.count; i++)
			file_locked(gc, del.keys[i], 0);
		free(work.keys);
		free(del.keys);
		gc->stats.delete_failures += 1;
	} else {
		gc->stats.deleted += work.count - bases.count + del.count;
		/* held bases: condemned again, for the next flush */
		for (size_t i = 0; i < work.count; i++) {
			for (size_t k = 0; k < bases.count; k++) {
				if (work.keys[i] == bases.items[k].key) {
					file_locked(gc, work.keys[i], 0);
					work.keys[i] = NULL;
					break;
				}
			}
		}
		keylist_clear(&work);
		keylist_clear(&del);
	}
	free(bases.items);
	garbage_rewrite_locked(gc);
	pthread_mutex_unlock(&gc->lock);
	pthread_mutex_unlock(&gc->flush_lock);
	return ret;
}

void objgc_get_stats(struct objgc *gc, struct objgc_stats *stats_r)
{
	pthread_mutex_lock(&gc->lock);
	*stats_r = gc->stats;
	stats_r->pending = gc->pending.count;
	stats_r->condemned = gc->condemned.count + gc->flushing.count +
		gc->aging.count + gc->flushing_mails.count;
	pthread_mutex_unlock(&gc->lock);
}
