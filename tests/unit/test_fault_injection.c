/* test_fault_injection.c: the fault-injection layer (settings->fault): spec
 * parsing, which operations fail and how, fail_after, rate with a seed,
 * latency, failures after the operation, and plain pass-through. */
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *root;
static char url[1024];

static void setup(void)
{
	root = objtest_mkdtemp("objstore-fault");
	cr_assert_not_null(root);
	snprintf(url, sizeof(url), "file://%s", root);
}

static void teardown(void)
{
	objtest_rm_rf(root);
	free(root);
}

TestSuite(fault_injection, .init = setup, .fini = teardown);

static struct objstore *open_fault(const char *spec)
{
	struct objstore_settings set = { .no_fsync = true, .fault = spec };
	struct objstore *store;
	const char *error;

	cr_assert_eq(objstore_init(url, &set, &store, &error), 0,
		     "init(%s): %s", spec, error);
	return store;
}

struct spec_case {
	char spec[128];
	char error[64];
};

static struct spec_case bad_specs[] = {
	{ "ops=put;bogus=1", "unknown key 'bogus'" },
	{ "ops=put,frobnicate", "bad value for 'ops'" },
	{ "ops=", "bad value for 'ops'" },
	{ "ops=+", "bad value for 'ops'" },
	{ "ops=put+frobnicate", "bad value for 'ops'" },
	{ "error=fatal", "bad value for 'error'" },
	{ "rate=1.5", "bad value for 'rate'" },
	{ "rate=-0.1", "bad value for 'rate'" },
	{ "rate=abc", "bad value for 'rate'" },
	{ "rate=nan", "bad value for 'rate'" },
	{ "latency_ms=-5", "bad value for 'latency_ms'" },
	{ "latency_ms=10x", "bad value for 'latency_ms'" },
	{ "fail_after=", "bad value for 'fail_after'" },
	{ "seed=0x10", "bad value for 'seed'" },
	{ "when=during", "bad value for 'when'" },
	{ "ops=put;rate", "is not key=value" },
};

ParameterizedTestParameters(fault_injection, bad_spec)
{
	return cr_make_param_array(struct spec_case, bad_specs,
				   sizeof(bad_specs) / sizeof(bad_specs[0]));
}

ParameterizedTest(struct spec_case *c, fault_injection, bad_spec)
{
	struct objstore_settings set = { .no_fsync = true, .fault = c->spec };
	struct objstore *store = NULL;
	const char *error;

	cr_assert_eq(objstore_init(url, &set, &store, &error), -1,
		     "accepted %s", c->spec);
	cr_assert_null(store);
	cr_assert(strstr(error, c->error) != NULL, "error: %s", error);
	cr_assert(strstr(error, "fault spec") != NULL, "error: %s", error);
}

struct error_case {
	char name[16];
	enum objstore_error error;
	int err;
};

static struct error_case error_cases[] = {
	{ "transient", OBJSTORE_ERR_TRANSIENT, EAGAIN },
	{ "throttled", OBJSTORE_ERR_THROTTLED, EBUSY },
	{ "auth", OBJSTORE_ERR_AUTH, EACCES },
	{ "permanent", OBJSTORE_ERR_PERMANENT, EIO },
	{ "notfound", OBJSTORE_ERR_NOT_FOUND, ENOENT },
};

ParameterizedTestParameters(fault_injection, every_op_fails)
{
	return cr_make_param_array(struct error_case, error_cases,
				   sizeof(error_cases) / sizeof(error_cases[0]));
}

static int never_cb(const struct objstore_list_entry *entry, void *context)
{
	(void)entry; (void)context;
	cr_assert_fail("listing callback called");
	return 0;
}

