/* test_s3_retries.c: the s3 backend against a misbehaving local HTTP server
 * (tests/fixtures/misbehaving-http.py): connection resets, 5xx and SlowDown
 * are retried with back-off until they succeed or the retry budget runs
 * out; a hang times out as TRANSIENT; 403 and 404 are never retried; a
 * transfer cut in the middle is retried from scratch; late CopyObject
 * errors, 416 and servers ignoring Range or lacking DeleteObjects are
 * handled; DeleteObjects goes in batches of 1000 and its per-key errors are
 * checked; listings are paginated to the end and malformed ones (a bad key,
 * a truncation that cannot progress) fail instead of looping.  Every request
 * sent and every retry is counted. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper-fakes3.h"
#include "objstore.h"

#define RETRY_BUDGET_MS 3000

static pid_t server_pid = -1;
static int server_port;
static struct objstore *store;

static void start_server(void)
{
	server_pid = fakes3_start(NULL, &server_port);
}

static void open_store_on(const char *url)
{
	char endpoint[64];
	struct objstore_settings set = {
		.endpoint = endpoint,
		.connect_timeout_ms = 500,
		.request_timeout_ms = 1000,
		.retry_timeout_ms = RETRY_BUDGET_MS,
		.max_connections = 4,
	};
	const char *error;

	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d",
		 server_port);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	cr_assert_eq(objstore_init(url, &set, &store, &error), 0, "%s",
		     error);
}

static void setup(void)
{
	start_server();
	open_store_on("s3://testbucket");
}

static void teardown(void)
{
	objstore_deinit(&store);
	fakes3_stop(&server_pid);
}

TestSuite(s3_retries, .init = setup, .fini = teardown, .timeout = 30);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct objstore_stats stats(void)
{
	struct objstore_stats st;

	objstore_get_stats(store, &st);
	return st;
}

static void get_ok(const char *key, const char *expected)
{
	void *data;
	size_t size;

	cr_assert_eq(objstore_get(store, key, 0, OBJSTORE_TO_END, 1 << 20,
				  &data, &size), 0, "%s", objstore_error());
	cr_assert_eq(size, strlen(expected));
	cr_assert_str_eq(data, expected);
	free(data);
}

Test(s3_retries, init_probe_is_one_list_request)
{
	struct objstore_stats st = stats();

	cr_assert_eq(st.requests[OBJSTORE_OP_LIST], 1);
	cr_assert_eq(st.retries, 0);
}

Test(s3_retries, slowdown_retried_until_success)
{
	get_ok("slowdown/2/a", "hello world");
	cr_assert_eq(stats().requests[OBJSTORE_OP_GET], 3);
	cr_assert_eq(stats().retries, 2);
}

Test(s3_retries, server_errors_retried_until_success)
{
	cr_assert_eq(objstore_put(store, "err500/3/a", "data", 4, NULL, 0), 0,
		     "%s", objstore_error());
	cr_assert_eq(stats().requests[OBJSTORE_OP_PUT], 4);
	cr_assert_eq(stats().retries, 3);
	cr_assert_eq(stats().bytes_out, 4 * 4);
}

Test(s3_retries, connection_resets_retried_until_success)
{
	struct objstore_stat st;

	cr_assert_eq(objstore_head(store, "reset/3/a", &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.size, 11);
	cr_assert_eq(st.mtime, 1700000000);
	cr_assert_str_eq(objstore_stat_meta(&st, "name"), "a%b");
	objstore_stat_free(&st);
	/* libcurl itself resends once when a reused connection turns out
	   dead, so of the 3 resets we see 2 or 3 */
	cr_assert_geq(stats().requests[OBJSTORE_OP_HEAD], 2);
	cr_assert_eq(stats().retries, stats().requests[OBJSTORE_OP_HEAD] - 1);
}

Test(s3_retries, cut_transfer_restarts_the_sink)
{
	get_ok("truncate/2/a", "hello world");
	cr_assert_eq(stats().requests[OBJSTORE_OP_GET], 3);
	cr_assert_eq(stats().retries, 2);
}

Test(s3_retries, hang_times_out_as_transient)
{
	double start = now_s(), elapsed;
	void *data;
	size_t size;

	cr_assert_eq(objstore_get(store, "hang/a", 0, OBJSTORE_TO_END, 1 << 20,
				  &data, &size), -1);
	elapsed = now_s() - start;
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_TRANSIENT, "%s",
		     objstore_error());
	cr_assert_eq(errno, EAGAIN);
	cr_assert(strstr(objstore_error(), "GET(hang/a) failed: ") ==
		  objstore_error(), "%s", objstore_error());
	cr_assert(strstr(objstore_error(), "attempts in") != NULL, "%s",
		  objstore_error());
	cr_assert(elapsed > RETRY_BUDGET_MS / 1000.0 - 0.5 &&
		  elapsed < RETRY_BUDGET_MS / 1000.0 + 1.5,
		  "took %.2f s", elapsed);
	cr_assert_geq(stats().requests[OBJSTORE_OP_GET], 2);
	cr_assert_eq(stats().retries, stats().requests[OBJSTORE_OP_GET] - 1);
	cr_assert_eq(stats().errors, 1);
}

