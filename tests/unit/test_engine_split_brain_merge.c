/* test_engine_split_brain_merge.c: through obox.h, without a mount, two
 * engines X and Y on their own cache directories serving one user of one
 * store (a split brain) change the same maildir folder each in their own
 * way; Y's split-brain merge (splitmerge.h) gives a mail both sides'
 * system flags and keywords (by name), both sides' subscriptions, expunges what X expunged and Y left untouched, keeps what
 * Y changed, and the merged base a third machine loads shows all that. */
#include "test_engine.h"

#include <unistd.h>

TestSuite(engine_split_brain_merge, .init = eng_init, .fini = eng_fini,
	  .timeout = 60);

#define MAILDIR ENG_USER "/Maildir"
#define DIR_NEW MAILDIR "/new"
#define DIR_CUR MAILDIR "/cur"
#define NAME1 ENG_MAIL_NAME
#define NAME2 "1700000001.M2P1.host"

static bool exists(struct obox *obox, const char *path)
{
	return faccessat(obox_meta_fd(obox), path, F_OK,
			 AT_SYMLINK_NOFOLLOW) == 0;
}

/* X and Y with the user's two mails in new/, both loaded from one base */
static void two_writers(struct obox **x_r, struct obox **y_r)
{
	eng_split_check_interval = 1;
	*x_r = eng_open("cache-x");
	eng_make_user(*x_r);
	eng_deliver(*x_r, MAILDIR, NAME1, ENG_MAIL);
	eng_deliver(*x_r, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(*x_r), 0);
	*y_r = eng_open("cache-y");
	cr_assert_eq(obox_user_load(*y_r, ENG_USER), 0);
	eng_assert_mail_stub(*y_r, DIR_NEW "/" NAME1);
}