ParameterizedTest(struct error_case *c, fault_injection, every_op_fails)
{
	char spec[64];
	struct objstore *store;
	struct objstore_stat st;
	struct objstore_stats stats;
	const char *keys[] = { "a", "b" };
	void *data;
	size_t size;

	snprintf(spec, sizeof(spec), "ops=all;error=%s;seed=1", c->name);
	store = open_fault(spec);
#define CHECK_FAILED(call, opname) do { \
	cr_assert_eq((call), -1); \
	cr_assert_eq(objstore_errcode(), c->error); \
	cr_assert_eq(errno, c->err); \
	cr_assert(strstr(objstore_error(), "injected") != NULL, "%s", \
		  objstore_error()); \
	cr_assert(strstr(objstore_error(), opname "(") == objstore_error(), \
		  "%s", objstore_error()); \
	} while (0)
	CHECK_FAILED(objstore_put(store, "a", "x", 1, NULL, 0), "PUT");
	CHECK_FAILED(objstore_get(store, "a", 0, OBJSTORE_TO_END, 10, &data,
				  &size), "GET");
	CHECK_FAILED(objstore_head(store, "a", &st), "HEAD");
	CHECK_FAILED(objstore_list(store, "", NULL, never_cb, NULL), "LIST");
	CHECK_FAILED(objstore_delete(store, "a"), "DELETE");
	CHECK_FAILED(objstore_delete_many(store, keys, 2), "DELETE");
	CHECK_FAILED(objstore_copy(store, "a", "b"), "COPY");
	/* nothing reached the store below */
	objstore_get_stats(store, &stats);
	for (unsigned int i = 0; i < OBJSTORE_OP_COUNT; i++)
		cr_assert_eq(stats.requests[i], 0);
	cr_assert_eq(stats.errors, 7);
	objstore_deinit(&store);
}