Test(s3_retries, forbidden_is_not_retried)
{
	double start = now_s();
	void *data;
	size_t size;

	cr_assert_eq(objstore_get(store, "forbidden/a", 0, OBJSTORE_TO_END,
				  1 << 20, &data, &size), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_AUTH);
	cr_assert_eq(errno, EACCES);
	cr_assert_str_eq(objstore_error(), "GET(forbidden/a) failed: 403 "
			 "AccessDenied: Access Denied (after 1 attempt)");
	cr_assert_eq(stats().requests[OBJSTORE_OP_GET], 1);
	cr_assert_eq(stats().retries, 0);
	cr_assert_lt(now_s() - start, 0.5);
}

Test(s3_retries, not_found_is_not_retried)
{
	struct objstore_stat st;

	cr_assert_eq(objstore_copy(store, "missing/src", "ok/dst"), 0,
		     "the fake copies anything: %s", objstore_error());
	cr_assert_eq(objstore_head(store, "missing/a", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(stats().requests[OBJSTORE_OP_HEAD], 1);
	cr_assert_eq(stats().retries, 0);
	/* deleting a missing key succeeds */
	cr_assert_eq(objstore_delete(store, "missing/a"), 0, "%s",
		     objstore_error());
}

/* The store throttles, then stops answering: the attempt that runs out
   of the budget times out early, and the error is the store's last
   answer (SlowDown), not a timeout of our own making. */
/* a PUT of key fails THROTTLED with the store's SlowDown once the retry
   budget is spent, no sooner or much later */
static void assert_put_throttled_after_budget(const char *key)
{
	double start = now_s(), elapsed;

	cr_assert_eq(objstore_put(store, key, "x", 1, NULL, 0), -1);
	elapsed = now_s() - start;
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_THROTTLED, "%s",
		     objstore_error());
	cr_assert_eq(errno, EBUSY);
	cr_assert(strstr(objstore_error(), "503 SlowDown: Please reduce") !=
		  NULL, "%s", objstore_error());
	cr_assert(elapsed > RETRY_BUDGET_MS / 1000.0 - 0.5 &&
		  elapsed < RETRY_BUDGET_MS / 1000.0 + 1.0,
		  "gave up after %.2f s", elapsed);
}

Test(s3_retries, a_last_attempt_cut_by_the_budget_reports_the_store_reply)
{
	assert_put_throttled_after_budget("slowhang/2/a");
	cr_assert(strstr(objstore_error(), "the last cut short by the retry "
			 "time budget)") != NULL, "%s", objstore_error());
	cr_assert_geq(stats().requests[OBJSTORE_OP_PUT], 4);
}

Test(s3_retries, throttling_fails_after_the_budget)
{
	assert_put_throttled_after_budget("slowdown/100000/a");
	cr_assert_geq(stats().requests[OBJSTORE_OP_PUT], 3);
	cr_assert_eq(stats().retries, stats().requests[OBJSTORE_OP_PUT] - 1);
}

Test(s3_retries, late_copy_error_is_retried)
{
	cr_assert_eq(objstore_copy(store, "ok/src", "copyerr/2/dst"), 0, "%s",
		     objstore_error());
	cr_assert_eq(stats().requests[OBJSTORE_OP_COPY], 3);
	cr_assert_eq(stats().retries, 2);
}

Test(s3_retries, range_past_end_and_ignored_range)
{
	void *data;
	size_t size;

	cr_assert_eq(objstore_get(store, "range416/a", 50, 10, 1 << 20, &data,
				  &size), 0, "%s", objstore_error());
	cr_assert_eq(size, 0);
	free(data);
	/* the fake ignores Range and sends everything: cut it ourselves */
	cr_assert_eq(objstore_get(store, "ok/a", 6, 3, 1 << 20, &data, &size),
		     0, "%s", objstore_error());
	cr_assert_eq(size, 3);
	cr_assert_str_eq(data, "wor");
	free(data);
	cr_assert_eq(objstore_get(store, "ok/a", 6, OBJSTORE_TO_END, 1 << 20,
				  &data, &size), 0, "%s", objstore_error());
	cr_assert_str_eq(data, "world");
	free(data);
}

Test(s3_retries, delete_many_falls_back_to_single_deletes)
{
	const char *keys[] = { "ok/a", "ok/b", "ok/c" };

	cr_assert_eq(objstore_delete_many(store, keys, 3), 0, "%s",
		     objstore_error());
	/* one refused POST ?delete, then one DELETE per key */
	cr_assert_eq(stats().requests[OBJSTORE_OP_DELETE], 4);
	/* and the backend remembers: no more POSTs */
	cr_assert_eq(objstore_delete_many(store, keys, 3), 0);
	cr_assert_eq(stats().requests[OBJSTORE_OP_DELETE], 7);
}

static void *get_thread(void *context)
{
	(void)context;
	for (int i = 0; i < 20; i++) {
		void *data;
		size_t size;

		if (objstore_get(store, "ok/shared", 0, OBJSTORE_TO_END, 100,
				 &data, &size) < 0 || size != 11)
			return (void *)1;
		free(data);
	}
	return NULL;
}

Test(s3_retries, parallel_requests_from_many_threads)
{
	pthread_t threads[8];
	uint64_t bytes_before = stats().bytes_in;
	void *ret;

	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&threads[i], NULL, get_thread,
					    NULL), 0);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(pthread_join(threads[i], &ret), 0);
		cr_assert_null(ret);
	}
	cr_assert_eq(stats().requests[OBJSTORE_OP_GET], 160);
	cr_assert_eq(stats().bytes_in - bytes_before, 160 * 11);
	cr_assert_eq(stats().retries, 0);
}

