/* objstore-fetch.c: the fetcher of objstore-fetch.h: a queue of keys, a few
 * threads that GET them in the order added, and the results held until the
 * caller takes them.  Locking: fetcher->lock protects every field marked
 * so below; a thread never holds it across a store request. */
#include "objstore-fetch.h"
#include "objstore-private.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FETCHER_THREADS_MAX 16

enum fetch_state {
	FETCH_QUEUED,
	FETCH_RUNNING,
	FETCH_DONE,
	FETCH_TAKEN,	/* given to the caller (or taken before it started) */
	FETCH_DROPPED,	/* running, its result to be thrown away */
};

struct fetch {
	char *key;		/* set at add, read-only after */
	size_t max_size;	/* likewise */
	/* protected by fetcher->lock */
	enum fetch_state state;
	int ret;
	void *data;
	size_t size;
	enum objstore_error error;
	char *error_msg;
};

struct objstore_fetcher {
	struct objstore *store;
	unsigned int threads_wanted, max_held;

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* any state change, stopping */
	/* protected by lock */
	struct fetch *fetches;
	size_t count, alloc;
	size_t next;			/* no QUEUED fetch before it */
	size_t hint;			/* where the last take found its key */
	unsigned int held, running;
	bool stopping;
	struct objstore_fetcher_stats stats;

	/* the caller's thread only */
	pthread_t threads[FETCHER_THREADS_MAX];
	unsigned int thread_count;
};

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (p == NULL)
		abort();
	return p;
}

/* the next fetch to start, or NULL; under lock */
static struct fetch *next_queued(struct objstore_fetcher *f)
{
	while (f->next < f->count && f->fetches[f->next].state != FETCH_QUEUED)
		f->next++;
	return f->next < f->count ? &f->fetches[f->next] : NULL;
}

static void *fetcher_thread(void *context)
{
	struct objstore_fetcher *f = context;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		struct fetch *fe;
		size_t idx, size = 0;
		void *data = NULL;
		int ret;

		/* results waiting and GETs running count against max_held */
		while (!f->stopping &&
		       (f->held + f->running >= f->max_held ||
			next_queued(f) == NULL))
			pthread_cond_wait(&f->cond, &f->lock);
		if (f->stopping)
			break;
		fe = next_queued(f);
		idx = (size_t)(fe - f->fetches);
		fe->state = FETCH_RUNNING;
		if (++f->running > f->stats.max_running)
			f->stats.max_running = f->running;
		const char *key = fe->key;
		size_t max_size = fe->max_size;
		pthread_mutex_unlock(&f->lock);

		ret = objstore_get(f->store, key, 0, OBJSTORE_TO_END, max_size,
				   &data, &size);

		pthread_mutex_lock(&f->lock);
		fe = &f->fetches[idx];	/* the array may have moved */
		f->running--;
		f->stats.fetched++;
		if (fe->state == FETCH_DROPPED) {
			free(data);
			fe->state = FETCH_TAKEN;
			pthread_cond_broadcast(&f->cond);
			continue;
		}
		fe->ret = ret;
		if (ret < 0) {
			objstore_error_save(&fe->error, &fe->error_msg);
		} else {
			fe->data = data;
			fe->size = size;
		}
		fe->state = FETCH_DONE;
		f->held++;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct objstore_fetcher *objstore_fetcher_init(struct objstore *store,
					       unsigned int threads,
					       unsigned int max_held)
{
	struct objstore_fetcher *f = calloc(1, sizeof(*f));

	if (f == NULL)
		abort();
	f->store = store;
	f->threads_wanted = threads == 0 ? 1 :
		threads > FETCHER_THREADS_MAX ? FETCHER_THREADS_MAX : threads;
	f->max_held = max_held == 0 ? 1 : max_held;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	return f;
}

/* the fetch of key not taken or dropped yet, or NULL; the search starts
   where the last one ended: keys are mostly taken in the order added */
static struct fetch *fetch_find(struct objstore_fetcher *f, const char *key)
{
	for (size_t n = 0; n < f->count; n++) {
		size_t i = (f->hint + n) % f->count;

		if (f->fetches[i].state != FETCH_TAKEN &&
		    f->fetches[i].state != FETCH_DROPPED &&
		    strcmp(f->fetches[i].key, key) == 0) {
			f->hint = i;
			return &f->fetches[i];
		}
	}
	return NULL;
}

void objstore_fetcher_add(struct objstore_fetcher *f, const char *key,
			  size_t max_size)
{
	pthread_mutex_lock(&f->lock);
	if (f->count == f->alloc) {
		f->alloc = f->alloc == 0 ? 8 : f->alloc * 2;
		f->fetches = xrealloc(f->fetches,
				      f->alloc * sizeof(*f->fetches));
	}
	struct fetch *fe = &f->fetches[f->count++];

	memset(fe, 0, sizeof(*fe));
	fe->key = strdup(key);
	if (fe->key == NULL)
		abort();
	fe->max_size = max_size;
	fe->state = FETCH_QUEUED;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);

	/* a thread per fetch queued, up to the limit; without threads the
	   caller does every GET itself at take */
	if (f->thread_count < f->threads_wanted &&
	    pthread_create(&f->threads[f->thread_count], NULL, fetcher_thread,
			   f) == 0)
		f->thread_count++;
}

