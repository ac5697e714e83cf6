/* test_engine_user_load_from_store.c: through obox.h, without a mount: a
 * user uploaded by one engine is loaded by another engine on an empty
 * cache directory (obox_user_load()): its tree comes back with the mail's
 * stub under its name, which reads as the mail from the store; a mail
 * stored but never in an uploaded bundle is put back under its name, its
 * directories owned by the tree root's owner; a user the store does not
 * have is ENOENT. */
#include "test_engine.h"

TestSuite(engine_user_load, .init = eng_init, .fini = eng_fini);

#define SEEN_NAME ENG_MAIL_NAME ":2,S"

static char *read_plain(struct obox *obox, const char *path)
{
	size_t len;

	return eng_read(obox, path, &len);
}

Test(engine_user_load, uploaded_user_loads_on_another_cache)
{
	struct obox *a = eng_open("cache-a"), *b;
	char *data;
	int err;

	eng_make_user(a);
	eng_write_file(a, ENG_USER "/Maildir/dovecot-uidlist", "3 V1 N2\n");
	eng_deliver(a, ENG_USER "/Maildir", ENG_MAIL_NAME, ENG_MAIL);
	err = eng_rename(a, ENG_USER "/Maildir/new", ENG_MAIL_NAME,
			 ENG_USER "/Maildir/cur", SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(obox_upload_now(a), 0);
	obox_deinit(&a);

	b = eng_open("cache-b");
	cr_assert_neq(faccessat(obox_meta_fd(b), ENG_USER, F_OK, 0), 0,
		      "a fresh cache has the user already");
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert_eq(eng_stat(b, "index_users_loaded"), 1);
	cr_assert_eq(faccessat(obox_meta_fd(b),
			       ENG_USER "/Maildir/new/" ENG_MAIL_NAME, F_OK,
			       AT_SYMLINK_NOFOLLOW), -1);
	eng_assert_mail_stub(b, ENG_USER "/Maildir/cur/" SEEN_NAME);
	data = read_plain(b, ENG_USER "/Maildir/dovecot-uidlist");
	cr_assert_str_eq(data, "3 V1 N2\n");
	free(data);
	/* loaded again: it is there */
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert_eq(eng_stat(b, "index_users_loaded"), 1);
	obox_deinit(&b);
}

Test(engine_user_load, mail_without_bundle_is_put_back)
{
	struct obox *a = eng_open("cache-a"), *b;

	/* delivered, never uploaded (the engine was not started) */
	eng_make_user(a);
	eng_deliver(a, ENG_USER "/Maildir", ENG_MAIL_NAME, ENG_MAIL);
	obox_deinit(&a);

	b = eng_open("cache-b");
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert_eq(eng_stat(b, "index_mails_put_back"), 1);
	eng_assert_mail_stub(b, ENG_USER "/Maildir/new/" ENG_MAIL_NAME);
	obox_deinit(&b);
}

/* no bundle says who owns the user's directories (the daemon was killed
   before the user's first upload, the cache lost): they take the tree
   root's owner, the mail user Dovecot runs as, not root */
Test(engine_user_load, mail_without_bundle_gets_the_roots_owner)
{
	static const char *const dirs[] = {
		ENG_USER, ENG_USER "/Maildir", ENG_USER "/Maildir/new",
	};
	struct obox *a = eng_open("cache-a"), *b;
	struct stat st;

	eng_make_user(a);
	eng_deliver(a, ENG_USER "/Maildir", ENG_MAIL_NAME, ENG_MAIL);
	obox_deinit(&a);

	b = eng_open("cache-b");
	cr_assert_eq(fchownat(obox_meta_fd(b), "", 1234, 1235,
			      AT_EMPTY_PATH), 0, "%s", strerror(errno));
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	eng_assert_mail_stub(b, ENG_USER "/Maildir/new/" ENG_MAIL_NAME);
	for (unsigned int i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		cr_assert_eq(fstatat(obox_meta_fd(b), dirs[i], &st,
				     AT_SYMLINK_NOFOLLOW), 0);
		cr_assert_eq(st.st_uid, 1234, "%s: uid %u", dirs[i],
			     (unsigned int)st.st_uid);
		cr_assert_eq(st.st_gid, 1235, "%s: gid %u", dirs[i],
			     (unsigned int)st.st_gid);
	}
	cr_assert_eq(fstatat(obox_meta_fd(b),
			     ENG_USER "/Maildir/new/" ENG_MAIL_NAME, &st,
			     AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(st.st_uid, 1234);
	obox_deinit(&b);
}

Test(engine_user_load, unknown_user_is_enoent)
{
	struct obox *obox = eng_open("cache");

	cr_assert_eq(obox_user_load(obox, "nobody@example.com"), ENOENT);
	cr_assert_neq(faccessat(obox_meta_fd(obox), "nobody@example.com",
				F_OK, 0), 0);
	obox_deinit(&obox);
}
