/* test_engine_load_takes_chain_over.c: through obox.h, without a mount: a
 * machine that loads a user whose folders have one writer's chain (a base
 * and its diffs) goes on with that chain: its first upload after a change
 * is a diff of the loaded base, numbered past the loaded diffs, and not a
 * whole new base (a takeover then costs the bytes of what changed); what
 * it loaded of the previous writer's diffs is superseded by its own; a
 * third machine loads the result.  Two writers' chains (a split brain)
 * are not taken over: the next upload is a new base. */
#include "test_engine.h"

TestSuite(engine_load_takes_chain_over, .init = eng_init, .fini = eng_fini,
	  .timeout = 60);

#define MAILDIR ENG_USER "/Maildir"
#define NAME2 "1700000002.M2P1.host"
#define NAME3 "1700000003.M3P1.host"
#define NAME4 "1700000004.M4P1.host"

static unsigned int folder_bundles(char keys[][1024], unsigned int max)
{
	return eng_store_keys(ENG_FOLDER_BUNDLE_RE, keys, max);
}

static unsigned int diffs_among(char keys[][1024], unsigned int count)
{
	unsigned int diffs = 0;

	for (unsigned int i = 0; i < count; i++)
		diffs += strchr(strrchr(keys[i], '/'), '-') != NULL;
	return diffs;
}

Test(engine_load_takes_chain_over, first_upload_after_a_load_is_a_diff)
{
	struct obox *x, *y, *z;
	char before[8][1024], after[8][1024];
	unsigned int n_before, n_after;

	x = eng_open("cache-x");
	eng_make_user(x);
	eng_deliver(x, MAILDIR, ENG_MAIL_NAME, ENG_MAIL);
	eng_deliver(x, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	/* a diff on that base */
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_eq(eng_stat(x, "index_diffs_stored"), 1);
	n_before = folder_bundles(before, 8);
	cr_assert_eq(n_before, 2, "%u folder bundles", n_before);
	cr_assert_eq(diffs_among(before, n_before), 1);
	obox_deinit(&x);

	/* Y takes the user over and delivers a mail */
	y = eng_open("cache-y");
	cr_assert_eq(obox_user_load(y, ENG_USER), 0);
	eng_deliver(y, MAILDIR, NAME4, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "index_bases_stored"), 0,
		     "a takeover stored whole bases again");
	cr_assert_geq(eng_stat(y, "index_diffs_stored"), 1);
	cr_assert_eq(eng_stat(y, "index_split_brains"), 0);
	/* the folder: X's base and Y's diff; X's diff superseded */
	n_after = folder_bundles(after, 8);
	cr_assert_eq(n_after, 2, "%u folder bundles", n_after);
	cr_assert_eq(diffs_among(after, n_after), 1);
	for (unsigned int i = 0; i < n_before; i++) {
		bool is_diff = strchr(strrchr(before[i], '/'), '-') != NULL;
		bool kept = strcmp(before[i], after[0]) == 0 ||
			strcmp(before[i], after[1]) == 0;

		cr_assert_eq(kept, !is_diff, "%s %s", before[i],
			     kept ? "kept" : "gone");
	}
	obox_deinit(&y);

	/* a third machine: every mail */
	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	eng_assert_mail_stub(z, MAILDIR "/new/" ENG_MAIL_NAME);
	eng_assert_mail_stub(z, MAILDIR "/new/" NAME2);
	eng_assert_mail_stub(z, MAILDIR "/new/" NAME3);
	eng_assert_mail_stub(z, MAILDIR "/new/" NAME4);
	obox_deinit(&z);
}

Test(engine_load_takes_chain_over, a_load_without_changes_uploads_nothing)
{
	struct obox *x, *y;
	uint64_t puts;

	x = eng_open("cache-x");
	eng_make_user(x);
	eng_deliver(x, MAILDIR, ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	obox_deinit(&x);

	y = eng_open("cache-y");
	cr_assert_eq(obox_user_load(y, ENG_USER), 0);
	puts = eng_stat(y, "requests_put");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "requests_put"), puts);
	obox_deinit(&y);
}

Test(engine_load_takes_chain_over, two_writers_chains_get_a_new_base)
{
	struct obox *x, *w, *y;

	eng_split_check_interval = 0;
	x = eng_open("cache-x");
	eng_make_user(x);
	eng_deliver(x, MAILDIR, ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	/* W loads X's chain, and both go on: two diffs of one seq */
	w = eng_open("cache-w");
	cr_assert_eq(obox_user_load(w, ENG_USER), 0);
	eng_deliver(x, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	eng_deliver(w, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(w), 0);
	cr_assert_eq(eng_stat(w, "index_bases_stored"), 0);

	/* Y loads two writers' chains: not taken over */
	y = eng_open("cache-y");
	cr_assert_eq(obox_user_load(y, ENG_USER), 0);
	eng_deliver(y, MAILDIR, NAME4, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_bases_stored"), 1);
	obox_deinit(&y);
	obox_deinit(&w);
	obox_deinit(&x);
}
