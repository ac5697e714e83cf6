/* test_objstore_fetcher.c: GETs run ahead by objstore-fetch.h give what
 * objstore_get() gives (bytes, errors raised in the caller's thread), run
 * side by side, stop while max_held results wait, and a key the threads
 * have not started is fetched by the caller at once. */
#include "helper-objstore.h"
#include "objstore.h"
#include "objstore-fetch.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *root;
static struct objstore *store;

static void open_store(const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };
	const char *error;
	char url[1024];

	root = objtest_mkdtemp("objstore-fetcher");
	cr_assert_not_null(root);
	snprintf(url, sizeof(url), "file://%s", root);
	cr_assert_eq(objstore_init(url, &set, &store, &error), 0, "%s", error);
}

static void put_keys(unsigned int count)
{
	for (unsigned int i = 0; i < count; i++) {
		char key[32], data[64];

		snprintf(key, sizeof(key), "k/%u", i);
		snprintf(data, sizeof(data), "data of key %u", i);
		cr_assert_eq(objstore_put(store, key, data, strlen(data),
					  NULL, 0), 0, "%s",
			     objstore_error());
	}
}

static void take_key(struct objstore_fetcher *f, unsigned int i)
{
	char key[32], want[64];
	size_t size;
	void *data;
	int ret;

	snprintf(key, sizeof(key), "k/%u", i);
	snprintf(want, sizeof(want), "data of key %u", i);
	cr_assert_eq(objstore_fetcher_take(f, key, &ret, &data, &size), 1,
		     "%s was added", key);
	cr_assert_eq(ret, 0, "%s: %s", key, objstore_error());
	cr_assert_eq(size, strlen(want));
	cr_assert_arr_eq(data, want, size);
	cr_assert_eq(((char *)data)[size], '\0');
	free(data);
}

static void add_key(struct objstore_fetcher *f, unsigned int i)
{
	char key[32];

	snprintf(key, sizeof(key), "k/%u", i);
	objstore_fetcher_add(f, key, 1024);
}

/* keys k/0 .. k/<count - 1> added, or taken in that order */
static void add_keys(struct objstore_fetcher *f, unsigned int count)
{
	for (unsigned int i = 0; i < count; i++)
		add_key(f, i);
}

static void take_keys(struct objstore_fetcher *f, unsigned int count)
{
	for (unsigned int i = 0; i < count; i++)
		take_key(f, i);
}

/* until the fetcher's threads have done n GETs (fails after 10 s) */
static void wait_fetched(struct objstore_fetcher *f, unsigned int n)
{
	struct objstore_fetcher_stats st;

	for (unsigned int i = 0; i < 1000; i++) {
		objstore_fetcher_get_stats(f, &st);
		if (st.fetched >= n)
			return;
		usleep(10 * 1000);
	}
	cr_assert_fail("the threads did %u GETs, not %u", st.fetched, n);
}

static void teardown(void)
{
	objstore_deinit(&store);
	objtest_rm_rf(root);
	free(root);
}

Test(objstore_fetcher, takes_give_the_bytes_get_gives_in_any_order,
     .fini = teardown)
{
	struct objstore_fetcher *f;
	struct objstore_fetcher_stats st;

	open_store(NULL);
	put_keys(6);
	f = objstore_fetcher_init(store, 3, 8);
	add_keys(f, 6);
	for (unsigned int i = 6; i > 0; i--)
		take_key(f, i - 1);
	objstore_fetcher_get_stats(f, &st);
	cr_assert_eq(st.taken + st.taken_unstarted, 6);
	cr_assert_eq(st.fetched, st.taken);
	objstore_fetcher_deinit(&f);
	cr_assert_null(f);
}

Test(objstore_fetcher, a_key_not_added_or_taken_already_is_not_taken,
     .fini = teardown)
{
	struct objstore_fetcher *f;
	size_t size;
	void *data;
	int ret;

	open_store(NULL);
	put_keys(2);
	f = objstore_fetcher_init(store, 2, 8);
	add_key(f, 0);
	cr_assert_eq(objstore_fetcher_take(f, "k/1", &ret, &data, &size), 0);
	take_key(f, 0);
	cr_assert_eq(objstore_fetcher_take(f, "k/0", &ret, &data, &size), 0,
		     "a key is taken once");
	objstore_fetcher_deinit(&f);
}

struct error_case {
	char fault[64];		/* "": the key is missing (criterion
				   copies parameters: no pointers) */
	enum objstore_error error;
	int err;
};

