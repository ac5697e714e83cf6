/* test_engine_upload_pass.c: through obox.h, without a mount and without
 * the upload threads: obox_upload_now() stores a changed user's index tree
 * as bundles (one base for the user root, one per folder), stores nothing
 * when nothing changed, and a diff bundle for a change. */
#include "test_engine.h"

TestSuite(engine_upload_pass, .init = eng_init, .fini = eng_fini);

Test(engine_upload_pass, changed_user_gets_bundles)
{
	struct obox *obox = eng_open("cache");
	char user_keys[4][1024], folder_keys[4][1024], keys[4][1024];

	eng_make_user(obox);
	eng_make_folder(obox, ".Sent");
	eng_write_file(obox, ENG_USER "/Maildir/dovecot-uidlist", "3 V1 N2\n");
	eng_write_file(obox, ENG_USER "/Maildir/dovecot.index.log",
		       "index log");
	eng_deliver(obox, ENG_USER "/Maildir", ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(eng_store_keys(ENG_USER_BUNDLE_RE, keys, 4), 0);
	cr_assert_eq(eng_store_keys(ENG_FOLDER_BUNDLE_RE, keys, 4), 0);
	cr_assert_eq(eng_stat(obox, "index_dirty_users"), 1);

	cr_assert_eq(obox_upload_now(obox), 0);
	cr_assert_eq(eng_stat(obox, "index_dirty_users"), 0);
	/* a base for the user root and one for INBOX, a folder (a bundle
	   root) since its first mail gave it a GUID; .Sent has no mail, no
	   GUID yet: it is in the user root's tree */
	cr_assert_eq(eng_store_keys(ENG_USER_BUNDLE_RE, user_keys, 4), 1);
	cr_assert_eq(eng_store_keys(ENG_FOLDER_BUNDLE_RE, folder_keys, 4), 1);
	uint64_t bases = eng_stat(obox, "index_bases_stored");

	cr_assert_eq(bases, 2);
	cr_assert_eq(eng_stat(obox, "index_diffs_stored"), 0);
	/* the INBOX bundle is in the folder of the mail */
	char mail_keys[4][1024], guid[33], want[128];
	unsigned int inbox_bundles = 0, folders;

	cr_assert_eq(eng_mail_keys(mail_keys, 4), 1);
	eng_key_guid(mail_keys[0], guid);
	snprintf(want, sizeof(want), "/mailboxes/%s/idx/", guid);
	folders = eng_store_keys(ENG_FOLDER_BUNDLE_RE, folder_keys, 4);
	for (unsigned int i = 0; i < folders; i++) {
		if (strstr(folder_keys[i], want) != NULL)
			inbox_bundles++;
	}
	cr_assert_eq(inbox_bundles, 1);

	/* nothing changed: nothing stored */
	uint64_t puts = eng_stat(obox, "requests_put");

	cr_assert_eq(obox_upload_now(obox), 0);
	cr_assert_eq(eng_stat(obox, "requests_put"), puts);
	cr_assert_eq(eng_store_keys(ENG_USER_BUNDLE_RE, keys, 4), 1);
	cr_assert_eq(eng_store_keys(ENG_FOLDER_BUNDLE_RE, keys, 4), folders);

	/* a change of INBOX's index: a diff on its base */
	eng_write_file(obox, ENG_USER "/Maildir/dovecot.index.log",
		       "index log, longer");
	cr_assert_eq(eng_stat(obox, "index_dirty_users"), 1);
	cr_assert_eq(obox_upload_now(obox), 0);
	cr_assert_eq(eng_stat(obox, "index_diffs_stored"), 1);
	cr_assert_eq(eng_stat(obox, "index_bases_stored"), bases);
	cr_assert_eq(eng_store_keys(ENG_FOLDER_BUNDLE_RE, keys, 4),
		     folders + 1);
	cr_assert_eq(eng_stat(obox, "index_dirty_users"), 0);
	obox_deinit(&obox);
}

Test(engine_upload_pass, deinit_without_start_uploads_nothing)
{
	struct obox *obox = eng_open("cache");
	char keys[4][1024];

	eng_make_user(obox);
	eng_write_file(obox, ENG_USER "/Maildir/dovecot-uidlist", "3 V1 N2\n");
	obox_deinit(&obox);
	cr_assert_eq(eng_store_keys(ENG_USER_BUNDLE_RE, keys, 4), 0);

	/* the change is still there for the next run's upload */
	obox = eng_open("cache");
	cr_assert_eq(eng_stat(obox, "index_dirty_users"), 1);
	cr_assert_eq(obox_upload_now(obox), 0);
	cr_assert_eq(eng_store_keys(ENG_USER_BUNDLE_RE, keys, 4), 1);
	obox_deinit(&obox);
}

Test(engine_upload_pass, started_engine_uploads_at_deinit)
{
	struct obox *obox = eng_open("cache");
	const char *error = NULL;
	char keys[4][1024];

	cr_assert_eq(obox_start(obox, &error), 0, "%s", error);
	eng_make_user(obox);
	eng_write_file(obox, ENG_USER "/Maildir/dovecot-uidlist", "3 V1 N2\n");
	obox_deinit(&obox);
	cr_assert_eq(eng_store_keys(ENG_USER_BUNDLE_RE, keys, 4), 1);
}
