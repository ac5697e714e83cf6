/* test_cache_cap.c: under concurrent adds and opens of objects of random
 * sizes against a small cap, the bytes on disk (sampled by walking the
 * directory all along) never exceed the cap by more than 5%, and every open
 * returns the right bytes. */
#include "cachedir.h"
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OBJECTS 48
#define THREADS 4
#define MAX_SIZE (96 * 1024)

static char *dir;
static char cache_path[4096];
static struct objstore *store;
static struct cachedir *cd;
static uint64_t cap;
static uint64_t sizes[OBJECTS];
static char keys[OBJECTS][128];
static atomic_bool stop;
static atomic_uint_fast64_t max_seen, samples;
static atomic_uint bad_reads, failures;

static void init(void)
{
	dir = objtest_mkdtemp("cache_cap");
	cr_assert_not_null(dir);
}

static void fini(void)
{
	cachedir_deinit(&cd);
	if (store != NULL)
		objstore_deinit(&store);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(cache_cap, .init = init, .fini = fini, .timeout = 120);

static void object_bytes(unsigned int i, unsigned char *buf)
{
	objtest_random_bytes(buf, sizes[i], 1000 + i);
}

static void setup(uint64_t cache_cap, const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };
	static unsigned char buf[MAX_SIZE];
	const char *error;

	store = objtest_open_posix_store(dir, &set);
	cap = cache_cap;
	snprintf(cache_path, sizeof(cache_path), "%s/cache", dir);
	cr_assert_eq(cachedir_init(cache_path, cap, store, &cd, &error), 0,
		     "%s", error);
	srand(42);
	for (unsigned int i = 0; i < OBJECTS; i++) {
		sizes[i] = (uint64_t)(rand() % MAX_SIZE);
		/* oids that differ before their last byte: every file in
		   one subdirectory (the cache spreads files by an id's last
		   byte), so that the sampler's walk (not atomic over many
		   directories) is close to a snapshot */
		snprintf(keys[i], sizeof(keys[i]),
			 "0a/bcd/u@example.com/mailboxes/%032x/%030x00", 7,
			 i + 1);
		object_bytes(i, buf);
		cr_assert_eq(objstore_put(store, keys[i], buf, sizes[i], NULL,
					  0), 0, "%s", objstore_error());
	}
}

static uint64_t walk_total;

static int walk_cb(const char *path, const struct stat *sb, int flag,
		   struct FTW *ftw)
{
	(void)path; (void)ftw;
	if (flag == FTW_F)
		walk_total += (uint64_t)sb->st_size;
	return 0;
}

static uint64_t disk_bytes(void)
{
	walk_total = 0;
	(void)nftw(cache_path, walk_cb, 16, FTW_PHYS);
	return walk_total;
}

static void *sampler_run(void *context)
{
	(void)context;
	while (!atomic_load(&stop)) {
		uint64_t total = disk_bytes();

		if (total > atomic_load(&max_seen))
			atomic_store(&max_seen, total);
		atomic_fetch_add(&samples, 1);
	}
	return NULL;
}

struct worker {
	pthread_t thread;
	unsigned int seed, ops;
	unsigned int add_percent;
};

static void check_fd(unsigned int i, int fd)
{
	static __thread unsigned char want[MAX_SIZE], got[MAX_SIZE + 1];
	struct stat st;

	object_bytes(i, want);
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != sizes[i] ||
	    pread(fd, got, sizeof(got), 0) != (ssize_t)sizes[i] ||
	    memcmp(got, want, sizes[i]) != 0)
		atomic_fetch_add(&bad_reads, 1);
}

static void *worker_run(void *context)
{
	static __thread unsigned char buf[MAX_SIZE];
	struct worker *w = context;
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/src.%u", dir, w->seed);
	for (unsigned int n = 0; n < w->ops; n++) {
		unsigned int i = (unsigned int)rand_r(&w->seed) % OBJECTS;

		if ((unsigned int)rand_r(&w->seed) % 100 < w->add_percent) {
			int src = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

			object_bytes(i, buf);
			if (src < 0 || write(src, buf, sizes[i]) !=
			    (ssize_t)sizes[i] ||
			    cachedir_add_fd(cd, keys[i], src, sizes[i]) < 0)
				atomic_fetch_add(&failures, 1);
			if (src >= 0)
				close(src);
			continue;
		}
		if (cachedir_open(cd, keys[i], sizes[i], &fd) < 0) {
			fprintf(stderr, "open %u: %s\n", i, cachedir_error());
			atomic_fetch_add(&failures, 1);
			continue;
		}
		check_fd(i, fd);
		close(fd);
	}
	return NULL;
}

