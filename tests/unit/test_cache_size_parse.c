/* test_cache_size_parse.c: cachedir_parse_size() accepts sizes with K/M/G/T/P
 * units and rejects bad input with a message; the statistics format as
 * Prometheus lines. */
#include "cachedir.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

TestSuite(cache_size_parse);

struct good {
	/* arrays, not pointers: criterion runs each test in a new process */
	char str[32];
	uint64_t bytes;
};

ParameterizedTestParameters(cache_size_parse, good)
{
	static struct good params[] = {
		{ "0", 0 },
		{ "1234", 1234 },
		{ "1K", 1024 },
		{ "512k", 512 * 1024 },
		{ "100M", 100ULL << 20 },
		{ "1G", 1ULL << 30 },
		{ "1GB", 1ULL << 30 },
		{ "2GiB", 2ULL << 30 },
		{ "3t", 3ULL << 40 },
		{ "1P", 1ULL << 50 },
		{ "18446744073709551615", UINT64_MAX },
		{ "16383P", 16383ULL << 50 },
	};
	return cr_make_param_array(struct good, params,
				   sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct good *p, cache_size_parse, good)
{
	const char *error = NULL;
	uint64_t bytes = 42;

	cr_assert_eq(cachedir_parse_size(p->str, &bytes, &error), 0,
		     "%s: %s", p->str, error);
	cr_assert_eq(bytes, p->bytes, "%s gave %llu", p->str,
		     (unsigned long long)bytes);
}

struct bad {
	char str[32];
	char error_part[16];
};

ParameterizedTestParameters(cache_size_parse, bad)
{
	static struct bad params[] = {
		{ "", "digit" },
		{ "G", "digit" },
		{ "-1G", "digit" },
		{ " 1G", "digit" },
		{ "1X", "unit" },
		{ "1.5G", "unit" },
		{ "1GG", "trailing" },
		{ "1G ", "trailing" },
		{ "1Gb2", "trailing" },
		{ "18446744073709551616", "too large" },
		{ "99999999999999999999999", "too large" },
		{ "16384P", "too large" },
		{ "17179869184G", "too large" },
	};
	return cr_make_param_array(struct bad, params,
				   sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct bad *p, cache_size_parse, bad)
{
	const char *error = NULL;
	uint64_t bytes = 42;

	cr_assert_eq(cachedir_parse_size(p->str, &bytes, &error), -1,
		     "\"%s\" was accepted", p->str);
	cr_assert_not_null(error);
	cr_assert(strstr(error, p->error_part) != NULL,
		  "\"%s\": error \"%s\" lacks \"%s\"", p->str, error,
		  p->error_part);
	cr_assert_eq(bytes, 42, "output changed on failure");
}

Test(cache_size_parse, null_refused)
{
	const char *error = NULL;
	uint64_t bytes;

	cr_assert_eq(cachedir_parse_size(NULL, &bytes, &error), -1);
	cr_assert_not_null(error);
}

Test(cache_size_parse, stats_prometheus_lines)
{
	struct cachedir_stats st = {
		.entries = 3, .bytes = 1234, .cap = 1 << 20, .reserved = 7,
		.hits = 10, .misses = 4, .evictions = 2, .fetch_errors = 1,
		.memory = 999,
	};
	char buf[1024], small[40];
	size_t len;

	len = cachedir_stats_format(&st, buf, sizeof(buf));
	cr_assert_eq(len, strlen(buf));
	cr_assert(strstr(buf, "oboxfs_mailcache_bytes 1234\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "oboxfs_mailcache_entries 3\n") != NULL);
	cr_assert(strstr(buf, "oboxfs_mailcache_cap_bytes 1048576\n") != NULL);
	cr_assert(strstr(buf, "oboxfs_mailcache_hits_total 10\n") != NULL);
	cr_assert(strstr(buf, "oboxfs_mailcache_misses_total 4\n") != NULL);
	cr_assert(strstr(buf, "oboxfs_mailcache_evictions_total 2\n") != NULL);
	cr_assert(strstr(buf, "oboxfs_mailcache_fetch_errors_total 1\n") != NULL);
	cr_assert(strstr(buf, "oboxfs_mailcache_memory_bytes 999\n") != NULL);
	/* too small a buffer: whole lines only, still NUL-terminated */
	len = cachedir_stats_format(&st, small, sizeof(small));
	cr_assert_eq(len, strlen(small));
	cr_assert_eq(strcmp(small, "oboxfs_mailcache_entries 3\n"), 0, "%s", small);
}