static void reopen_on_multibucket(void)
{
	objstore_deinit(&store);
	open_store_on("s3://multibucket");
}

Test(s3_retries, delete_many_in_batches_of_1000)
{
	enum { N = 1003 };
	static char names[N][16];
	const char *keys[N];

	reopen_on_multibucket();
	for (unsigned int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "ok/%04u", i);
		keys[i] = names[i];
	}
	cr_assert_eq(objstore_delete_many(store, keys, N), 0, "%s",
		     objstore_error());
	cr_assert_eq(stats().requests[OBJSTORE_OP_DELETE], 2);
}

Test(s3_retries, delete_many_per_key_errors)
{
	const char *ok_keys[] = { "ok/a", "gone/b", "flaky/c", "ok/d" };
	const char *bad_keys[] = { "ok/a", "denied/b" };

	reopen_on_multibucket();
	/* missing keys are fine; a retryable per-key error is retried alone */
	cr_assert_eq(objstore_delete_many(store, ok_keys, 4), 0, "%s",
		     objstore_error());
	cr_assert_eq(stats().requests[OBJSTORE_OP_DELETE], 2);
	cr_assert_eq(objstore_delete_many(store, bad_keys, 2), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_AUTH);
	cr_assert_str_eq(objstore_error(), "DELETE(denied/b) failed: "
			 "AccessDenied: AccessDenied here");
}

struct listed {
	char keys[8][32];
	unsigned int count;
};

static int listed_cb(const struct objstore_list_entry *entry, void *context)
{
	struct listed *l = context;

	if (l->count < 8)
		snprintf(l->keys[l->count], sizeof(l->keys[0]), "%s",
			 entry->key);
	l->count++;
	return 0;
}

Test(s3_retries, listing_pages_followed_to_the_end)
{
	struct listed l = { .count = 0 };

	cr_assert_eq(objstore_list(store, "pages/", NULL, listed_cb, &l), 0,
		     "%s", objstore_error());
	cr_assert_eq(l.count, 6);
	cr_assert_str_eq(l.keys[0], "pages/0-0");
	cr_assert_str_eq(l.keys[5], "pages/2-1");
	cr_assert_eq(stats().requests[OBJSTORE_OP_LIST], 1 + 3);
}

Test(s3_retries, directory_markers_are_skipped)
{
	struct listed l = { .count = 0 };

	cr_assert_eq(objstore_list(store, "marker/", NULL, listed_cb, &l), 0,
		     "%s", objstore_error());
	cr_assert_eq(l.count, 1);
	cr_assert_str_eq(l.keys[0], "marker/a");
}

Test(s3_retries, invalid_key_in_listing_is_an_error)
{
	struct listed l = { .count = 0 };

	cr_assert_eq(objstore_list(store, "badkey/", NULL, listed_cb, &l), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_str_eq(objstore_error(), "LIST(badkey/) failed: invalid key "
			 "'badkey/../x' in the listing: '.' or '..' segment "
			 "in key");
	cr_assert_eq(l.count, 0);
}

Test(s3_retries, truncated_listing_without_progress_is_an_error)
{
	struct listed l = { .count = 0 };

	cr_assert_eq(objstore_list(store, "notoken/", NULL, listed_cb, &l),
		     -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), "IsTruncated without a "
			 "NextContinuationToken") != NULL, "%s",
		  objstore_error());
	cr_assert_eq(objstore_list(store, "sametoken/", NULL, listed_cb, &l),
		     -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), "the same continuation token") !=
		  NULL, "%s", objstore_error());
	/* 1 probe + 1 + 2 requests: no endless loop */
	cr_assert_eq(stats().requests[OBJSTORE_OP_LIST], 4);
}
