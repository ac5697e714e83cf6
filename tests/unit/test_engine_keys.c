/* test_engine_keys.c: the store key layout (engine/keys.c): building the
 * prefixes and mail keys, and parsing keys below a user prefix. */
#include "ids.h"
#include "keys.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define USER "user@example.com"
#define G "00d7d12ea08a3153175e0000dfbea952"
#define O "d88ff1001d4bf753a1b800001accfe22"
#define B "bundle.1700000000.000001." O

static void user_prefix(char buf[KEYS_PREFIX_MAX])
{
	cr_assert_eq(keys_user_prefix(USER, buf, KEYS_PREFIX_MAX), 0);
}

Test(engine_keys, prefixes)
{
	char up[KEYS_PREFIX_MAX], buf[KEYS_PREFIX_MAX], h1[3], h2[4], want[400];

	ids_user_hash(USER, h1, h2);
	user_prefix(up);
	snprintf(want, sizeof(want), "%s/%s/%s", h1, h2, USER);
	cr_assert_str_eq(up, want);

	cr_assert_eq(keys_root_prefix(up, "", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, up);
	cr_assert_eq(keys_root_prefix(up, G, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/mailboxes/%s", up, G);
	cr_assert_str_eq(buf, want);

	cr_assert_eq(keys_root_list_prefix(up, "", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/", up);
	cr_assert_str_eq(buf, want);
	cr_assert_eq(keys_root_list_prefix(up, G, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/mailboxes/%s/", up, G);
	cr_assert_str_eq(buf, want);

	cr_assert_eq(keys_idx_prefix(up, "", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/idx/", up);
	cr_assert_str_eq(buf, want);
	cr_assert_eq(keys_idx_prefix(up, G, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/mailboxes/%s/idx/", up, G);
	cr_assert_str_eq(buf, want);

	cr_assert_eq(keys_mail_key(USER, G, O, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/mailboxes/%s/%s", up, G, O);
	cr_assert_str_eq(buf, want);
	cr_assert_str_eq(keys_key_oid(buf), O);

	/* where a listing of a folder's mails from a time starts */
	cr_assert_eq(keys_mail_list_start(up, G, 0x6930b1c2, 999999, buf,
					  sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/mailboxes/%s/6930b1c2f423f", up, G);
	cr_assert_str_eq(buf, want);
	cr_assert_eq(keys_mail_list_start(up, "", 1, 2, buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(keys_mail_list_start(up, G, 1, 1000000, buf,
					  sizeof(buf)), -1);
}

Test(engine_keys, builders_refuse_small_buffers)
{
	char up[KEYS_PREFIX_MAX], small[20];

	user_prefix(up);
	errno = 0;
	cr_assert_eq(keys_user_prefix(USER, small, sizeof(small)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	errno = 0;
	cr_assert_eq(keys_root_prefix(up, G, small, sizeof(small)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	errno = 0;
	cr_assert_eq(keys_idx_prefix(up, "", small, sizeof(small)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	errno = 0;
	cr_assert_eq(keys_mail_key(USER, G, O, small, sizeof(small)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
}

/* a key is "<user prefix>" + tail unless other_user; arrays, not
   pointers: criterion runs each case in a new process */
struct parse_case {
	char tail[1100];
	bool other_user;
	enum keys_kind kind;
	char guid[IDS_HEX_LEN + 1];
	char name[100];
};

ParameterizedTestParameters(engine_keys, parse)
{
	static struct parse_case cases[] = {
		/* valid */
		{ "/mailboxes/" G "/" O, false, KEYS_MAIL, G, O },
		{ "/idx/" B, false, KEYS_ROOT_BUNDLE, "", B },
		{ "/idx/" B "-" O, false, KEYS_ROOT_BUNDLE, "", B "-" O },
		{ "/mailboxes/" G "/idx/" B, false, KEYS_FOLDER_BUNDLE, G, B },
		/* a bundle name is the caller's to check */
		{ "/idx/junk", false, KEYS_ROOT_BUNDLE, "", "junk" },
		{ "/idx/", false, KEYS_ROOT_BUNDLE, "", "" },
		/* another user: same tail, other prefix */
		{ "/mailboxes/" G "/" O, true, KEYS_OTHER, "", "" },
		{ "/idx/" B, true, KEYS_OTHER, "", "" },
		/* junk */
		{ "", false, KEYS_OTHER, "", "" },
		{ "/", false, KEYS_OTHER, "", "" },
		{ "x/idx/" B, false, KEYS_OTHER, "", "" },
		{ "/mailboxes/", false, KEYS_OTHER, "", "" },
		{ "/mailboxes/" G, false, KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/", false, KEYS_OTHER, "", "" },
		{ "/mailbox/" G "/" O, false, KEYS_OTHER, "", "" },
		{ "/idx/a/" B, false, KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/idx/a/" B, false, KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/" O "/x", false, KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/sub/" O, false, KEYS_OTHER, "", "" },
		{ "/other/" O, false, KEYS_OTHER, "", "" },
		/* bad hex */
		{ "/mailboxes/00D7D12EA08A3153175E0000DFBEA952/" O, false,
		  KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/D88FF1001D4BF753A1B800001ACCFE22", false,
		  KEYS_OTHER, "", "" },
		{ "/mailboxes/g0d7d12ea08a3153175e0000dfbea952/" O, false,
		  KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/x88ff1001d4bf753a1b800001accfe22", false,
		  KEYS_OTHER, "", "" },
		/* too long or too short ids */
		{ "/mailboxes/" G "0/" O, false, KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/" O "0", false, KEYS_OTHER, "", "" },
		{ "/mailboxes/00d7d12ea08a3153175e0000dfbea95/" O, false,
		  KEYS_OTHER, "", "" },
		{ "/mailboxes/" G "/d88ff1001d4bf753a1b800001accfe2", false,
		  KEYS_OTHER, "", "" },
		/* too long a key (filled below) */
		{ "/idx/", false, KEYS_OTHER, "", "" },
	};
	struct parse_case *last = &cases[sizeof(cases) / sizeof(cases[0]) - 1];

	memset(last->tail + 5, 'b', OBJSTORE_KEY_MAX);
	last->tail[5 + OBJSTORE_KEY_MAX] = '\0';
	return cr_make_param_array(struct parse_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct parse_case *c, engine_keys, parse)
{
	char up[KEYS_PREFIX_MAX], key[KEYS_PREFIX_MAX + 1200];
	struct keys_parsed parsed;

	user_prefix(up);
	snprintf(key, sizeof(key), "%s%s", up, c->tail);
	if (c->other_user) {
		char other[KEYS_PREFIX_MAX];

		/* a user whose name starts like this one's */
		cr_assert_eq(keys_user_prefix(USER "x", other, sizeof(other)),
			     0);
		snprintf(key, sizeof(key), "%s%s", other, c->tail);
		cr_assert_eq(keys_parse(up, key, &parsed), KEYS_OTHER, "%s",
			     key);
		/* and a prefix of this user's name */
		cr_assert_eq(keys_user_prefix("user@example.co", other,
					      sizeof(other)), 0);
		snprintf(key, sizeof(key), "%s%s", other, c->tail);
	}
	cr_assert_eq(keys_parse(up, key, &parsed), c->kind, "%.200s", key);
	cr_assert_eq(parsed.kind, c->kind);
	cr_assert_str_eq(parsed.guid, c->guid);
	if (c->kind == KEYS_OTHER)
		cr_assert_null(parsed.name);
	else
		cr_assert_str_eq(parsed.name, c->name);
}

Test(engine_keys, parse_of_built_keys)
{
	char up[KEYS_PREFIX_MAX], key[OBJSTORE_KEY_MAX + 1];
	struct keys_parsed parsed;

	user_prefix(up);
	cr_assert_eq(keys_mail_key(USER, G, O, key, sizeof(key)), 0);
	cr_assert_eq(keys_parse(up, key, &parsed), KEYS_MAIL);
	cr_assert_str_eq(parsed.guid, G);
	cr_assert_eq(parsed.name, keys_key_oid(key));
}

/* arrays, not pointers (see parse_case) */
struct mail_idx_case {
	char key[200];
	char want[200];	/* "": refused */
};

ParameterizedTestParameters(engine_keys, mail_idx_prefix)
{
	static struct mail_idx_case cases[] = {
		{ "aa/bbb/" USER "/mailboxes/" G "/" O,
		  "aa/bbb/" USER "/mailboxes/" G "/idx/" },
		/* bundles, the user root, junk: not mail keys */
		{ "aa/bbb/" USER "/mailboxes/" G "/idx/" B, "" },
		{ "aa/bbb/" USER "/idx/" B, "" },
		{ "aa/bbb/" USER "/" O, "" },
		{ "mailboxes/" G "/" O, "" },
		{ "aa/bbb/" USER "/mailbox/" G "/" O, "" },
		{ "aa/bbb/" USER "/mailboxes/" "00D7D12EA08A3153175E0000DFBEA952"
		  "/" O, "" },
		{ "aa/bbb/" USER "/mailboxes/x" G "/" O, "" },
		{ O, "" },
		{ "", "" },
	};
	return cr_make_param_array(struct mail_idx_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct mail_idx_case *c, engine_keys, mail_idx_prefix)
{
	char buf[KEYS_PREFIX_MAX];
	int ret = keys_mail_idx_prefix(c->key, buf, sizeof(buf));

	if (c->want[0] == '\0') {
		cr_assert_eq(ret, -1, "accepted %s", c->key);
		cr_assert_eq(errno, EINVAL);
	} else {
		cr_assert_eq(ret, 0, "refused %s", c->key);
		cr_assert_str_eq(buf, c->want);
	}
}