ParameterizedTestParameters(objstore_fetcher, errors_are_raised_in_the_caller)
{
	static struct error_case cases[] = {
		{ "", OBJSTORE_ERR_NOT_FOUND, ENOENT },
		{ "ops=get;error=throttled", OBJSTORE_ERR_THROTTLED, EBUSY },
		{ "ops=get;error=permanent", OBJSTORE_ERR_PERMANENT, EIO },
	};
	return cr_make_param_array(struct error_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct error_case *c, objstore_fetcher,
		  errors_are_raised_in_the_caller, .fini = teardown)
{
	struct objstore_fetcher *f;
	size_t size;
	void *data;
	int ret;

	open_store(c->fault[0] != '\0' ? c->fault : NULL);
	if (c->fault[0] != '\0')
		put_keys(1);
	f = objstore_fetcher_init(store, 2, 8);
	add_key(f, 0);
	/* the thread's GET is done: its error must become this thread's */
	wait_fetched(f, 1);
	/* another error in this thread first: take must replace it */
	cr_assert_eq(objstore_get(store, "", 0, OBJSTORE_TO_END, 16, &data,
				  &size), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_fetcher_take(f, "k/0", &ret, &data, &size), 1);
	cr_assert_eq(ret, -1);
	cr_assert_null(data);
	cr_assert_eq(objstore_errcode(), c->error, "%s: %s",
		     objstore_error_name(objstore_errcode()),
		     objstore_error());
	cr_assert_eq(errno, c->err, "errno %d", errno);
	cr_assert_neq(objstore_error()[0], '\0');
	objstore_fetcher_deinit(&f);
}

Test(objstore_fetcher, gets_run_side_by_side, .fini = teardown)
{
	struct objstore_fetcher *f;
	struct objstore_fetcher_stats st;

	/* every GET takes 200 ms: four threads started at once overlap */
	open_store("ops=get;latency_ms=200;rate=0");
	put_keys(4);
	f = objstore_fetcher_init(store, 4, 8);
	add_keys(f, 4);
	take_keys(f, 4);
	objstore_fetcher_get_stats(f, &st);
	cr_assert_geq(st.max_running, 2, "at most %u GET at once",
		      st.max_running);
	cr_assert_leq(st.max_running, 4);
	objstore_fetcher_deinit(&f);
}

Test(objstore_fetcher, threads_wait_while_max_held_results_wait,
     .fini = teardown)
{
	struct objstore_fetcher *f;
	struct objstore_fetcher_stats st;

	open_store(NULL);
	put_keys(5);
	f = objstore_fetcher_init(store, 4, 1);
	add_keys(f, 5);
	usleep(100 * 1000);
	objstore_fetcher_get_stats(f, &st);
	cr_assert_leq(st.fetched, 1, "%u results held, 1 allowed",
		      st.fetched);
	/* k/4 is not started (k/0's result waits): the caller GETs it */
	take_key(f, 4);
	objstore_fetcher_get_stats(f, &st);
	cr_assert_eq(st.taken_unstarted, 1);
	for (unsigned int i = 0; i < 4; i++) {
		take_key(f, i);
		objstore_fetcher_get_stats(f, &st);
		cr_assert_leq(st.fetched, st.taken + 1);
	}
	objstore_fetcher_deinit(&f);
}

Test(objstore_fetcher, results_not_taken_are_freed, .fini = teardown)
{
	struct objstore_fetcher *f;

	/* what leaks here, ASan reports */
	open_store(NULL);
	put_keys(3);
	f = objstore_fetcher_init(store, 2, 8);
	add_keys(f, 3);
	add_key(f, 99);	/* missing: an error message held */
	usleep(50 * 1000);
	objstore_fetcher_deinit(&f);
	cr_assert_null(f);
}

/* Keys added while GETs run (the queue grows under the threads), then
   taken in order: every byte right. */
Test(objstore_fetcher, keys_added_while_gets_run, .fini = teardown)
{
	struct objstore_fetcher *f;
	struct objstore_fetcher_stats st;

	open_store("ops=get;latency_ms=20;rate=0");
	put_keys(50);
	f = objstore_fetcher_init(store, 4, 64);
	for (unsigned int i = 0; i < 50; i++) {
		add_key(f, i);
		if (i % 10 == 9)
			usleep(15 * 1000);
	}
	take_keys(f, 50);
	objstore_fetcher_get_stats(f, &st);
	cr_assert_eq(st.taken + st.taken_unstarted, 50);
	objstore_fetcher_deinit(&f);
}

/* A key dropped is not taken, and its result no longer holds a slot:
   with max_held 1 the threads go on to the next keys. */
Test(objstore_fetcher, a_dropped_key_frees_its_slot, .fini = teardown)
{
	struct objstore_fetcher *f;
	struct objstore_fetcher_stats st;
	size_t size;
	void *data;
	int ret;

	open_store(NULL);
	put_keys(3);
	f = objstore_fetcher_init(store, 1, 1);
	add_keys(f, 3);
	wait_fetched(f, 1);	/* k/0 done: its result holds the slot */
	objstore_fetcher_drop(f, "k/0");
	objstore_fetcher_drop(f, "k/9");	/* never added: nothing */
	cr_assert_eq(objstore_fetcher_take(f, "k/0", &ret, &data, &size), 0);
	wait_fetched(f, 2);	/* k/1: the slot was given back */
	objstore_fetcher_get_stats(f, &st);
	cr_assert_eq(st.taken_unstarted, 0);
	take_key(f, 1);
	take_key(f, 2);
	objstore_fetcher_deinit(&f);
}
