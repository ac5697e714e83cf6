/* test_s3_keys_and_metadata_on_s3.c: against the local Swift S3, keys with
 * bytes that need URI encoding ('@', space, '%', '+', UTF-8 ...) and
 * metadata values with bytes HTTP headers cannot carry round-trip exactly;
 * too-long encoded metadata fails before sending; ranges past the end give
 * 0 bytes; DeleteObjects works (Swift has it). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper-objstore.h"
#include "objstore.h"

static struct objstore *store;

static int delete_cb(const struct objstore_list_entry *entry, void *context)
{
	(void)context;
	if (objstore_delete(store, entry->key) < 0)
		return -1;
	return 0;
}

static void setup(void)
{
	struct objstore_settings set = {
		.endpoint = objtest_s3_env("ENDPOINT"),
		.region = objtest_s3_env("REGION"),
		.retry_timeout_ms = 10000,
	};
	const char *error;
	char url[256];

	setenv("AWS_ACCESS_KEY_ID", objtest_s3_env("ACCESS_KEY"), 1);
	setenv("AWS_SECRET_ACCESS_KEY", objtest_s3_env("SECRET_KEY"), 1);
	snprintf(url, sizeof(url), "s3://%s/keys-meta-%d",
		 objtest_s3_env("BUCKET"), (int)getpid());
	cr_assert_eq(objstore_init(url, &set, &store, &error), 0, "%s", error);
}

static void teardown(void)
{
	if (store != NULL)
		cr_assert_eq(objstore_list(store, "", NULL, delete_cb, NULL),
			     0, "%s", objstore_error());
	objstore_deinit(&store);
}

TestSuite(s3_keys_and_metadata_on_s3, .init = setup, .fini = teardown,
	  .timeout = 120);

struct key_case {
	char key[64];
};

static struct key_case key_cases[] = {
	{ "user@example.com/Maildir/cur/1" },
	{ "with space/and  two" },
	{ "percent%25%zz/plus+equals=amp&" },
	{ "utf8/\xc3\xbc\xe2\x82\xac\xf0\x9f\x93\xa7" },
	{ "quotes/'\"!*()$,;:~" },
	{ "brackets/[a]{b}<c>|^`#?" },
};

ParameterizedTestParameters(s3_keys_and_metadata_on_s3, odd_keys_round_trip)
{
	return cr_make_param_array(struct key_case, key_cases,
				   sizeof(key_cases) / sizeof(key_cases[0]));
}

struct found {
	const char *key;
	int count;
};

static int find_cb(const struct objstore_list_entry *entry, void *context)
{
	struct found *f = context;

	if (strcmp(entry->key, f->key) == 0)
		f->count++;
	return 0;
}

ParameterizedTest(struct key_case *c, s3_keys_and_metadata_on_s3,
		  odd_keys_round_trip)
{
	struct objstore_meta meta[] = { { "path", c->key } };
	struct found f = { .key = c->key };
	struct objstore_stat st;
	void *data;
	size_t size;

	cr_assert_eq(objstore_put(store, c->key, c->key, strlen(c->key), meta,
				  1), 0, "%s", objstore_error());
	cr_assert_eq(objstore_get(store, c->key, 0, OBJSTORE_TO_END, 4096,
				  &data, &size), 0, "%s", objstore_error());
	cr_assert_eq(size, strlen(c->key));
	cr_assert_str_eq(data, c->key);
	free(data);
	cr_assert_eq(objstore_head(store, c->key, &st), 0, "%s",
		     objstore_error());
	cr_assert_str_eq(objstore_stat_meta(&st, "path"), c->key);
	objstore_stat_free(&st);
	cr_assert_eq(objstore_list(store, "", NULL, find_cb, &f), 0, "%s",
		     objstore_error());
	cr_assert_eq(f.count, 1, "'%s' listed %d times", c->key, f.count);
	cr_assert_eq(objstore_copy(store, c->key, "copies/x"), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_head(store, "copies/x", &st), 0);
	cr_assert_str_eq(objstore_stat_meta(&st, "path"), c->key);
	objstore_stat_free(&st);
}

Test(s3_keys_and_metadata_on_s3, metadata_bytes_round_trip)
{
	static const char *values[] = {
		" leading and trailing ", "two  inner   spaces",
		"%41 is not A", "tab\tnewline\ncr\r", "\x01\x7f\x80\xff",
		"M\xc3\xa4rz/Entw\xc3\xbcrfe", "",
	};
	struct objstore_meta meta[7];
	struct objstore_stat st;
	char name[8];

	for (unsigned int i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "m%u", i);
		meta[i].name = strdup(name);
		meta[i].value = values[i];
	}
	cr_assert_eq(objstore_put(store, "meta", "x", 1, meta, 7), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_head(store, "meta", &st), 0, "%s",
		     objstore_error());
	for (unsigned int i = 0; i < 7; i++) {
		const char *got = objstore_stat_meta(&st, meta[i].name);

		if (values[i][0] == '\0' && got == NULL)
			continue;	/* servers may drop empty values */
		cr_assert_not_null(got, "%s missing", meta[i].name);
		cr_assert_str_eq(got, values[i], "%s", meta[i].name);
		free((char *)meta[i].name);
	}
	objstore_stat_free(&st);
}

