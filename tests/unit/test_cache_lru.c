/* test_cache_lru.c: the LRU bookkeeping of the mail cache: recency order,
 * touch, eviction order and byte accounting (in the index and through the
 * cache itself), and the memory used by 100,000 entries. */
#include "cachedir-private.h"
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct cachedir_index idx;

static void id_of(unsigned int n, uint8_t id[CACHEDIR_ID_LEN])
{
	memset(id, 0, CACHEDIR_ID_LEN);
	/* vary the hashed bytes too */
	memcpy(id, &n, sizeof(n));
	memcpy(id + 8, &n, sizeof(n));
}

static void init(void)
{
	cr_assert_eq(cachedir_index_init(&idx), 0);
}

static void fini(void)
{
	cachedir_index_deinit(&idx);
}

TestSuite(cache_lru, .init = init, .fini = fini);

/* evict everything, returning the numbers in eviction order */
static void evict_all(unsigned int *order, unsigned int max, unsigned int *n_r)
{
	struct cachedir_entry *e;
	unsigned int n = 0;

	while ((e = cachedir_index_lru(&idx)) != NULL) {
		cr_assert_lt(n, max);
		memcpy(&order[n++], e->id, sizeof(unsigned int));
		cachedir_index_remove(&idx, e);
		free(e);
	}
	*n_r = n;
}

struct touch_case {
	unsigned int count;
	unsigned int touches[4];	/* entries touched, in this order */
	unsigned int ntouches;
	unsigned int expected[6];	/* eviction order */
};

ParameterizedTestParameters(cache_lru, eviction_order)
{
	static struct touch_case params[] = {
		{ 3, { 0 }, 0, { 0, 1, 2 } },
		{ 3, { 0 }, 1, { 1, 2, 0 } },
		{ 3, { 2 }, 1, { 0, 1, 2 } },
		{ 4, { 1, 0 }, 2, { 2, 3, 1, 0 } },
		{ 5, { 4, 3, 2, 1 }, 4, { 0, 4, 3, 2, 1 } },
		{ 6, { 0, 0, 5, 0 }, 4, { 1, 2, 3, 4, 5, 0 } },
		{ 1, { 0 }, 1, { 0 } },
	};
	return cr_make_param_array(struct touch_case, params,
				   sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct touch_case *p, cache_lru, eviction_order)
{
	unsigned int order[6], n;
	uint8_t id[CACHEDIR_ID_LEN];

	for (unsigned int i = 0; i < p->count; i++) {
		id_of(i, id);
		cr_assert_not_null(cachedir_index_insert(&idx, id, 10 + i, i));
	}
	for (unsigned int i = 0; i < p->ntouches; i++) {
		id_of(p->touches[i], id);
		struct cachedir_entry *e = cachedir_index_lookup(&idx, id);

		cr_assert_not_null(e);
		cachedir_index_touch(&idx, e);
	}
	evict_all(order, 6, &n);
	cr_assert_eq(n, p->count);
	for (unsigned int i = 0; i < n; i++)
		cr_assert_eq(order[i], p->expected[i], "position %u: %u, not %u",
			     i, order[i], p->expected[i]);
	cr_assert_eq(idx.count, 0);
	cr_assert_eq(idx.bytes, 0);
}

Test(cache_lru, lookup_and_accounting)
{
	uint8_t id[CACHEDIR_ID_LEN];
	struct cachedir_entry *e;
	uint64_t total = 0;

	for (unsigned int i = 0; i < 5000; i++) {
		id_of(i, id);
		cr_assert_not_null(cachedir_index_insert(&idx, id, i, i * 7));
		total += i;
	}
	cr_assert_eq(idx.count, 5000);
	cr_assert_eq(idx.bytes, total);
	for (unsigned int i = 0; i < 5000; i += 3) {
		id_of(i, id);
		e = cachedir_index_lookup(&idx, id);
		cr_assert_not_null(e, "entry %u lost", i);
		cr_assert_eq(e->size, i);
		cr_assert_eq(e->csum, (uint64_t)i * 7);
		cachedir_index_remove(&idx, e);
		free(e);
		total -= i;
		cr_assert_null(cachedir_index_lookup(&idx, id));
	}
	cr_assert_eq(idx.bytes, total);
	id_of(99999, id);
	cr_assert_null(cachedir_index_lookup(&idx, id));
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

Test(cache_lru, memory_per_entry_100k)
{
	const unsigned int n = 100000;
	uint8_t id[CACHEDIR_ID_LEN];
	long before, after;
	uint64_t mem;

	before = rss_kib();
	for (unsigned int i = 0; i < n; i++) {
		/* ids as random as oids */
		objtest_random_bytes(id, sizeof(id), i + 1);
		cr_assert_not_null(cachedir_index_insert(&idx, id, 4096, i));
	}
	after = rss_kib();
	mem = cachedir_index_memory(&idx);
	cr_assert_eq(idx.count, n);
	cr_assert_lt(mem / n, 200, "%llu bytes per entry",
		     (unsigned long long)(mem / n));
	/* the accounting is not far from what the process really uses */
	fprintf(stderr, "cache_lru: 100000 entries: accounted %llu bytes "
		"(%llu/entry), RSS delta %ld KiB (%ld bytes/entry)\n",
		(unsigned long long)mem, (unsigned long long)(mem / n),
		after - before, (after - before) * 1024 / (long)n);
#if !defined(__SANITIZE_ADDRESS__)
	cr_assert_lt((after - before) * 1024 / (long)n, 200,
		     "RSS grew by %ld KiB", after - before);
	cr_assert_gt((uint64_t)(after - before) * 1024, mem / 2,
		     "RSS delta %ld KiB is far below the accounted %llu bytes",
		     after - before, (unsigned long long)mem);
#endif
}

/* through the cache: the least recently used file goes first */
Test(cache_lru, cachedir_evicts_least_recently_used)
{
	char *dir = objtest_mkdtemp("cache_lru");
	char path[4096], key[3][128], data[1000];
	struct objstore_settings set = { .no_fsync = true };
	struct objstore *store;
	struct cachedir *cd;
	struct cachedir_stats st;
	const char *error;
	int fd;

	cr_assert_not_null(dir);
	store = objtest_open_posix_store(dir, &set);
	snprintf(path, sizeof(path), "%s/cache", dir);
	/* room for two 1000-byte objects, not three */
	cr_assert_eq(cachedir_init(path, 2500, store, &cd, &error), 0, "%s",
		     error);
	for (int i = 0; i < 3; i++) {
		snprintf(key[i], sizeof(key[i]),
			 "b5/899/u@example.com/mailboxes/%032x/%032x", 1, i + 1);
		memset(data, 'a' + i, sizeof(data));
		cr_assert_eq(objstore_put(store, key[i], data, sizeof(data),
					  NULL, 0), 0);
	}
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(cachedir_open(cd, key[i], 1000, &fd), 0, "%s",
			     cachedir_error());
		close(fd);
	}
	/* touch 0: 1 is now the least recently used */
	cr_assert_eq(cachedir_open(cd, key[0], 1000, &fd), 0);
	close(fd);
	cr_assert_eq(cachedir_open(cd, key[2], 1000, &fd), 0);
	close(fd);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, 2);
	cr_assert_eq(st.bytes, 2000);
	cr_assert_eq(st.evictions, 1);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(st.reserved, 0);
	/* 0 and 2 are hits, 1 is fetched again */
	cr_assert_eq(cachedir_open(cd, key[0], 1000, &fd), 0);
	close(fd);
	cr_assert_eq(cachedir_open(cd, key[2], 1000, &fd), 0);
	close(fd);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.hits, 3);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(cachedir_open(cd, key[1], 1000, &fd), 0);
	char buf[1000];
	cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 1000);
	cr_assert_eq(buf[0], 'b');
	close(fd);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.misses, 4);
	cr_assert_eq(st.evictions, 2);
	cachedir_deinit(&cd);
	cr_assert_null(cd);
	objstore_deinit(&store);
	objtest_rm_rf(dir);
	free(dir);
}

