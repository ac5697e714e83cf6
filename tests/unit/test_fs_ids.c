/* test_fs_ids.c: OID/GUID generation, the user hash (h1/h2) and mail key
 * naming. */
#include "ids.h"
#include "keys.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static void init(void) {}
static void fini(void) {}
TestSuite(fs_ids, .init = init, .fini = fini);

Test(fs_ids, generate_format_and_uniqueness)
{
	char ids[200][IDS_HEX_LEN + 1];

	for (unsigned int i = 0; i < 200; i++) {
		cr_assert_eq(ids_generate(ids[i]), 0);
		cr_assert_eq(strlen(ids[i]), IDS_HEX_LEN);
		cr_assert(ids_is_hex_id(ids[i]), "%s", ids[i]);
		for (unsigned int j = 0; j < i; j++)
			cr_assert_str_neq(ids[i], ids[j]);
	}
}

/* mail oids: unique, and in the byte order they were made in, starting
   with the time prefix of the moment they were made */
Test(fs_ids, timed_ids_sort_in_creation_order)
{
	char ids[300][IDS_HEX_LEN + 1], before[IDS_TIME_HEX_LEN + 1];
	char after[IDS_TIME_HEX_LEN + 1];
	struct timeval tv;

	gettimeofday(&tv, NULL);
	ids_time_prefix((uint32_t)tv.tv_sec, (uint32_t)tv.tv_usec, before);
	for (unsigned int i = 0; i < 300; i++) {
		cr_assert_eq(ids_generate_timed(ids[i]), 0);
		cr_assert(ids_is_hex_id(ids[i]), "%s", ids[i]);
		if (i % 100 == 99)
			usleep(1100);	/* a later microsecond for sure */
	}
	gettimeofday(&tv, NULL);
	ids_time_prefix((uint32_t)tv.tv_sec, (uint32_t)tv.tv_usec, after);
	for (unsigned int i = 0; i < 300; i++) {
		cr_assert_geq(strncmp(ids[i], before, IDS_TIME_HEX_LEN), 0,
			      "%s made before %s", ids[i], before);
		cr_assert_leq(strncmp(ids[i], after, IDS_TIME_HEX_LEN), 0,
			      "%s made after %s", ids[i], after);
		for (unsigned int j = 0; j < i; j++)
			cr_assert_str_neq(ids[i], ids[j]);
	}
	/* a batch made a millisecond later sorts after the first batch */
	cr_assert_gt(strcmp(ids[100], ids[99]), 0);
	cr_assert_gt(strcmp(ids[200], ids[199]), 0);
	ids_time_prefix(0x6930b1c2, 0x0fbcf, before);
	cr_assert_str_eq(before, "6930b1c20fbcf");
}

/* the ids' clock never goes back, and once raised (a loaded bundle's
   watermark from a machine whose clock is ahead) ids sort after that */
Test(fs_ids, clock_is_monotonic_and_raised_by_watermarks)
{
	char id[IDS_HEX_LEN + 1], prefix[IDS_TIME_HEX_LEN + 1];
	uint64_t prev = ids_clock_us(), ahead;

	for (unsigned int i = 0; i < 10000; i++) {
		uint64_t now = ids_clock_us();

		cr_assert_gt(now, prev);
		prev = now;
	}
	ahead = prev + 3600ULL * 1000000;	/* an hour ahead */
	ids_clock_raise(ahead);
	ids_clock_raise(ahead - 5);		/* never lowers it */
	cr_assert_gt(ids_clock_us(), ahead);
	cr_assert_eq(ids_generate_timed(id), 0);
	ids_time_prefix((uint32_t)(ahead / 1000000),
			(uint32_t)(ahead % 1000000), prefix);
	cr_assert_gt(strncmp(id, prefix, IDS_TIME_HEX_LEN), 0,
		     "%s made after the clock was raised to %s", id, prefix);
	cr_assert_eq(ids_us(7, 999999), 7999999);
}

/* arrays, not pointers: criterion runs each case in a new process */
struct hex_case {
	char s[40];
	bool ok;
};

struct hash_case {
	char user[32], h1[3], h2[4];
};

ParameterizedTestParameters(fs_ids, hex_ids)
{
	static struct hex_case cases[] = {
		{ "0123456789abcdef0123456789abcdef", true },
		{ "0123456789ABCDEF0123456789abcdef", false },
		{ "0123456789abcdef0123456789abcde", false },
		{ "0123456789abcdef0123456789abcdef0", false },
		{ "0123456789abcdeg0123456789abcdef", false },
		{ "", false },
	};
	return cr_make_param_array(struct hex_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct hex_case *c, fs_ids, hex_ids)
{
	cr_assert_eq(ids_is_hex_id(c->s), c->ok, "%s", c->s);
}

/* h1/h2 are the first 5 hex digits of SHA-256(user), split 2/3 */
ParameterizedTestParameters(fs_ids, user_hash)
{
	static struct hash_case cases[] = {
		{ "user@example.com", "b4", "c9a" },
		{ "user1@example.com", "b3", "6a8" },
		{ "u1", "bb", "820" },
	};
	return cr_make_param_array(struct hash_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct hash_case *c, fs_ids, user_hash)
{
	char h1[3], h2[4];

	ids_user_hash(c->user, h1, h2);
	cr_assert_str_eq(h1, c->h1);
	cr_assert_str_eq(h2, c->h2);
}

Test(fs_ids, mail_key)
{
	char key[OBJSTORE_KEY_MAX + 1];
	const char *guid = "00d7d12ea08a3153175e0000dfbea952";
	const char *oid = "d88ff1001d4bf753a1b800001accfe22";

	cr_assert_eq(keys_mail_key("user@example.com", guid, oid, key,
				  sizeof(key)), 0);
	cr_assert_str_eq(key, "b4/c9a/user@example.com/mailboxes/"
			 "00d7d12ea08a3153175e0000dfbea952/"
			 "d88ff1001d4bf753a1b800001accfe22");
	cr_assert_str_eq(keys_key_oid(key), oid);
}

Test(fs_ids, mail_key_too_long)
{
	char key[64];

	errno = 0;
	cr_assert_eq(keys_mail_key("user@example.com",
				  "00d7d12ea08a3153175e0000dfbea952",
				  "d88ff1001d4bf753a1b800001accfe22",
				  key, sizeof(key)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
}

Test(fs_ids, mail_key_invalid_user)
{
	char key[OBJSTORE_KEY_MAX + 1];

	errno = 0;
	cr_assert_eq(keys_mail_key("..", "00d7d12ea08a3153175e0000dfbea952",
				  "d88ff1001d4bf753a1b800001accfe22",
				  key, sizeof(key)), -1);
	cr_assert_eq(errno, EINVAL);
}

Test(fs_ids, key_oid_rejects_non_ids)
{
	cr_assert_null(keys_key_oid("b4/c9a/u/mailboxes/g/notanid"));
	cr_assert_null(keys_key_oid(""));
	cr_assert_str_eq(keys_key_oid("d88ff1001d4bf753a1b800001accfe22"),
			 "d88ff1001d4bf753a1b800001accfe22");
}