int objstore_fetcher_take(struct objstore_fetcher *f, const char *key,
			  int *ret_r, void **data_r, size_t *size_r)
{
	struct fetch *fe;
	enum objstore_error error;
	char *error_msg;
	size_t idx;

	*data_r = NULL;
	*size_r = 0;
	pthread_mutex_lock(&f->lock);
	fe = fetch_find(f, key);
	if (fe == NULL) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	if (fe->state == FETCH_QUEUED) {
		fe->state = FETCH_TAKEN;
		f->stats.taken_unstarted++;
		pthread_mutex_unlock(&f->lock);
		*ret_r = objstore_get(f->store, key, 0, OBJSTORE_TO_END,
				      fe->max_size, data_r, size_r);
		return 1;
	}
	idx = (size_t)(fe - f->fetches);
	while (f->fetches[idx].state == FETCH_RUNNING)
		pthread_cond_wait(&f->cond, &f->lock);
	fe = &f->fetches[idx];
	fe->state = FETCH_TAKEN;
	f->held--;
	f->stats.taken++;
	*ret_r = fe->ret;
	*data_r = fe->data;
	*size_r = fe->size;
	fe->data = NULL;
	error = fe->error;
	error_msg = fe->error_msg;
	fe->error_msg = NULL;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (*ret_r < 0) {
		objstore_set_error(error, "%s", error_msg != NULL ? error_msg :
				   "out of memory");
		free(error_msg);
	}
	return 1;
}

void objstore_fetcher_drop(struct objstore_fetcher *f, const char *key)
{
	struct fetch *fe;

	pthread_mutex_lock(&f->lock);
	fe = fetch_find(f, key);
	if (fe != NULL) {
		switch (fe->state) {
		case FETCH_QUEUED:
			fe->state = FETCH_TAKEN;	/* never sent */
			break;
		case FETCH_RUNNING:
			fe->state = FETCH_DROPPED;
			break;
		case FETCH_DONE:
			free(fe->data);
			fe->data = NULL;
			free(fe->error_msg);
			fe->error_msg = NULL;
			fe->state = FETCH_TAKEN;
			f->held--;
			pthread_cond_broadcast(&f->cond);
			break;
		case FETCH_TAKEN:
		case FETCH_DROPPED:
			break;
		}
	}
	pthread_mutex_unlock(&f->lock);
}

void objstore_fetcher_get_stats(struct objstore_fetcher *f,
				struct objstore_fetcher_stats *stats_r)
{
	pthread_mutex_lock(&f->lock);
	*stats_r = f->stats;
	pthread_mutex_unlock(&f->lock);
}

void objstore_fetcher_deinit(struct objstore_fetcher **_f)
{
	struct objstore_fetcher *f = *_f;

	if (f == NULL)
		return;
	*_f = NULL;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	for (unsigned int i = 0; i < f->thread_count; i++)
		pthread_join(f->threads[i], NULL);
	for (size_t i = 0; i < f->count; i++) {
		free(f->fetches[i].key);
		free(f->fetches[i].data);
		free(f->fetches[i].error_msg);
	}
	free(f->fetches);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
