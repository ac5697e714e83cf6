/* test_bundle_names.c: bundle object names: formatting and parsing (the
 * seed's example), refusing malformed names from a listing, keys, the
 * name a bundle's header implies, and picking the newest base and its
 * diffs. */
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#define SEED_BASE "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22"
#define SEED_DIFF SEED_BASE "-d88ff1001d4bf753a1b800001accfe22"

Test(bundle_names, seed_example_roundtrips)
{
	struct bundle_name name;
	char buf[BUNDLE_NAME_DIFF_LEN + 1];
	const char *error;

	cr_assert_eq(strlen(SEED_BASE), BUNDLE_NAME_BASE_LEN);
	cr_assert_eq(strlen(SEED_DIFF), BUNDLE_NAME_DIFF_LEN);
	cr_assert_eq(bundle_name_parse(SEED_BASE, &name, &error), 0, "%s",
		     error);
	cr_assert(!name.is_diff);
	cr_assert_eq(name.secs, 0x53f74dc2);
	cr_assert_eq(name.usecs, 0x0fbcf);
	cr_assert_eq(name.base_id[0], 0xc9);
	cr_assert_eq(name.base_id[15], 0x22);
	bundle_name_format(&name, buf, sizeof(buf));
	cr_assert_str_eq(buf, SEED_BASE);

	cr_assert_eq(bundle_name_parse(SEED_DIFF, &name, &error), 0, "%s",
		     error);
	cr_assert(name.is_diff);
	cr_assert_eq(name.diff_id[0], 0xd8);
	bundle_name_format(&name, buf, sizeof(buf));
	cr_assert_str_eq(buf, SEED_DIFF);
}

struct bad_name {
	char name[120];
};

ParameterizedTestParameters(bundle_names, malformed_names_are_refused)
{
	static struct bad_name cases[] = {
		{ "" },
		{ "bundle." },
		{ "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe2" },
		{ "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe222" },
		{ "bundle.53F74DC2.0fbcf.c96d802b5d4df75307bb00001accfe22" },
		{ "bundle.53f74dc2.0fbcf.C96D802B5D4DF75307BB00001ACCFE22" },
		{ "bundle.53f74dc2.f4240.c96d802b5d4df75307bb00001accfe22" },
		{ "bundle.53f74dc2-0fbcf.c96d802b5d4df75307bb00001accfe22" },
		{ "bundle.53f74dc2.0fbcf-c96d802b5d4df75307bb00001accfe22" },
		{ "bundlX.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22" },
		{ "bundle.53f74dcg.0fbcf.c96d802b5d4df75307bb00001accfe22" },
		{ "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22-" },
		{ "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22"
		  ".d88ff1001d4bf753a1b800001accfe22" },
		{ "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22"
		  "-d88ff1001d4bf753a1b800001accfe2z" },
		{ "bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22"
		  "-d88ff1001d4bf753a1b800001accfe22x" },
		{ "bundle.53f74dc2.0fbcf.../../../../d4df75307bb00001accfe22" },
		{ "bundle. 3f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22" },
	};

	return cr_make_param_array(struct bad_name, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_name *c, bundle_names,
		  malformed_names_are_refused)
{
	struct bundle_name name;
	const char *error = NULL;

	cr_assert_eq(bundle_name_parse(c->name, &name, &error), -1,
		     "'%s' accepted", c->name);
	cr_assert_not_null(strstr(error, "invalid"), "%s", error);
}

Test(bundle_names, key_build)
{
	struct bundle_name name;
	char buf[300], small[60];
	const char *error;

	cr_assert_eq(bundle_name_parse(SEED_DIFF, &name, &error), 0);
	cr_assert_eq(bundle_key_build("b5/899/u@example.com/mailboxes/"
				      "00d7d12ea08a3153175e0000dfbea952",
				      &name, buf, sizeof(buf), &error), 0);
	cr_assert_str_eq(buf, "b5/899/u@example.com/mailboxes/"
			 "00d7d12ea08a3153175e0000dfbea952/idx/" SEED_DIFF);
	cr_assert_eq(bundle_key_build("b5/899/u", &name, small, sizeof(small),
				      &error), -1);
}

Test(bundle_names, name_from_header)
{
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_info info = { .secs = 0x53f74dc2, .usecs = 0x0fbcf,
		.id = { 0xc9, 0x6d, 0x80, 0x2b, 0x5d, 0x4d, 0xf7, 0x53,
			0x07, 0xbb, 0x00, 0x00, 0x1a, 0xcc, 0xfe, 0x22 } };
	struct bundle_name name;
	struct bundle *bundle;
	unsigned char *data;
	size_t size;
	const char *error;
	char buf[BUNDLE_NAME_DIFF_LEN + 1];

	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0);
	bundle_name_from_info(&bundle->info, &name);
	bundle_name_format(&name, buf, sizeof(buf));
	cr_assert_str_eq(buf, SEED_BASE);
	free(data);
	bundle_free(&bundle);

	/* a diff's name is its base's name plus its own id */
	struct bundle_info dinfo = { .secs = 5, .usecs = 6, .seq = 1,
		.id = { 0xd8, 0x8f } };
	cr_assert_eq(bundle_diff(tree, tree, &dinfo, &data, &size, &error), 0,
		     "%s", error);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0);
	bundle_name_from_info(&bundle->info, &name);
	bundle_name_format(&name, buf, sizeof(buf));
	cr_assert_str_eq(buf, SEED_BASE "-d88f0000000000000000000000000000");
	free(data);
	bundle_free(&bundle);
	bundle_tree_free(&tree);
}

