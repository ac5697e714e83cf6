/* objstore-fetch.h: whole-object GETs run ahead by a few threads of their
 * own, for a caller that knows what it will read next (a cold user load:
 * the bundles of every folder) and would otherwise wait for one round trip
 * after another.  The requests are the ones the caller would send anyway;
 * only their order in time changes.
 *
 *   f = objstore_fetcher_init(store, 4, 32);
 *   objstore_fetcher_add(f, key_a, max); objstore_fetcher_add(f, key_b, max);
 *   ...
 *   if (objstore_fetcher_take(f, key_a, &ret, &data, &size) == 0)
 *           ret = objstore_get(store, key_a, ...);   (never added)
 *   objstore_fetcher_deinit(&f);   (joins; frees what was not taken)
 *
 * One caller thread adds and takes; the fetcher's threads only GET.
 */
#ifndef OBOXFS_OBJSTORE_FETCH_H
#define OBOXFS_OBJSTORE_FETCH_H

#include "objstore.h"

#include <stddef.h>

struct objstore_fetcher;

struct objstore_fetcher_stats {
	/* GETs done by the fetcher's threads; of them taken by the caller */
	unsigned int fetched, taken;
	/* keys the caller took before a thread started them (it GETs them
	   itself), and the most GETs the threads ran at once */
	unsigned int taken_unstarted, max_running;
};

/* threads: GETs in flight at most (1..16); max_held: results fetched and
   not taken yet (GETs in flight included) after which the threads wait
   for the caller.  Threads are
   started at the first add.  Never fails (aborts when out of memory). */
struct objstore_fetcher *objstore_fetcher_init(struct objstore *store,
					       unsigned int threads,
					       unsigned int max_held);
/* Queue a GET of the whole of key (at most max_size bytes: see
   objstore_get()).  Add a key once (not checked: a key added twice is
   fetched twice). */
void objstore_fetcher_add(struct objstore_fetcher *fetcher, const char *key,
			  size_t max_size);
/* 0 if key was never added (or was taken already).  Else 1, and the GET's
   result as objstore_get() gives it: *ret_r 0 with *data_r (free() it) and
   *size_r, or -1 with objstore_error()/objstore_errcode() and errno set in
   the calling thread.  Waits while the GET runs; a GET not started yet is
   done by the caller itself, at once. */
int objstore_fetcher_take(struct objstore_fetcher *fetcher, const char *key,
			  int *ret_r, void **data_r, size_t *size_r);
/* The caller will not take key after all: a GET not started is not sent,
   a result is freed (its max_held slot with it), a GET running is let
   finish and its result thrown away.  Nothing if key is not waiting. */
void objstore_fetcher_drop(struct objstore_fetcher *fetcher, const char *key);
void objstore_fetcher_get_stats(struct objstore_fetcher *fetcher,
				struct objstore_fetcher_stats *stats_r);
/* Stops the threads (GETs in flight are waited for) and frees the results
   not taken. */
void objstore_fetcher_deinit(struct objstore_fetcher **fetcher);

#endif
