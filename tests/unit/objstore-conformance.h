/* objstore-conformance.h: the behaviour every objstore backend must show,
 * as criterion tests.  Include it once from a test file that first defines:
 *
 *   #define CONF_SUITE suite_name
 *   #define CONF_EXACT_COUNTS 1    (1: one request per operation, no retries)
 *   #define CONF_LIST_MANY 210     (optional, default 2100: keys a listing
 *                                   test makes, enough for 2+ LIST pages)
 *   #define CONF_PAGE_KEYS 50      (optional, default 0: a store without
 *                                   pages; else the keys of a LIST page)
 *   static struct objstore *conf_open(void);   a fresh, empty store
 *   static void conf_close(struct objstore **store);  clean up and deinit
 */
#ifndef OBOXFS_OBJSTORE_CONFORMANCE_H
#define OBOXFS_OBJSTORE_CONFORMANCE_H

#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CONF_LIST_MANY
#define CONF_LIST_MANY 2100
#endif
#ifndef CONF_PAGE_KEYS
#define CONF_PAGE_KEYS 0
#endif
#if CONF_LIST_MANY < 200 || CONF_LIST_MANY > 99999
#error "CONF_LIST_MANY: 200..99999 (the keys are <prefix>%05u)"
#endif

static struct objstore *store;

static void conf_init(void)
{
	store = conf_open();
	cr_assert_not_null(store);
}

static void conf_fini(void)
{
	conf_close(&store);
}

TestSuite(CONF_SUITE, .init = conf_init, .fini = conf_fini, .timeout = 240);

static void conf_put_random(const char *key, size_t size, unsigned int seed,
			    unsigned char **data_r)
{
	unsigned char *data = malloc(size + 1);

	cr_assert_not_null(data);
	objtest_random_bytes(data, size, seed);
	cr_assert_eq(objstore_put(store, key, data, size, NULL, 0), 0,
		     "put: %s", objstore_error());
	*data_r = data;
}

static void conf_assert_get(const char *key, const void *expected,
			    size_t size)
{
	void *data;
	size_t got;

	cr_assert_eq(objstore_get(store, key, 0, OBJSTORE_TO_END, size + 10,
				  &data, &got), 0, "get: %s",
		     objstore_error());
	cr_assert_eq(got, size, "got %zu bytes, expected %zu", got, size);
	cr_assert(memcmp(data, expected, size) == 0, "content differs");
	cr_assert_eq(((char *)data)[size], '\0');
	free(data);
}

/* ---- put/get ---- */