/* spec selects put and copy, failing permanently */
static void check_only_put_copy(const char *spec)
{
	struct objstore *store = open_fault(spec);
	struct objstore *plain;
	struct objstore_settings set = { .no_fsync = true };
	const char *error;
	void *data;
	size_t size;

	cr_assert_eq(objstore_init(url, &set, &plain, &error), 0, "%s", error);
	cr_assert_eq(objstore_put(plain, "k", "value", 5, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "k2", "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_PERMANENT);
	cr_assert_eq(objstore_copy(store, "k", "k3"), -1);
	cr_assert_eq(objstore_get(store, "k", 0, OBJSTORE_TO_END, 10, &data,
				  &size), 0, "%s", objstore_error());
	cr_assert_eq(size, 5);
	cr_assert(memcmp(data, "value", 5) == 0);
	free(data);
	cr_assert_eq(objstore_delete(store, "k"), 0, "%s", objstore_error());
	/* the real errors of the store below still come through */
	struct objstore_stat st;
	cr_assert_eq(objstore_head(store, "k", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_null(strstr(objstore_error(), "injected"));
	objstore_deinit(&plain);
	objstore_deinit(&store);
}

Test(fault_injection, only_selected_ops)
{
	check_only_put_copy("ops=put,copy;error=permanent");
}

/* the form a mount option can carry (no comma) */
Test(fault_injection, only_selected_ops_plus_separated)
{
	check_only_put_copy("ops=put+copy;error=permanent");
}

Test(fault_injection, fail_after)
{
	struct objstore *store = open_fault("ops=put;fail_after=3");
	char key[16];

	for (unsigned int i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		int ret = objstore_put(store, key, "x", 1, NULL, 0);

		cr_assert_eq(ret, i < 3 ? 0 : -1, "put %u returned %d", i, ret);
	}
	/* other ops are not counted towards fail_after and not failed */
	struct objstore_stat st;
	cr_assert_eq(objstore_head(store, "k2", &st), 0);
	objstore_stat_free(&st);
	cr_assert_eq(objstore_head(store, "k3", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	objstore_deinit(&store);
}

/* the failure pattern of 200 heads with the given spec, as a bit string */
static void failure_pattern(const char *spec, char pattern[201])
{
	struct objstore *store = open_fault(spec);
	struct objstore_stat st;

	for (unsigned int i = 0; i < 200; i++) {
		if (objstore_head(store, "missing", &st) == 0)
			cr_assert_fail("head succeeded");
		pattern[i] = objstore_errcode() == OBJSTORE_ERR_TRANSIENT ?
			'1' : '0';
	}
	pattern[200] = '\0';
	objstore_deinit(&store);
}

Test(fault_injection, rate_with_seed_is_deterministic)
{
	char p1[201], p2[201], p3[201];
	unsigned int fails = 0;

	failure_pattern("ops=head;rate=0.3;seed=42", p1);
	failure_pattern("ops=head;rate=0.3;seed=42", p2);
	failure_pattern("ops=head;rate=0.3;seed=43", p3);
	cr_assert_str_eq(p1, p2);
	cr_assert_str_neq(p1, p3);
	for (unsigned int i = 0; i < 200; i++)
		fails += p1[i] == '1';
	/* 0.3 * 200 = 60; far outside this would mean a broken rate */
	cr_assert(fails >= 35 && fails <= 85, "%u failures", fails);
	failure_pattern("ops=head;rate=0;seed=42", p1);
	cr_assert_null(strchr(p1, '1'));
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

Test(fault_injection, latency)
{
	struct objstore *store = open_fault("ops=put;rate=0;latency_ms=50");
	struct objstore_stat st;
	double start;

	start = now_ms();
	cr_assert_eq(objstore_put(store, "k", "x", 1, NULL, 0), 0, "%s",
		     objstore_error());
	cr_assert(now_ms() - start >= 50, "put took %f ms",
		  now_ms() - start);
	start = now_ms();
	cr_assert_eq(objstore_head(store, "k", &st), 0);
	objstore_stat_free(&st);
	cr_assert(now_ms() - start < 50, "head was delayed");
	objstore_deinit(&store);
}

Test(fault_injection, fail_after_the_operation)
{
	struct objstore *store = open_fault("ops=put;when=after");
	struct objstore_stat st;
	struct objstore_stats stats;

	cr_assert_eq(objstore_put(store, "k", "data", 4, NULL, 0), -1);
	cr_assert(strstr(objstore_error(), "injected") != NULL);
	/* ... but the object was stored: the reply got lost */
	cr_assert_eq(objstore_head(store, "k", &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.size, 4);
	objstore_stat_free(&st);
	objstore_get_stats(store, &stats);
	cr_assert_eq(stats.requests[OBJSTORE_OP_PUT], 1);
	objstore_deinit(&store);
}

Test(fault_injection, pass_through)
{
	struct objstore *store = open_fault("ops=all;rate=0");
	struct objstore_meta meta = { "name", "value" };
	struct objtest_list list = { 0 };
	struct objstore_stat st;
	void *data;
	size_t size;

	cr_assert_eq(objstore_put(store, "d/k", "0123456789", 10, &meta, 1),
		     0);
	cr_assert_eq(objstore_get(store, "d/k", 2, 3, 10, &data, &size), 0);
	cr_assert_eq(size, 3);
	cr_assert(memcmp(data, "234", 3) == 0);
	free(data);
	cr_assert_eq(objstore_copy(store, "d/k", "d/k2"), 0);
	cr_assert_eq(objstore_head(store, "d/k2", &st), 0);
	cr_assert_str_eq(objstore_stat_meta(&st, "name"), "value");
	objstore_stat_free(&st);
	cr_assert_eq(objtest_list(store, "", "/", &list), 0);
	cr_assert_eq(list.count, 1);
	cr_assert_str_eq(list.keys[0], "d/");
	objtest_list_free(&list);
	const char *keys[] = { "d/k", "d/k2" };
	cr_assert_eq(objstore_delete_many(store, keys, 2), 0);
	cr_assert_eq(objtest_list(store, "", NULL, &list), 0);
	cr_assert_eq(list.count, 0);
	objtest_list_free(&list);
	objstore_deinit(&store);
}
