/* test_objstore_validation.c: what objstore.c refuses before any backend sees
 * it (keys, prefixes, metadata, delimiters, fds) and URL dispatch errors. */
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *root;
static struct objstore *store;

static void setup(void)
{
	struct objstore_settings set = { .no_fsync = true };
	const char *error;
	char url[1024];

	root = objtest_mkdtemp("objstore-validation");
	cr_assert_not_null(root);
	snprintf(url, sizeof(url), "file://%s", root);
	cr_assert_eq(objstore_init(url, &set, &store, &error), 0, "%s", error);
}

static void teardown(void)
{
	objstore_deinit(&store);
	objtest_rm_rf(root);
	free(root);
}

TestSuite(objstore_validation, .init = setup, .fini = teardown);

struct key_case {
	char key[1100];
	char reason[64];
};

static struct key_case bad_keys[] = {
	{ "", "empty key" },
	{ "/abs", "empty segment" },
	{ "trailing/", "empty segment" },
	{ "a//b", "empty segment" },
	{ ".", "'.' or '..'" },
	{ "..", "'.' or '..'" },
	{ "a/./b", "'.' or '..'" },
	{ "a/../b", "'.' or '..'" },
	{ "../escape", "'.' or '..'" },
	{ "new\nline", "control character" },
	{ "tab\there", "control character" },
	{ "del\x7f", "control character" },
	{ "long", "key too long" },	/* filled in below */
};

ParameterizedTestParameters(objstore_validation, bad_key)
{
	struct key_case *c = &bad_keys[sizeof(bad_keys) / sizeof(bad_keys[0]) - 1];

	memset(c->key, 'k', OBJSTORE_KEY_MAX + 1);
	c->key[OBJSTORE_KEY_MAX + 1] = '\0';
	return cr_make_param_array(struct key_case, bad_keys,
				   sizeof(bad_keys) / sizeof(bad_keys[0]));
}