Test(engine_split_brain_merge, flags_of_both_sides_are_unioned)
{
	struct obox *x, *y, *z;

	two_writers(&x, &y);
	/* X: mail 1 seen and flagged, mail 2 untouched */
	cr_assert_eq(eng_rename(x, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,FS"), 0);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y, not knowing of X: mail 1 answered, mail 2 seen */
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,R"), 0);
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME2, DIR_CUR, NAME2 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_eq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_flags_merged"), 1);
	cr_assert_geq(eng_stat(y, "index_split_bundles_read"), 1);
	eng_assert_mail_stub(y, DIR_CUR "/" NAME1 ":2,FRS");
	cr_assert_not(exists(y, DIR_CUR "/" NAME1 ":2,R"));
	/* X had nothing for mail 2 that Y lacks */
	eng_assert_mail_stub(y, DIR_CUR "/" NAME2 ":2,S");
	obox_deinit(&y);
	obox_deinit(&x);

	/* the merged base: a third machine sees both sides' flags */
	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	eng_assert_mail_stub(z, DIR_CUR "/" NAME1 ":2,FRS");
	eng_assert_mail_stub(z, DIR_CUR "/" NAME2 ":2,S");
	cr_assert_not(exists(z, DIR_NEW "/" NAME1));
	obox_deinit(&z);
}

/* the folder's dovecot-keywords on obox's machine, as text */
static char *keywords_of(struct obox *obox)
{
	size_t size;
	char *text = eng_read(obox, MAILDIR "/dovecot-keywords", &size);

	cr_assert_not_null(text);
	return text;
}

Test(engine_split_brain_merge, keywords_are_merged_by_name)
{
	struct obox *x, *y, *z;
	char *kw;

	two_writers(&x, &y);
	/* X: letter a is "Junk", b "$Forwarded"; mail 1 gets both */
	eng_write_file(x, MAILDIR "/dovecot-keywords",
		       "0 Junk\n1 $Forwarded\n");
	cr_assert_eq(eng_rename(x, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,Sab"),
		     0);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y: letter a is "$Label1", b "junk" (one name: case does not
	   count); mail 1 gets $Label1 */
	eng_write_file(y, MAILDIR "/dovecot-keywords",
		       "0 $Label1\n1 junk\n");
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,a"), 0);
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_eq(eng_stat(y, "index_split_flags_merged"), 1);
	/* Junk is Y's b, $Forwarded is new to Y: its first free letter c */
	eng_assert_mail_stub(y, DIR_CUR "/" NAME1 ":2,Sabc");
	kw = keywords_of(y);
	cr_assert_str_eq(kw, "0 $Label1\n1 junk\n2 $Forwarded\n");
	free(kw);
	obox_deinit(&y);
	obox_deinit(&x);

	/* the merged base holds the names with the letters */
	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	eng_assert_mail_stub(z, DIR_CUR "/" NAME1 ":2,Sabc");
	kw = keywords_of(z);
	cr_assert_str_eq(kw, "0 $Label1\n1 junk\n2 $Forwarded\n");
	free(kw);
	obox_deinit(&z);
}

Test(engine_split_brain_merge, keywords_without_a_name_or_a_letter_are_left_out)
{
	struct obox *x, *y;
	char y_names[26 * 8 + 1] = "";
	char *kw;

	two_writers(&x, &y);
	/* X: letter a has no name in X's file, b is "Other" */
	eng_write_file(x, MAILDIR "/dovecot-keywords", "1 Other\n");
	cr_assert_eq(eng_rename(x, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,Fab"),
		     0);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y: all 26 letters taken, none "Other" */
	for (unsigned int i = 0; i < 26; i++)
		snprintf(y_names + strlen(y_names),
			 sizeof(y_names) - strlen(y_names), "%u k%u\n", i, i);
	eng_write_file(y, MAILDIR "/dovecot-keywords", y_names);
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(y), 0);

	/* the system flag is merged, neither keyword */
	cr_assert_eq(eng_stat(y, "index_split_flags_merged"), 1);
	eng_assert_mail_stub(y, DIR_CUR "/" NAME1 ":2,FS");
	kw = keywords_of(y);
	cr_assert_str_eq(kw, y_names);
	free(kw);
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_merge, expunge_by_the_machine_that_took_over_is_merged)
{
	struct obox *x, *y, *z;

	/* Y took the user over from X (two_writers()): it goes on with X's
	   base (diffs of it), so X knows the base they share */
	eng_delete_grace = 3600;
	two_writers(&x, &y);
	eng_unlink(y, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "index_bases_stored"), 0);
	/* X, not knowing: mail 2 seen; its split check is due again (one
	   a second) */
	usleep(1100000);
	cr_assert_eq(eng_rename(x, DIR_NEW, NAME2, DIR_CUR, NAME2 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_eq(eng_stat(x, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(x, "index_split_mails_expunged"), 1);
	cr_assert_not(exists(x, DIR_NEW "/" NAME1));
	eng_assert_mail_stub(x, DIR_CUR "/" NAME2 ":2,S");
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert_not(exists(z, DIR_NEW "/" NAME1));
	eng_assert_mail_stub(z, DIR_CUR "/" NAME2 ":2,S");
	obox_deinit(&z);
}

Test(engine_split_brain_merge, subscriptions_are_unioned)
{
	struct obox *x, *y, *z;
	size_t size;
	char *subs;

	two_writers(&x, &y);
	/* one in common, one each; X's file lacks its last newline */
	eng_write_file(x, MAILDIR "/subscriptions", "V\t2\n\nWork\nX-only");
	eng_write_file(x, MAILDIR "/dovecot-uidlist", "3 V1 N3\n");
	cr_assert_eq(obox_upload_now(x), 0);
	eng_write_file(y, MAILDIR "/subscriptions", "V\t2\n\nY-only\nWork\n");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	subs = eng_read(y, MAILDIR "/subscriptions", &size);
	cr_assert_str_eq(subs, "V\t2\n\nY-only\nWork\nX-only\n");
	free(subs);
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	subs = eng_read(z, MAILDIR "/subscriptions", &size);
	cr_assert_str_eq(subs, "V\t2\n\nY-only\nWork\nX-only\n");
	free(subs);
	obox_deinit(&z);
}

Test(engine_split_brain_merge, subscriptions_only_the_other_side_has_are_taken)
{
	struct obox *x, *y;
	size_t size;
	char *subs;

	two_writers(&x, &y);
	eng_write_file(x, MAILDIR "/subscriptions", "V\t2\n\nWork\n");
	cr_assert_eq(obox_upload_now(x), 0);
	eng_write_file(y, MAILDIR "/dovecot-uidlist", "3 V1 N3\n");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	subs = eng_read(y, MAILDIR "/subscriptions", &size);
	cr_assert_str_eq(subs, "V\t2\n\nWork\n");
	free(subs);
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_merge, mail_still_new_here_gets_the_other_sides_flags)
{
	struct obox *x, *y;

	two_writers(&x, &y);
	cr_assert_eq(eng_rename(x, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y changes something else */
	eng_write_file(y, MAILDIR "/dovecot-uidlist", "3 V1 N3\n");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "index_split_flags_merged"), 1);
	eng_assert_mail_stub(y, DIR_CUR "/" NAME1 ":2,S");
	cr_assert_not(exists(y, DIR_NEW "/" NAME1));
	eng_assert_mail_stub(y, DIR_NEW "/" NAME2);
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_merge, fewer_flags_on_the_other_side_change_nothing)
{
	struct obox *x, *y;

	two_writers(&x, &y);
	cr_assert_eq(eng_rename(x, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME1, DIR_CUR, NAME1 ":2,RS"), 0);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_flags_merged"), 0);
	eng_assert_mail_stub(y, DIR_CUR "/" NAME1 ":2,RS");
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_merge, expunge_of_a_mail_untouched_here_is_merged)
{
	struct obox *x, *y, *z;

	/* X's expunged mail stays in the store: Y's merge, not a missing
	   object, must take the expunge over */
	eng_delete_grace = 3600;
	two_writers(&x, &y);
	eng_unlink(x, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y, not knowing: mail 2 seen */
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME2, DIR_CUR, NAME2 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_mails_dropped"), 0);
	cr_assert_eq(eng_stat(y, "index_split_mails_expunged"), 1);
	cr_assert_not(exists(y, DIR_NEW "/" NAME1), "X's expunge not merged");
	eng_assert_mail_stub(y, DIR_CUR "/" NAME2 ":2,S");
	/* Y released its object: condemned once the merged base is stored */
	cr_assert_geq(eng_stat(y, "objects_condemned"), 1);
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert_eq(eng_stat(z, "index_load_mails_before_mark"), 1);
	cr_assert_not(exists(z, DIR_NEW "/" NAME1));
	cr_assert_not(exists(z, DIR_CUR "/" NAME1 ":2,"));
	eng_assert_mail_stub(z, DIR_CUR "/" NAME2 ":2,S");
	obox_deinit(&z);
}

/* X and Y from two_writers() (a long delete grace): X expunges mail 1
   and uploads, then Y, not knowing, renames it to cur/cur_name and
   uploads (its merge runs) */
static void expunged_there_renamed_here(struct obox **x_r, struct obox **y_r,
					const char *cur_name)
{
	eng_delete_grace = 3600;
	two_writers(x_r, y_r);
	eng_unlink(*x_r, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(*x_r), 0);
	cr_assert_eq(eng_rename(*y_r, DIR_NEW, NAME1, DIR_CUR, cur_name), 0);
	cr_assert_eq(obox_upload_now(*y_r), 0);
}

Test(engine_split_brain_merge, mail_changed_here_stays_though_expunged_there)
{
	struct obox *x, *y;

	/* Y changed mail 1's flags: the newer intent here, it stays */
	expunged_there_renamed_here(&x, &y, NAME1 ":2,F");
	cr_assert_eq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_mails_expunged"), 0);
	eng_assert_mail_stub(y, DIR_CUR "/" NAME1 ":2,F");
	eng_assert_mail_stub(y, DIR_NEW "/" NAME2);
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_merge, expunge_is_merged_after_a_rebase_there)
{
	struct obox *x, *y;

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	/* X expunges and stores a base of its own, which names the base
	   both loaded as its parent (bundle_info.has_parent): Y knows that
	   base, the common one */
	eng_unlink(x, DIR_NEW, NAME1);
	eng_write_big_file(x, MAILDIR "/dovecot.index.cache");
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_eq(eng_stat(x, "index_bases_stored"), 2 + 1,
		     "X stored no base of its own");
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME2, DIR_CUR, NAME2 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_mails_expunged"), 1);
	cr_assert_not(exists(y, DIR_NEW "/" NAME1));
	eng_assert_mail_stub(y, DIR_CUR "/" NAME2 ":2,S");
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_merge, no_expunge_without_a_common_base)
{
	struct obox *x, *y;

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	/* both store a base of their own since the split: neither knows
	   the other's parent's tree, so Y cannot tell an expunge there from
	   a mail it never had */
	eng_unlink(x, DIR_NEW, NAME1);
	eng_write_big_file(x, MAILDIR "/dovecot.index.cache");
	cr_assert_eq(obox_upload_now(x), 0);
	eng_write_big_file(y, MAILDIR "/dovecot.index.cache");
	cr_assert_eq(eng_rename(y, DIR_NEW, NAME2, DIR_CUR, NAME2 ":2,S"), 0);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_mails_expunged"), 0);
	eng_assert_mail_stub(y, DIR_NEW "/" NAME1);
	obox_deinit(&y);
	obox_deinit(&x);
}

/* a mail the other writer delivered during the split and flagged (its
   name got Dovecot's ",S=" field too) comes back with its flags */
Test(engine_split_brain_merge, mail_put_back_gets_the_other_sides_flags)
{
	struct obox *x, *y;

	two_writers(&x, &y);
	eng_deliver(y, MAILDIR, "1700000009.M9P1.host", ENG_MAIL);
	cr_assert_eq(eng_rename(y, DIR_NEW, "1700000009.M9P1.host", DIR_CUR,
				"1700000009.M9P1.host,S=5:2,F"), 0);
	cr_assert_eq(obox_upload_now(y), 0);
	usleep(1100000);	/* X checks a root at most once a second */
	eng_deliver(x, MAILDIR, NAME2 "x", ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);

	cr_assert_geq(eng_stat(x, "index_split_mails_merged"), 1);
	eng_assert_mail_stub(x, DIR_CUR "/1700000009.M9P1.host:2,F");
	cr_assert_not(exists(x, DIR_NEW "/1700000009.M9P1.host"));
	obox_deinit(&y);
	obox_deinit(&x);
}

/* a mail the other writer delivered and expunged during the split (its
   object waits out the grace) does not come back here */
Test(engine_split_brain_merge, mail_expunged_there_during_the_split_stays_gone)
{
	struct obox *x, *y;

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	eng_deliver(y, MAILDIR, "1700000009.M9P1.host", ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);
	eng_unlink(y, DIR_NEW, "1700000009.M9P1.host");
	cr_assert_eq(obox_upload_now(y), 0);
	/* the object is still in the store (grace) */
	cr_assert_eq(eng_mail_keys(NULL, 0), 3);
	usleep(1100000);	/* X checks a root at most once a second */
	eng_deliver(x, MAILDIR, NAME2 "x", ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);

	cr_assert_geq(eng_stat(x, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(x, "index_split_mails_merged"), 0);
	cr_assert_not(exists(x, DIR_NEW "/1700000009.M9P1.host"));
	obox_deinit(&y);
	obox_deinit(&x);
}

/* Dovecot moving a mail from new/ to cur/ (no flags) is no change: an
   expunge by the other writer is merged */
Test(engine_split_brain_merge, expunge_of_a_mail_only_moved_to_cur_here)
{
	struct obox *x, *y;

	expunged_there_renamed_here(&x, &y, NAME1 ":2,");

	cr_assert_eq(eng_stat(y, "index_split_mails_expunged"), 1);
	cr_assert_not(exists(y, DIR_CUR "/" NAME1 ":2,"));
	obox_deinit(&y);
	obox_deinit(&x);
}

/* a mail expunged here and flagged by the other writer stays (the newer
   intent): it comes back here with the other side's flags, and its
   object is no longer garbage */
Test(engine_split_brain_merge, mail_expunged_here_and_changed_there_comes_back)
{
	struct obox *x, *y;

	expunged_there_renamed_here(&x, &y, NAME1 ":2,F");
	usleep(1100000);	/* X checks a root at most once a second */
	eng_deliver(x, MAILDIR, NAME2 "x", ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);

	cr_assert_geq(eng_stat(x, "index_split_mails_merged"), 1);
	eng_assert_mail_stub(x, DIR_CUR "/" NAME1 ":2,F");
	obox_deinit(&x);
	cr_assert_eq(eng_mail_keys(NULL, 0), 3);
	obox_deinit(&y);
}

/* Without another writer, a split-brain check lists the folder's idx/
   only: its cost does not grow with the folder's mails (it listed every
   mail of the folder before). */
Test(engine_split_brain_merge, a_check_lists_bundles_not_mails)
{
	uint64_t checks, keys;
	char name[64];
	struct obox *x;

	eng_split_check_interval = 1;
	x = eng_open("cache-x");
	eng_make_user(x);
	for (unsigned int i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "1700000000.M%uP1.host", i);
		eng_deliver(x, MAILDIR, name, ENG_MAIL);
	}
	cr_assert_eq(obox_upload_now(x), 0);
	usleep(1100000);
	checks = eng_stat(x, "index_split_checks");
	keys = eng_stat(x, "index_split_check_keys");
	eng_deliver(x, MAILDIR, "1700000100.M1P1.host", ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	/* the user root and the INBOX, each its base and diff at most */
	cr_assert_geq(eng_stat(x, "index_split_checks") - checks, 2);
	cr_assert_leq(eng_stat(x, "index_split_check_keys") - keys, 4,
		      "%" PRIu64 " keys listed",
		      eng_stat(x, "index_split_check_keys") - keys);
	cr_assert_eq(eng_stat(x, "index_split_brains"), 0);
	obox_deinit(&x);
}