static size_t conf_sizes[] = { 0, 1, 1024 * 1024 };
ParameterizedTestParameters(CONF_SUITE, put_get_roundtrip)
{
	return cr_make_param_array(size_t, conf_sizes,
				   sizeof(conf_sizes) / sizeof(conf_sizes[0]));
}
ParameterizedTest(size_t *size, CONF_SUITE, put_get_roundtrip)
{
	struct objstore_stat st;
	unsigned char *data;

	conf_put_random("rt/object", *size, 7, &data);
	conf_assert_get("rt/object", data, *size);
	cr_assert_eq(objstore_head(store, "rt/object", &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.size, *size);
	cr_assert_eq(st.meta_count, 0);
	cr_assert(st.mtime > 1600000000);
	objstore_stat_free(&st);
	free(data);
}

Test(CONF_SUITE, put_fd_get_fd)
{
	const size_t size = 3 * 1024 * 1024 + 17;
	unsigned char *data = malloc(size), *back = malloc(size + 100);
	FILE *in = tmpfile(), *out = tmpfile();
	uint64_t got;

	cr_assert(data != NULL && back != NULL && in != NULL && out != NULL);
	objtest_random_bytes(data, size, 11);
	cr_assert_eq(pwrite(fileno(in), data, size, 0), (ssize_t)size);
	/* the fd's position must not matter */
	cr_assert_eq(lseek(fileno(in), 12345, SEEK_SET), 12345);
	cr_assert_eq(objstore_put_fd(store, "fd/object", fileno(in), size,
				     NULL, 0), 0, "%s", objstore_error());
	cr_assert_eq(objstore_get_fd(store, "fd/object", 0, OBJSTORE_TO_END,
				     fileno(out), 100, &got), 0, "%s",
		     objstore_error());
	cr_assert_eq(got, size);
	cr_assert_eq(pread(fileno(out), back, size + 100, 0),
		     (ssize_t)(size + 100));
	cr_assert(memcmp(back + 100, data, size) == 0, "content differs");

	/* a source shorter than the size given is an error, not a short
	   object */
	cr_assert_eq(objstore_put_fd(store, "fd/short", fileno(in), size + 10,
				     NULL, 0), -1);
	struct objstore_stat st;
	cr_assert_eq(objstore_head(store, "fd/short", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	fclose(in);
	fclose(out);
	free(data);
	free(back);
}

struct conf_range {
	uint64_t offset, length;
	uint64_t expect_offset, expect_length;
};
static struct conf_range conf_ranges[] = {
	{ 10, 20, 10, 20 },			/* middle */
	{ 100, OBJSTORE_TO_END, 100, 400 },	/* to the end */
	{ 490, 100, 490, 10 },			/* cut at the end */
	{ 500, 1, 0, 0 },			/* at the end */
	{ 1000, 10, 0, 0 },			/* past the end */
	{ 0, 500, 0, 500 },			/* all */
};
ParameterizedTestParameters(CONF_SUITE, get_range)
{
	return cr_make_param_array(struct conf_range, conf_ranges,
				   sizeof(conf_ranges) / sizeof(conf_ranges[0]));
}
ParameterizedTest(struct conf_range *r, CONF_SUITE, get_range)
{
	unsigned char *data;
	void *got;
	size_t size;
	uint64_t fd_size;
	FILE *out = tmpfile();

	conf_put_random("range/object", 500, 3, &data);
	cr_assert_eq(objstore_get(store, "range/object", r->offset, r->length,
				  1000, &got, &size), 0, "%s",
		     objstore_error());
	cr_assert_eq(size, r->expect_length);
	cr_assert(memcmp(got, data + r->expect_offset, size) == 0);
	free(got);
	cr_assert_eq(objstore_get_fd(store, "range/object", r->offset,
				     r->length, fileno(out), 0, &fd_size), 0,
		     "%s", objstore_error());
	cr_assert_eq(fd_size, r->expect_length);
	free(data);
	fclose(out);
}

Test(CONF_SUITE, get_too_big)
{
	unsigned char *data;
	void *got;
	size_t size;

	conf_put_random("big/object", 1000, 5, &data);
	cr_assert_eq(objstore_get(store, "big/object", 0, OBJSTORE_TO_END,
				  999, &got, &size), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_TOO_BIG);
	cr_assert_eq(errno, EFBIG);
	cr_assert_null(got);
	/* a range that fits is fine */
	cr_assert_eq(objstore_get(store, "big/object", 1, OBJSTORE_TO_END,
				  999, &got, &size), 0, "%s",
		     objstore_error());
	cr_assert_eq(size, 999);
	free(got);
	free(data);
}

Test(CONF_SUITE, missing_key)
{
	struct objstore_stat st;
	void *data;
	size_t size;
	uint64_t fd_size;

	cr_assert_eq(objstore_head(store, "no/such/key", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(objstore_error(), "no/such/key") != NULL, "%s",
		  objstore_error());
	cr_assert_eq(objstore_get(store, "no/such/key", 0, OBJSTORE_TO_END,
				  100, &data, &size), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(objstore_get_fd(store, "no/such/key", 0, OBJSTORE_TO_END,
				     1, 0, &fd_size), -1);
	cr_assert_eq(errno, ENOENT);
}

/* ---- metadata ---- */

Test(CONF_SUITE, metadata_roundtrip)
{
	char long_value[OBJSTORE_META_VALUE_MAX + 1];
	struct objstore_meta meta[] = {
		{ "filename", "1700000000.M1P2.host,S=123:2,S" },
		{ "spaces", "a value  with spaces " },
		{ "percent", "100% %20 %%" },
		{ "utf8", "J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xa7" },
		{ "long", long_value },
		{ "path", "Maildir/.Sent/cur" },
	};
	const unsigned int count = sizeof(meta) / sizeof(meta[0]);
	struct objstore_stat st;

	memset(long_value, 'v', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	cr_assert_eq(objstore_put(store, "meta/object", "x", 1, meta, count),
		     0, "%s", objstore_error());
	cr_assert_eq(objstore_head(store, "meta/object", &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.size, 1);
	cr_assert_eq(st.meta_count, count);
	for (unsigned int i = 0; i < count; i++) {
		const char *value = objstore_stat_meta(&st, meta[i].name);

		cr_assert_not_null(value, "missing %s", meta[i].name);
		cr_assert_str_eq(value, meta[i].value, "metadata %s",
				 meta[i].name);
	}
	objstore_stat_free(&st);
}

Test(CONF_SUITE, overwrite)
{
	struct objstore_meta meta1 = { "version", "one" };
	struct objstore_meta meta2 = { "other", "two" };
	struct objstore_stat st;

	cr_assert_eq(objstore_put(store, "ow/key", "first content", 13,
				  &meta1, 1), 0, "%s", objstore_error());
	cr_assert_eq(objstore_put(store, "ow/key", "second", 6, &meta2, 1), 0,
		     "%s", objstore_error());
	conf_assert_get("ow/key", "second", 6);
	cr_assert_eq(objstore_head(store, "ow/key", &st), 0);
	cr_assert_eq(st.size, 6);
	cr_assert_eq(st.meta_count, 1);
	cr_assert_str_eq(objstore_stat_meta(&st, "other"), "two");
	cr_assert_null(objstore_stat_meta(&st, "version"));
	objstore_stat_free(&st);
}

/* ---- keys ---- */

/* criterion copies parameters into another process: no pointers */
struct conf_key {
	char key[128];
};
static struct conf_key conf_special_keys[] = {
	{ "sp/user@example.com/mail" },
	{ "sp/with space/and  two" },
	{ "sp/plus+sign+" },
	{ "sp/J\xc3\xbcrgen/\xe6\x97\xa5\xe6\x9c\xac" },
	{ "sp/percent%20encoded%" },
	{ "sp/query?a=b&c=d#frag" },
	{ "sp/tilde~star*paren(x)'q'\"dq\"" },
	{ "sp/.hidden/..dots/..." },
};
ParameterizedTestParameters(CONF_SUITE, special_keys)
{
	return cr_make_param_array(struct conf_key, conf_special_keys,
		sizeof(conf_special_keys) / sizeof(conf_special_keys[0]));
}
ParameterizedTest(struct conf_key *param, CONF_SUITE, special_keys)
{
	const char *const *key = &(const char *){ param->key };
	struct objtest_list list = { 0 };
	struct objstore_stat st;

	cr_assert_eq(objstore_put(store, *key, *key, strlen(*key), NULL, 0),
		     0, "%s", objstore_error());
	conf_assert_get(*key, *key, strlen(*key));
	cr_assert_eq(objstore_head(store, *key, &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.size, strlen(*key));
	objstore_stat_free(&st);
	cr_assert_eq(objtest_list(store, "sp/", NULL, &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, 1);
	cr_assert_str_eq(list.keys[0], *key);
	objtest_list_free(&list);
	cr_assert_eq(objstore_copy(store, *key, "sp2/copy"), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_delete(store, *key), 0, "%s", objstore_error());
	cr_assert_eq(objstore_head(store, *key, &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
}

/* ---- listing ---- */

Test(CONF_SUITE, list_many_sorted)
{
	struct objtest_list list = { 0 };
	const unsigned int count = CONF_LIST_MANY;
	/* a segment of 100 keys: "many/k" + 3 digits */
	const unsigned int segment = CONF_LIST_MANY / 100 - 2;
	char key[64], prefix[64];

	cr_assert_eq(objtest_put_many(store, "many/k", count, 8), 0);
	/* something around it that must not show up */
	cr_assert_eq(objstore_put(store, "man", "x", 1, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "manz/x", "x", 1, NULL, 0), 0);
	cr_assert_eq(objtest_list(store, "many/", NULL, &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, count, "listed %zu keys", list.count);
	for (unsigned int i = 0; i < count; i++) {
		objtest_many_key(key, sizeof(key), "many/k", i);
		cr_assert_str_eq(list.keys[i], key);
		cr_assert_eq(list.sizes[i], strlen(key));
		cr_assert(!list.is_prefix[i]);
	}
	objtest_list_free(&list);

	/* stopping early from the callback, on the second page or later */
	list.stop_after = count * 5 / 7;
	cr_assert_eq(objtest_list(store, "many/", NULL, &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, count * 5 / 7);
	objtest_list_free(&list);

	/* a prefix that ends inside a segment */
	snprintf(prefix, sizeof(prefix), "many/k%03u", segment);
	cr_assert_eq(objtest_list(store, prefix, NULL, &list), 0);
	cr_assert_eq(list.count, 100);
	snprintf(key, sizeof(key), "many/k%03u00", segment);
	cr_assert_str_eq(list.keys[0], key);
	objtest_list_free(&list);

	/* rolled up */
	cr_assert_eq(objtest_list(store, "", "/", &list), 0);
	cr_assert_eq(list.count, 3);
	cr_assert_str_eq(list.keys[0], "man");
	cr_assert_str_eq(list.keys[1], "many/");
	cr_assert_str_eq(list.keys[2], "manz/");
	cr_assert(!list.is_prefix[0] && list.is_prefix[1] && list.is_prefix[2]);
	objtest_list_free(&list);
}

/* objstore_list_from(): keys after start_after only, across pages and
   directories; a start_after that is not a key, or that falls between
   keys, or past the end */
Test(CONF_SUITE, list_start_after)
{
	static const char *keys[] = {
		"s/a", "s/b/c", "s/b/d/e", "s/b0", "s/c1", "s/c2",
	};
	static const struct {
		const char *start_after;
		size_t first;		/* index in keys of the first listed */
	} cases[] = {
		{ "s/", 0 },		/* before everything */
		{ "s/a", 1 },		/* an existing key: excluded */
		{ "s/b", 1 },		/* a prefix of later keys */
		{ "s/b/c", 2 },		/* inside a "directory" */
		{ "s/b/c0", 2 },	/* between keys of one directory */
		{ "s/b/z", 3 },		/* past a directory's last key */
		{ "s/c", 4 },
		{ "s/c2", 6 },		/* the last key: nothing */
		{ "s/zzz", 6 },
	};
	struct objtest_list list = { 0 };
	char key[64];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		cr_assert_eq(objstore_put(store, keys[i], "x", 1, NULL, 0),
			     0, "%s", objstore_error());
	}
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		list.start_after = cases[c].start_after;
		cr_assert_eq(objtest_list(store, "s/", NULL, &list), 0,
			     "%s: %s", cases[c].start_after, objstore_error());
		cr_assert_eq(list.count, 6 - cases[c].first,
			     "after %s: %zu keys", cases[c].start_after,
			     list.count);
		for (size_t i = 0; i < list.count; i++)
			cr_assert_str_eq(list.keys[i], keys[cases[c].first + i]);
		objtest_list_free(&list);
	}
	/* across pages: CONF_LIST_MANY keys, from about the 4/7th on (a
	   start in the middle of a page) */
	const unsigned int many = CONF_LIST_MANY, from = many * 4 / 7 + 3;

	cr_assert_eq(objtest_put_many(store, "p/k", many, 8), 0);
	objtest_many_key(key, sizeof(key), "p/k", from - 1);
	list.start_after = key;
	cr_assert_eq(objtest_list(store, "p/", NULL, &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, many - from, "listed %zu", list.count);
	objtest_many_key(key, sizeof(key), "p/k", from);
	cr_assert_str_eq(list.keys[0], key);
	objtest_list_free(&list);
	/* refused: a start_after outside the prefix */
	cr_assert_eq(objstore_list_from(store, "p/", "o/x", NULL, NULL), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
}

/* objstore_list_paced(): every key in order, whatever the first page's
   size, also from a start_after and when the callback stops inside the
   first page; a paged store asks for that many keys first (so the whole
   listing takes a request more than pages of its size alone would) */
Test(CONF_SUITE, list_paced)
{
	/* past two full pages after the first (fewer PUTs than the other
	   listing tests: this one is about where the pages end) */
	const unsigned int many = CONF_PAGE_KEYS == 0 ? 200 :
		2 * CONF_PAGE_KEYS + 20;
	const unsigned int first = 7;
	struct objtest_list list = { 0 };
	struct objstore_stats s0, s1;
	uint64_t lists;
	char key[64];

	cr_assert_eq(objtest_put_many(store, "pc/k", many, 8), 0);
	objstore_get_stats(store, &s0);
	cr_assert_eq(objtest_list_paced(store, "pc/", first, &list), 0, "%s",
		     objstore_error());
	objstore_get_stats(store, &s1);
	cr_assert_eq(list.count, many, "listed %zu", list.count);
	for (unsigned int i = 0; i < many; i++) {
		objtest_many_key(key, sizeof(key), "pc/k", i);
		cr_assert_str_eq(list.keys[i], key);
	}
	objtest_list_free(&list);
	lists = s1.requests[OBJSTORE_OP_LIST] - s0.requests[OBJSTORE_OP_LIST];
#if CONF_PAGE_KEYS == 0
	cr_assert_eq(lists, 1, "%llu LISTs", (unsigned long long)lists);
#else
	/* a first page of CONF_PAGE_KEYS would need one less (retries only
	   add) */
	const uint64_t want = 1 + (many - first + CONF_PAGE_KEYS - 1) /
		CONF_PAGE_KEYS;

	cr_assert_geq(lists, want, "%llu LISTs, want %llu",
		      (unsigned long long)lists, (unsigned long long)want);
#endif
	/* stopped inside the first page */
	list.stop_after = 3;
	cr_assert_eq(objtest_list_paced(store, "pc/", first, &list), 0);
	cr_assert_eq(list.count, 3);
	objtest_list_free(&list);
	/* from a start_after, with a first page of 1 */
	list.stop_after = 0;
	objtest_many_key(key, sizeof(key), "pc/k", many / 2);
	list.start_after = key;
	cr_assert_eq(objtest_list_paced(store, "pc/", 1, &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, many - many / 2 - 1, "listed %zu",
		     list.count);
	objtest_many_key(key, sizeof(key), "pc/k", many / 2 + 1);
	cr_assert_str_eq(list.keys[0], key);
	objtest_list_free(&list);
}

Test(CONF_SUITE, list_delimiter_order)
{
	static const char *keys[] = {
		"d/b/d/e", "d/a", "d/c0", "d/b-x", "d/b/c", "d/bb/x", "d/c",
		"d/b.txt", "e",
	};
	static const char *all[] = {
		"d/a", "d/b-x", "d/b.txt", "d/b/c", "d/b/d/e", "d/bb/x", "d/c",
		"d/c0",
	};
	static const char *rolled[] = {
		"d/a", "d/b-x", "d/b.txt", "d/b/", "d/bb/", "d/c", "d/c0",
	};
	static const char *partial[] = { "d/b-x", "d/b.txt", "d/b/", "d/bb/" };
	struct objtest_list list = { 0 };

	for (unsigned int i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		cr_assert_eq(objstore_put(store, keys[i], "0123", 4, NULL, 0),
			     0, "%s", objstore_error());
	}
	cr_assert_eq(objtest_list(store, "d/", NULL, &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, sizeof(all) / sizeof(all[0]));
	for (size_t i = 0; i < list.count; i++)
		cr_assert_str_eq(list.keys[i], all[i]);
	objtest_list_free(&list);

	cr_assert_eq(objtest_list(store, "d/", "/", &list), 0, "%s",
		     objstore_error());
	cr_assert_eq(list.count, sizeof(rolled) / sizeof(rolled[0]));
	for (size_t i = 0; i < list.count; i++) {
		cr_assert_str_eq(list.keys[i], rolled[i]);
		cr_assert_eq(list.is_prefix[i],
			     rolled[i][strlen(rolled[i]) - 1] == '/');
		if (!list.is_prefix[i])
			cr_assert_eq(list.sizes[i], 4);
	}
	objtest_list_free(&list);

	cr_assert_eq(objtest_list(store, "d/b", "/", &list), 0);
	cr_assert_eq(list.count, sizeof(partial) / sizeof(partial[0]));
	for (size_t i = 0; i < list.count; i++)
		cr_assert_str_eq(list.keys[i], partial[i]);
	objtest_list_free(&list);

	cr_assert_eq(objtest_list(store, "nothing/here/", "/", &list), 0);
	cr_assert_eq(list.count, 0);
	cr_assert_eq(objtest_list(store, "d/a/", NULL, &list), 0);
	cr_assert_eq(list.count, 0);
	objtest_list_free(&list);
}

/* ---- delete and copy ---- */

Test(CONF_SUITE, delete_key)
{
	struct objstore_stat st;
	struct objtest_list list = { 0 };

	cr_assert_eq(objstore_put(store, "del/a/b", "x", 1, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "del/keep", "y", 1, NULL, 0), 0);
	cr_assert_eq(objstore_delete(store, "del/a/b"), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_head(store, "del/a/b", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	/* deleting what is not there succeeds */
	cr_assert_eq(objstore_delete(store, "del/a/b"), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_delete(store, "never/existed"), 0, "%s",
		     objstore_error());
	/* a prefix is not an object */
	cr_assert_eq(objstore_delete(store, "del"), 0, "%s",
		     objstore_error());
	cr_assert_eq(objtest_list(store, "", "/", &list), 0);
	cr_assert_eq(list.count, 1);
	cr_assert_str_eq(list.keys[0], "del/");
	objtest_list_free(&list);
	cr_assert_eq(objtest_list(store, "", NULL, &list), 0);
	cr_assert_eq(list.count, 1);
	cr_assert_str_eq(list.keys[0], "del/keep");
	objtest_list_free(&list);
}

Test(CONF_SUITE, delete_many)
{
	/* past one S3 DeleteObjects batch (1,000 keys): two batches */
	const unsigned int count = 1010;
	const char **keys = calloc(count + 1, sizeof(*keys));
	struct objtest_list list = { 0 };
	char key[64];

	cr_assert_eq(objtest_put_many(store, "dm/", count, 8), 0);
	cr_assert_eq(objstore_put(store, "dm-keep", "k", 1, NULL, 0), 0);
	for (unsigned int i = 0; i < count; i++) {
		objtest_many_key(key, sizeof(key), "dm/", i);
		keys[i] = strdup(key);
	}
	keys[count] = "dm/missing";
	cr_assert_eq(objstore_delete_many(store, keys, count + 1), 0, "%s",
		     objstore_error());
	cr_assert_eq(objtest_list(store, "dm", NULL, &list), 0);
	cr_assert_eq(list.count, 1, "%zu keys left", list.count);
	cr_assert_str_eq(list.keys[0], "dm-keep");
	objtest_list_free(&list);
	for (unsigned int i = 0; i < count; i++)
		free((char *)keys[i]);
	free(keys);
}

Test(CONF_SUITE, copy)
{
	struct objstore_meta meta[] = {
		{ "filename", "u.123" }, { "path", "sdbox/mailboxes/INBOX" },
	};
	struct objstore_stat st;
	unsigned char *data = malloc(200000);

	objtest_random_bytes(data, 200000, 9);
	cr_assert_eq(objstore_put(store, "cp/src", data, 200000, meta, 2), 0,
		     "%s", objstore_error());
	cr_assert_eq(objstore_copy(store, "cp/src", "cp/sub/dst"), 0, "%s",
		     objstore_error());
	conf_assert_get("cp/sub/dst", data, 200000);
	conf_assert_get("cp/src", data, 200000);
	cr_assert_eq(objstore_head(store, "cp/sub/dst", &st), 0);
	cr_assert_eq(st.meta_count, 2);
	cr_assert_str_eq(objstore_stat_meta(&st, "filename"), "u.123");
	cr_assert_str_eq(objstore_stat_meta(&st, "path"),
			 "sdbox/mailboxes/INBOX");
	objstore_stat_free(&st);
	/* onto an existing key */
	cr_assert_eq(objstore_put(store, "cp/old", "old", 3, NULL, 0), 0);
	cr_assert_eq(objstore_copy(store, "cp/src", "cp/old"), 0, "%s",
		     objstore_error());
	conf_assert_get("cp/old", data, 200000);
	cr_assert_eq(objstore_copy(store, "cp/missing", "cp/x"), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_eq(objstore_head(store, "cp/x", &st), -1);
	free(data);
}

/* ---- threads ---- */

struct conf_thread {
	unsigned int index;
	int failures;
};

static void *conf_thread_main(void *context)
{
	struct conf_thread *t = context;
	char key[64], content[128];

	for (unsigned int i = 0; i < 25; i++) {
		void *data;
		size_t size;

		snprintf(key, sizeof(key), "conc/t%u/k%u", t->index, i);
		snprintf(content, sizeof(content), "thread %u item %u %s",
			 t->index, i, key);
		if (objstore_put(store, key, content, strlen(content), NULL,
				 0) < 0 ||
		    objstore_get(store, key, 0, OBJSTORE_TO_END, 1024, &data,
				 &size) < 0) {
			fprintf(stderr, "thread %u: %s\n", t->index,
				objstore_error());
			t->failures++;
			continue;
		}
		if (size != strlen(content) || memcmp(data, content, size) != 0)
			t->failures++;
		free(data);
		/* everyone reads the shared key too (written once before the
		   threads start: oboxfs never overwrites an object, and S3
		   servers such as Swift may briefly 404 a key that is being
		   overwritten concurrently) */
		if (objstore_get(store, "conc/shared", 0, OBJSTORE_TO_END, 64,
				 &data, &size) < 0) {
			fprintf(stderr, "thread %u: %s\n", t->index,
				objstore_error());
			t->failures++;
			continue;
		}
		if (size != 12 || memcmp(data, "shared-value", 12) != 0)
			t->failures++;
		free(data);
	}
	return NULL;
}

Test(CONF_SUITE, concurrent_threads)
{
	struct conf_thread t[8];
	pthread_t threads[8];
	struct objtest_list list = { 0 };

	cr_assert_eq(objstore_put(store, "conc/shared", "shared-value", 12,
				  NULL, 0), 0, "%s", objstore_error());
	for (unsigned int i = 0; i < 8; i++) {
		t[i] = (struct conf_thread){ .index = i };
		cr_assert_eq(pthread_create(&threads[i], NULL,
					    conf_thread_main, &t[i]), 0);
	}
	for (unsigned int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		cr_assert_eq(t[i].failures, 0, "thread %u had %d failures", i,
			     t[i].failures);
	}
	cr_assert_eq(objtest_list(store, "conc/", NULL, &list), 0);
	cr_assert_eq(list.count, 8 * 25 + 1);
	objtest_list_free(&list);
}

/* ---- counters ---- */

static void conf_assert_counted(const struct objstore_stats *before,
				const struct objstore_stats *after,
				enum objstore_op op)
{
	for (unsigned int i = 0; i < OBJSTORE_OP_COUNT; i++) {
		uint64_t diff = after->requests[i] - before->requests[i];

		if (i == op && CONF_EXACT_COUNTS)
			cr_assert_eq(diff, 1, "%s counted %llu times",
				     objstore_op_name(i),
				     (unsigned long long)diff);
		else if (i == op)
			cr_assert(diff >= 1, "%s not counted",
				  objstore_op_name(i));
		else if (CONF_EXACT_COUNTS)
			cr_assert_eq(diff, 0, "%s counted during %s",
				     objstore_op_name(i), objstore_op_name(op));
	}
}

Test(CONF_SUITE, request_counters)
{
	struct objstore_stats s0, s1;
	struct objstore_stat st;
	void *data;
	size_t size;

	objstore_get_stats(store, &s0);
	cr_assert_eq(objstore_put(store, "cnt/a", "0123456789", 10, NULL, 0),
		     0);
	objstore_get_stats(store, &s1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_PUT);
	cr_assert(s1.bytes_out - s0.bytes_out >= 10);

	s0 = s1;
	cr_assert_eq(objstore_get(store, "cnt/a", 0, OBJSTORE_TO_END, 100,
				  &data, &size), 0);
	free(data);
	objstore_get_stats(store, &s1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_GET);
	cr_assert(s1.bytes_in - s0.bytes_in >= 10);

	s0 = s1;
	cr_assert_eq(objstore_head(store, "cnt/a", &st), 0);
	objstore_get_stats(store, &s1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_HEAD);

	s0 = s1;
	struct objtest_list list = { 0 };
	cr_assert_eq(objtest_list(store, "cnt/", NULL, &list), 0);
	objtest_list_free(&list);
	objstore_get_stats(store, &s1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_LIST);

	s0 = s1;
	cr_assert_eq(objstore_copy(store, "cnt/a", "cnt/b"), 0);
	objstore_get_stats(store, &s1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_COPY);

	s0 = s1;
	cr_assert_eq(objstore_delete(store, "cnt/b"), 0);
	objstore_get_stats(store, &s1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_DELETE);
	cr_assert_eq(s1.errors, s0.errors);

	/* a failed operation is counted as an error */
	s0 = s1;
	cr_assert_eq(objstore_head(store, "cnt/missing", &st), -1);
	objstore_get_stats(store, &s1);
	cr_assert_eq(s1.errors, s0.errors + 1);
	conf_assert_counted(&s0, &s1, OBJSTORE_OP_HEAD);
}

#endif