struct cap_case {
	uint64_t cap;
	unsigned int add_percent;
	char fault[48];
};

ParameterizedTestParameters(cache_cap, never_past_cap)
{
	static struct cap_case params[] = {
		{ 256 * 1024, 0, "" },
		{ 256 * 1024, 30, "" },
		{ 512 * 1024, 50, "ops=get;latency_ms=3;rate=0" },
		{ 1024 * 1024, 20, "ops=get;latency_ms=1;rate=0" },
	};
	return cr_make_param_array(struct cap_case, params,
				   sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct cap_case *p, cache_cap, never_past_cap)
{
	struct worker w[THREADS];
	struct cachedir_stats st;
	pthread_t sampler;

	setup(p->cap, p->fault[0] == '\0' ? NULL : p->fault);
	atomic_store(&stop, false);
	cr_assert_eq(pthread_create(&sampler, NULL, sampler_run, NULL), 0);
	for (unsigned int t = 0; t < THREADS; t++) {
		w[t].seed = t + 1;
		w[t].ops = 150;
		w[t].add_percent = p->add_percent;
		cr_assert_eq(pthread_create(&w[t].thread, NULL, worker_run,
					    &w[t]), 0);
	}
	for (unsigned int t = 0; t < THREADS; t++)
		pthread_join(w[t].thread, NULL);
	atomic_store(&stop, true);
	pthread_join(sampler, NULL);

	cr_assert_eq(atomic_load(&failures), 0);
	cr_assert_eq(atomic_load(&bad_reads), 0, "%u wrong reads",
		     atomic_load(&bad_reads));
	cr_assert_gt(atomic_load(&samples), 10);
	cr_assert_leq(atomic_load(&max_seen), cap + cap / 20,
		      "%llu bytes on disk, cap %llu",
		      (unsigned long long)atomic_load(&max_seen),
		      (unsigned long long)cap);
	cachedir_get_stats(cd, &st);
	cr_assert_leq(st.bytes, cap);
	cr_assert_eq(st.reserved, 0);
	cr_assert_gt(st.evictions, 0, "the cap was never reached");
	cr_assert_eq(disk_bytes(), st.bytes, "disk %llu, accounted %llu",
		     (unsigned long long)disk_bytes(),
		     (unsigned long long)st.bytes);
	fprintf(stderr, "cache_cap: cap %llu: max on disk %llu (%llu samples), "
		"%llu evictions\n", (unsigned long long)cap,
		(unsigned long long)atomic_load(&max_seen),
		(unsigned long long)atomic_load(&samples),
		(unsigned long long)st.evictions);
}

Test(cache_cap, larger_than_cap_served_uncached)
{
	static unsigned char want[MAX_SIZE], got[MAX_SIZE];
	struct cachedir_stats st;
	unsigned int big = 0;
	int fd;

	setup(4096, NULL);
	for (unsigned int i = 0; i < OBJECTS; i++) {
		if (sizes[i] > 4096) {
			big = i;
			break;
		}
	}
	cr_assert_gt(sizes[big], 4096);
	cr_assert_eq(cachedir_open(cd, keys[big], sizes[big], &fd), 0, "%s",
		     cachedir_error());
	object_bytes(big, want);
	cr_assert_eq(pread(fd, got, sizeof(got), 0), (ssize_t)sizes[big]);
	cr_assert_eq(memcmp(got, want, sizes[big]), 0);
	close(fd);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(disk_bytes(), 0);
	/* and adding it does not cache it either */
	cr_assert_eq(cachedir_add_fd(cd, keys[big], 0, sizes[big]), 0);
	cr_assert_eq(disk_bytes(), 0);
}
