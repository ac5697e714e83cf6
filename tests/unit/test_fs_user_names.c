/* test_fs_user_names.c: which top-level (user) directory names are refused
 * because they could escape or break their place in the store. */
#include "mailpath.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

/* arrays, not pointers: criterion runs each case in a new process */
struct name_case {
	char name[32];
	bool valid;
};

static char long_ok[256], long_bad[257];

static void init(void)
{
	memset(long_ok, 'a', 255);
	long_ok[255] = '\0';
	memset(long_bad, 'a', 256);
	long_bad[256] = '\0';
}
static void fini(void) {}
TestSuite(fs_user_names, .init = init, .fini = fini);

ParameterizedTestParameters(fs_user_names, check)
{
	static struct name_case cases[] = {
		{ "user@example.com", true },
		{ "u", true },
		{ "first.last+tag@sub.example.org", true },
		{ "Ünïcode@example.com", true },
		{ "a b", true },
		{ "", false },
		{ ".", false },
		{ "..", false },
		{ ".hidden", false },
		{ MAILPATH_STATS_NAME, false },
		{ "a/b", false },
		{ "../etc", false },
		{ "tab\there", false },
		{ "nl\n", false },
		{ "del\x7f", false },
		{ "\x01", false },
	};
	return cr_make_param_array(struct name_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct name_case *c, fs_user_names, check)
{
	const char *error = NULL;
	int ret = mailpath_user_name_check(c->name, &error);

	if (c->valid)
		cr_assert_eq(ret, 0, "%s refused: %s", c->name, error);
	else {
		cr_assert_eq(ret, -1, "%s accepted", c->name);
		cr_assert_not_null(error);
	}
}

Test(fs_user_names, length_limit)
{
	const char *error;

	cr_assert_eq(mailpath_user_name_check(long_ok, &error), 0);
	cr_assert_eq(mailpath_user_name_check(long_bad, &error), -1);
}