/* mail oids start with their time (13 hex digits): ids made within the
   same minutes share their first bytes.  They must still spread over the
   hash buckets and the cache's subdirectories (by their random end), or
   every lookup walks one chain and every file lands in one directory */
Test(cache_lru, time_ordered_ids_spread)
{
	uint8_t id[CACHEDIR_ID_LEN];
	char name[CACHEDIR_NAME_LEN + 1];
	bool subdirs[256] = { false };
	unsigned int nsubdirs = 0;
	size_t longest = 0;

	srand(7);
	for (unsigned int n = 0; n < 4096; n++) {
		/* one second's worth of time prefix, then random */
		memset(id, 0x69, 7);
		for (unsigned int i = 7; i < CACHEDIR_ID_LEN; i++)
			id[i] = (uint8_t)rand();
		cr_assert_not_null(cachedir_index_insert(&idx, id, 100, 1));
		cachedir_file_name(id, 1, name);
		unsigned int sub = (unsigned int)strtoul(
			(char[3]){ name[0], name[1], '\0' }, NULL, 16);
		if (!subdirs[sub]) {
			subdirs[sub] = true;
			nsubdirs++;
		}
	}
	for (size_t b = 0; b < idx.nbuckets; b++) {
		size_t len = 0;

		for (struct cachedir_entry *e = idx.buckets[b]; e != NULL;
		     e = e->hash_next)
			len++;
		if (len > longest)
			longest = len;
	}
	cr_assert_leq(longest, 12, "a hash chain of %zu entries", longest);
	cr_assert_geq(nsubdirs, 200, "files in %u subdirectories", nsubdirs);
}
