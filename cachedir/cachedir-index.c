/* cachedir-index.c: the LRU bookkeeping of the mail cache: a chained hash
 * table on the 128-bit id plus a doubly-linked recency list, O(1) per
 * lookup, insert, touch and removal.  No locking: the caller's job. */
#include "cachedir-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 1024

int cachedir_index_init(struct cachedir_index *idx)
{
	memset(idx, 0, sizeof(*idx));
	idx->buckets = calloc(INITIAL_BUCKETS, sizeof(*idx->buckets));
	if (idx->buckets == NULL) {
		errno = ENOMEM;
		return -1;
	}
	idx->nbuckets = INITIAL_BUCKETS;
	return 0;
}

void cachedir_index_deinit(struct cachedir_index *idx)
{
	struct cachedir_entry *e, *next;

	for (e = idx->mru; e != NULL; e = next) {
		next = e->lru_next;
		free(e);
	}
	free(idx->buckets);
	memset(idx, 0, sizeof(*idx));
}

/* the random half of an id (not the time that starts a mail oid) */
static size_t bucket_of(const struct cachedir_index *idx,
			const uint8_t id[CACHEDIR_ID_LEN])
{
	uint64_t h;

	memcpy(&h, CACHEDIR_ID_SPREAD(id), sizeof(h));
	return (size_t)(h & (idx->nbuckets - 1));
}

struct cachedir_entry *
cachedir_index_lookup(struct cachedir_index *idx,
		      const uint8_t id[CACHEDIR_ID_LEN])
{
	struct cachedir_entry *e;

	for (e = idx->buckets[bucket_of(idx, id)]; e != NULL; e = e->hash_next) {
		if (memcmp(e->id, id, CACHEDIR_ID_LEN) == 0)
			return e;
	}
	return NULL;
}

/* double the bucket array (keeps at most one entry per bucket on average);
   failing to grow only makes chains longer */
static void grow(struct cachedir_index *idx)
{
	size_t n = idx->nbuckets * 2, i;
	struct cachedir_entry **old = idx->buckets, *e, *next;
	size_t old_n = idx->nbuckets;

	idx->buckets = calloc(n, sizeof(*idx->buckets));
	if (idx->buckets == NULL) {
		idx->buckets = old;
		return;
	}
	idx->nbuckets = n;
	for (i = 0; i < old_n; i++) {
		for (e = old[i]; e != NULL; e = next) {
			size_t b = bucket_of(idx, e->id);

			next = e->hash_next;
			e->hash_next = idx->buckets[b];
			idx->buckets[b] = e;
		}
	}
	free(old);
}

static void lru_link_head(struct cachedir_index *idx, struct cachedir_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = idx->mru;
	if (idx->mru != NULL)
		idx->mru->lru_prev = e;
	idx->mru = e;
	if (idx->lru == NULL)
		idx->lru = e;
}

static void lru_unlink(struct cachedir_index *idx, struct cachedir_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		idx->mru = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		idx->lru = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

struct cachedir_entry *
cachedir_index_insert(struct cachedir_index *idx,
		      const uint8_t id[CACHEDIR_ID_LEN], uint64_t size,
		      uint64_t csum)
{
	struct cachedir_entry *e;
	size_t b;

	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memcpy(e->id, id, CACHEDIR_ID_LEN);
	e->size = size;
	e->csum = csum;
	if (idx->count >= idx->nbuckets)
		grow(idx);
	b = bucket_of(idx, id);
	e->hash_next = idx->buckets[b];
	idx->buckets[b] = e;
	lru_link_head(idx, e);
	idx->count++;
	idx->bytes += size;
	return e;
}

void cachedir_index_touch(struct cachedir_index *idx, struct cachedir_entry *e)
{
	if (idx->mru == e)
		return;
	lru_unlink(idx, e);
	lru_link_head(idx, e);
}

void cachedir_index_remove(struct cachedir_index *idx,
			   struct cachedir_entry *e)
{
	struct cachedir_entry **p = &idx->buckets[bucket_of(idx, e->id)];

	while (*p != e)
		p = &(*p)->hash_next;
	*p = e->hash_next;
	e->hash_next = NULL;
	lru_unlink(idx, e);
	idx->count--;
	idx->bytes -= e->size;
}

struct cachedir_entry *cachedir_index_lru(struct cachedir_index *idx)
{
	return idx->lru;
}

uint64_t cachedir_index_memory(const struct cachedir_index *idx)
{
	/* malloc() rounds an entry up to a 16-byte multiple plus 8 bytes of
	   header */
	uint64_t per_entry = ((sizeof(struct cachedir_entry) + 8 + 15) / 16) * 16;

	return idx->count * per_entry +
		idx->nbuckets * sizeof(*idx->buckets);
}