Test(bundle_names, select_newest_base_and_its_diffs)
{
	static const char *listing[] = {
		"bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22",
		"bundle.53f74dc3.00000.00000000000000000000000000000001-"
		"ffffffffffffffffffffffffffffffff",
		"bundle.53f74dc3.00000.00000000000000000000000000000001",
		"bundle.53f74dc2.0fbcf.c96d802b5d4df75307bb00001accfe22-"
		"00000000000000000000000000000009",
		"bundle.53f74dc3.00000.00000000000000000000000000000001-"
		"0000000000000000000000000000000a",
		"bundle.53f74dc3.00000.00000000000000000000000000000000",
		/* a diff whose base is gone: ignored */
		"bundle.53f74dc4.00000.00000000000000000000000000000000-"
		"0000000000000000000000000000000a",
	};
	struct bundle_name names[7];
	size_t diffs[7], count;
	long base;
	const char *error;

	for (size_t i = 0; i < 7; i++)
		cr_assert_eq(bundle_name_parse(listing[i], &names[i], &error),
			     0, "%s", listing[i]);
	bundle_names_select(names, 7, &base, diffs, &count);
	cr_assert_eq(base, 2, "newest time, then the larger id");
	cr_assert_eq(count, 2);
	cr_assert_eq(diffs[0], 4);
	cr_assert_eq(diffs[1], 1);

	bundle_names_select(names, 0, &base, diffs, &count);
	cr_assert_eq(base, -1);
	cr_assert_eq(count, 0);
	bundle_names_select(&names[6], 1, &base, diffs, &count);
	cr_assert_eq(base, -1, "only a diff");
}

Test(bundle_names, current_diff_is_the_highest_seq)
{
	struct bundle_info a = { .kind = BUNDLE_KIND_DIFF, .seq = 2,
				 .secs = 5 };
	struct bundle_info b = { .kind = BUNDLE_KIND_DIFF, .seq = 3,
				 .secs = 1 };

	cr_assert_lt(bundle_diff_info_cmp(&a, &b), 0, "seq first");
	b.seq = 2;
	cr_assert_gt(bundle_diff_info_cmp(&a, &b), 0, "then time");
	b.secs = 5;
	b.id[0] = 1;
	cr_assert_lt(bundle_diff_info_cmp(&a, &b), 0, "then id");
	cr_assert_eq(bundle_diff_info_cmp(&a, &a), 0);
}

Test(bundle_names, generated_ids_differ)
{
	unsigned char a[BUNDLE_ID_SIZE], b[BUNDLE_ID_SIZE];

	cr_assert_eq(bundle_id_generate(a), 0);
	cr_assert_eq(bundle_id_generate(b), 0);
	cr_assert_neq(memcmp(a, b, BUNDLE_ID_SIZE), 0);
}