ParameterizedTest(struct key_case *c, objstore_validation, bad_key)
{
	const char *reason;
	struct objstore_stat st;
	struct objstore_stats stats;
	void *data;
	size_t size;

	cr_assert_eq(objstore_key_check(c->key, &reason), -1);
	cr_assert(strstr(reason, c->reason) != NULL, "reason: %s", reason);
	cr_assert_eq(objstore_put(store, c->key, "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(objstore_error(), "PUT(") == objstore_error(), "%s",
		  objstore_error());
	cr_assert(strstr(objstore_error(), c->reason) != NULL, "%s",
		  objstore_error());
	cr_assert_eq(objstore_get(store, c->key, 0, 1, 10, &data, &size), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_head(store, c->key, &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_delete(store, c->key), -1);
	cr_assert_eq(objstore_copy(store, "fine", c->key), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	/* nothing reached the backend, and every failure was counted */
	objstore_get_stats(store, &stats);
	for (unsigned int i = 0; i < OBJSTORE_OP_COUNT; i++)
		cr_assert_eq(stats.requests[i], 0);
	cr_assert_eq(stats.errors, 5);
}

Test(objstore_validation, good_keys)
{
	static const char *keys[] = {
		"a", "a/b/c", "...", "a/.b", "a/..b", "with space", "x@y+z%",
		"\xc3\xbc", ".oboxfs", "-dash",
	};
	const char *reason;
	char longest[OBJSTORE_KEY_MAX + 1];

	for (unsigned int i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_eq(objstore_key_check(keys[i], &reason), 0, "%s: %s",
			     keys[i], reason);
	memset(longest, 'k', OBJSTORE_KEY_MAX);
	longest[OBJSTORE_KEY_MAX] = '\0';
	for (unsigned int i = 200; i < OBJSTORE_KEY_MAX; i += 200)
		longest[i] = '/';
	cr_assert_eq(objstore_key_check(longest, &reason), 0, "%s", reason);
	cr_assert_eq(objstore_put(store, longest, "x", 1, NULL, 0), 0, "%s",
		     objstore_error());
}

static int count_cb(const struct objstore_list_entry *entry, void *context)
{
	(void)entry;
	(*(unsigned int *)context)++;
	return 0;
}

Test(objstore_validation, prefixes)
{
	static const char *good[] = { "", "a", "a/", "a/b", "a/.", "a/..", ".", "a/b/" };
	static const char *bad[] = { "/", "//", "a//", "/a", "a/./", "a/../", "../", "x\n" };
	unsigned int n = 0;

	for (unsigned int i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(objstore_list(store, good[i], NULL, count_cb, &n),
			     0, "'%s': %s", good[i], objstore_error());
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(objstore_list(store, bad[i], NULL, count_cb, &n),
			     -1, "'%s' accepted", bad[i]);
		cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
		cr_assert(strstr(objstore_error(), "invalid prefix") != NULL);
	}
	cr_assert_eq(objstore_list(store, "", ",", count_cb, &n), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), "delimiter") != NULL);
	cr_assert_eq(n, 0);
}

struct meta_case {
	char name[80];
	char value[300];
	unsigned int count;	/* pairs: the same name with a suffix */
	char reason[64];
};

static struct meta_case bad_meta[] = {
	{ "Upper", "v", 1, "not [a-z0-9-]" },
	{ "under_score", "v", 1, "not [a-z0-9-]" },
	{ "sp ace", "v", 1, "not [a-z0-9-]" },
	{ "", "v", 1, "empty or too long" },
	{ "x", "", 17, "too many" },
	{ "x", "", 2, "duplicate" },
	{ "long", "", 1, "value too long" },	/* value filled below */
	{ "n", "", 1, "empty or too long" },	/* name filled below */
	{ "t", "", 12, "too large" },		/* 12 x 200 bytes */
};

ParameterizedTestParameters(objstore_validation, bad_metadata)
{
	memset(bad_meta[6].value, 'v', OBJSTORE_META_VALUE_MAX + 1);
	memset(bad_meta[7].name, 'n', OBJSTORE_META_NAME_MAX + 1);
	memset(bad_meta[8].value, 'v', 200);
	return cr_make_param_array(struct meta_case, bad_meta,
				   sizeof(bad_meta) / sizeof(bad_meta[0]));
}

ParameterizedTest(struct meta_case *c, objstore_validation, bad_metadata)
{
	struct objstore_meta meta[20];
	char names[20][100];
	const char *reason;

	for (unsigned int i = 0; i < c->count; i++) {
		/* distinct names unless testing duplicates */
		if (c->count == 2 || c->count == 1)
			snprintf(names[i], sizeof(names[i]), "%s", c->name);
		else
			snprintf(names[i], sizeof(names[i]), "%s%u", c->name, i);
		meta[i].name = names[i];
		meta[i].value = c->value;
	}
	cr_assert_eq(objstore_meta_check(meta, c->count, &reason), -1);
	cr_assert(strstr(reason, c->reason) != NULL, "reason: %s", reason);
	cr_assert_eq(objstore_put(store, "k", "x", 1, meta, c->count), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), c->reason) != NULL, "%s",
		  objstore_error());
	struct objstore_stat st;
	cr_assert_eq(objstore_head(store, "k", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
}

Test(objstore_validation, bad_arguments)
{
	uint64_t size;

	cr_assert_eq(objstore_put(store, "k", NULL, 5, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_put(store, "k", NULL, 0, NULL, 0), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_put_fd(store, "k", -1, 5, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_get_fd(store, "k", 0, 5, -1, 0, &size), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_put(store, NULL, "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
}

struct url_case {
	char url[128];
	char error[64];
};

static struct url_case bad_urls[] = {
	{ "http://example.com/x", "invalid store URL" },
	{ "/plain/path", "invalid store URL" },
	{ "", "invalid store URL" },
	{ "FILE:///tmp", "invalid store URL" },
	{ "file:relative", "invalid store URL" },
	{ "file://relative/dir", "absolute" },
	{ "file:///nonexistent-oboxfs-dir", "nonexistent-oboxfs-dir" },
};

ParameterizedTestParameters(objstore_validation, bad_url)
{
	return cr_make_param_array(struct url_case, bad_urls,
				   sizeof(bad_urls) / sizeof(bad_urls[0]));
}

ParameterizedTest(struct url_case *c, objstore_validation, bad_url)
{
	struct objstore *s = (struct objstore *)1;
	const char *error = NULL;

	cr_assert_eq(objstore_init(c->url, NULL, &s, &error), -1);
	cr_assert_null(s);
	cr_assert_not_null(error);
	cr_assert(strstr(error, c->error) != NULL, "error: %s", error);
	cr_assert_null(strchr(error, '\n'), "error is not one line");
}

Test(objstore_validation, names)
{
	cr_assert_str_eq(objstore_error_name(OBJSTORE_ERR_NOT_FOUND),
			 "not-found");
	cr_assert_str_eq(objstore_error_name((enum objstore_error)99),
			 "unknown");
	cr_assert_str_eq(objstore_op_name(OBJSTORE_OP_COPY), "COPY");
	cr_assert_str_eq(objstore_op_name(OBJSTORE_OP_COUNT), "unknown");
}