Test(s3_keys_and_metadata_on_s3, too_long_encoded_metadata_refused_early)
{
	char value[200];
	struct objstore_meta meta[] = { { "bin", value } };
	struct objstore_stats before, after;

	memset(value, '\x80', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	objstore_get_stats(store, &before);
	cr_assert_eq(objstore_put(store, "toolong", "x", 1, meta, 1), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), "once encoded") != NULL, "%s",
		  objstore_error());
	objstore_get_stats(store, &after);
	cr_assert_eq(after.requests[OBJSTORE_OP_PUT],
		     before.requests[OBJSTORE_OP_PUT]);
}

Test(s3_keys_and_metadata_on_s3, range_past_end_is_empty)
{
	void *data;
	size_t size;

	cr_assert_eq(objstore_put(store, "ten", "0123456789", 10, NULL, 0), 0);
	cr_assert_eq(objstore_get(store, "ten", 10, 5, 100, &data, &size), 0,
		     "%s", objstore_error());
	cr_assert_eq(size, 0);
	free(data);
	cr_assert_eq(objstore_get(store, "ten", 8, 100, 100, &data, &size), 0);
	cr_assert_eq(size, 2);
	cr_assert_str_eq(data, "89");
	free(data);
}

static int count_cb(const struct objstore_list_entry *entry, void *context)
{
	(void)entry;
	(*(unsigned int *)context)++;
	return 0;
}

#define PUT_THREADS 4

struct put_job {
	const char *const *keys;
	unsigned int count, first;
};

static void *put_thread(void *context)
{
	struct put_job *job = context;

	for (unsigned int i = job->first; i < job->count; i += PUT_THREADS) {
		if (objstore_put(store, job->keys[i], "", 0, NULL, 0) < 0)
			return (void *)1;
	}
	return NULL;
}

Test(s3_keys_and_metadata_on_s3, delete_many_uses_delete_objects)
{
	enum { N = 120 };
	static char names[N][16];
	const char *keys[N];
	struct objstore_stats before, after;
	unsigned int count = 0;

	pthread_t threads[PUT_THREADS];
	struct put_job jobs[PUT_THREADS];
	void *ret;

	for (unsigned int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "many/%04u", i);
		keys[i] = names[i];
	}
	/* stored from several threads at once: the store is shared */
	for (unsigned int t = 0; t < PUT_THREADS; t++) {
		jobs[t] = (struct put_job){ keys, N, t };
		cr_assert_eq(pthread_create(&threads[t], NULL, put_thread,
					    &jobs[t]), 0);
	}
	for (unsigned int t = 0; t < PUT_THREADS; t++) {
		cr_assert_eq(pthread_join(threads[t], &ret), 0);
		cr_assert_null(ret, "a PUT failed");
	}
	cr_assert_eq(objstore_list(store, "many/", NULL, count_cb, &count), 0);
	cr_assert_eq(count, N);
	objstore_get_stats(store, &before);
	cr_assert_eq(objstore_delete_many(store, keys, N), 0, "%s",
		     objstore_error());
	objstore_get_stats(store, &after);
	/* one POST ?delete, no fallback (batching: test_s3_retries) */
	cr_assert_eq(after.requests[OBJSTORE_OP_DELETE] -
		     before.requests[OBJSTORE_OP_DELETE], 1);
	count = 0;
	cr_assert_eq(objstore_list(store, "many/", NULL, count_cb, &count), 0);
	cr_assert_eq(count, 0);
}
