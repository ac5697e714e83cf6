/* test_cache_single_flight.c: threads missing the same object at once share
 * one GET and its result, a failure included; an object removed while it is
 * being fetched leaves no file behind. */
#include "cachedir.h"
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READERS 8
#define KEY "b5/899/u@example.com/mailboxes/00d7d12ea08a3153175e0000dfbea952/" \
	"d88ff1001d4bf753a1b800001accfe22"
#define SIZE 100000

static char *dir;
static char cache_path[4096];
static struct objstore *store;
static struct cachedir *cd;
static unsigned char data[SIZE];
static pthread_barrier_t barrier;

static void setup(const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };
	const char *error;

	store = objtest_open_posix_store(dir, &set);
	snprintf(cache_path, sizeof(cache_path), "%s/cache", dir);
	cr_assert_eq(cachedir_init(cache_path, 10 * SIZE, store, &cd, &error),
		     0, "%s", error);
	objtest_random_bytes(data, sizeof(data), 7);
	cr_assert_eq(objstore_put(store, KEY, data, sizeof(data), NULL, 0), 0,
		     "%s", objstore_error());
}

static void init(void)
{
	dir = objtest_mkdtemp("cache_single_flight");
	cr_assert_not_null(dir);
	pthread_barrier_init(&barrier, NULL, READERS);
}

static void fini(void)
{
	cachedir_deinit(&cd);
	if (store != NULL)
		objstore_deinit(&store);
	pthread_barrier_destroy(&barrier);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(cache_single_flight, .init = init, .fini = fini, .timeout = 60);

struct reader {
	pthread_t thread;
	bool sync;
	int ret, err;
	char error[512];
	bool content_ok;
};

static void *reader_run(void *context)
{
	static __thread unsigned char buf[SIZE + 1];
	struct reader *r = context;
	int fd;

	if (r->sync)
		pthread_barrier_wait(&barrier);
	r->ret = cachedir_open(cd, KEY, SIZE, &fd);
	r->err = errno;
	if (r->ret < 0) {
		snprintf(r->error, sizeof(r->error), "%s", cachedir_error());
		return NULL;
	}
	r->content_ok = pread(fd, buf, sizeof(buf), 0) == SIZE &&
		memcmp(buf, data, SIZE) == 0;
	close(fd);
	return NULL;
}

static uint64_t gets(void)
{
	struct objstore_stats st;

	objstore_get_stats(store, &st);
	return st.requests[OBJSTORE_OP_GET];
}

static void run_readers(struct reader *r)
{
	for (int i = 0; i < READERS; i++) {
		r[i].sync = true;
		cr_assert_eq(pthread_create(&r[i].thread, NULL, reader_run,
					    &r[i]), 0);
	}
	for (int i = 0; i < READERS; i++)
		pthread_join(r[i].thread, NULL);
}

Test(cache_single_flight, one_get_for_concurrent_misses)
{
	struct reader r[READERS] = { 0 };
	struct cachedir_stats st;

	setup("ops=get;latency_ms=300;rate=0");
	run_readers(r);
	for (int i = 0; i < READERS; i++) {
		cr_assert_eq(r[i].ret, 0, "reader %d: %s", i, r[i].error);
		cr_assert(r[i].content_ok, "reader %d read wrong bytes", i);
	}
	cr_assert_eq(gets(), 1, "%llu GETs", (unsigned long long)gets());
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.misses + st.hits, READERS);
	cr_assert_geq(st.misses, 1);
	cr_assert_eq(st.entries, 1);
	cr_assert_eq(st.bytes, SIZE);
	cr_assert_eq(st.fetch_errors, 0);
	/* a later open is a hit, no GET */
	struct reader again = { 0 };
	reader_run(&again);
	cr_assert_eq(again.ret, 0);
	cr_assert(again.content_ok);
	cr_assert_eq(gets(), 1);
}

Test(cache_single_flight, failure_shared_by_all_waiters)
{
	struct reader r[READERS] = { 0 };
	struct cachedir_stats st;

	/* the GET really happens (when=after), then is reported failed */
	setup("ops=get;latency_ms=300;rate=1;error=permanent;when=after");
	run_readers(r);
	for (int i = 0; i < READERS; i++) {
		cr_assert_eq(r[i].ret, -1, "reader %d succeeded", i);
		cr_assert_eq(r[i].err, EIO, "reader %d: errno %d", i, r[i].err);
		cr_assert_neq(r[i].error[0], '\0');
		cr_assert(strstr(r[i].error, "d88ff1001d4bf753a1b800001accfe22")
			  != NULL, "reader %d: unclear error: %s", i,
			  r[i].error);
	}
	cr_assert_eq(gets(), 1, "%llu GETs", (unsigned long long)gets());
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.fetch_errors, 1);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.bytes, 0);
	cr_assert_eq(st.reserved, 0);
}

static int count_cb(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)path; (void)sb; (void)ftw;
	cr_assert_neq(flag, FTW_F, "file left behind: %s", path);
	return 0;
}

Test(cache_single_flight, removed_while_fetched_leaves_no_file)
{
	struct reader r = { 0 };
	struct cachedir_stats st;

	setup("ops=get;latency_ms=400;rate=0");
	cr_assert_eq(pthread_create(&r.thread, NULL, reader_run, &r), 0);
	usleep(150 * 1000);
	cachedir_remove(cd, KEY);
	pthread_join(r.thread, NULL);
	cr_assert_eq(r.ret, -1, "removed object was served");
	cr_assert_eq(r.err, ENOENT);
	cr_assert_eq(nftw(cache_path, count_cb, 16, FTW_PHYS), 0);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.bytes, 0);
	cr_assert_eq(st.reserved, 0);
	/* it is fetched again when asked for later */
	struct reader again = { 0 };
	reader_run(&again);
	cr_assert_eq(again.ret, 0, "%s", again.error);
	cr_assert(again.content_ok);
}
