/* test_engine_delivery_store_and_relocate.c: through obox.h, without a
 * mount: a mail written in tmp/ and renamed into new/ is stored as one
 * object <h1>/<h2>/<user>/mailboxes/<guid>/<oid> holding the mail's bytes,
 * the new name is a stub that reads back as the mail; renaming it to cur/
 * with flags costs no object; renaming it into another folder stores a
 * new object there and releases the old one, which the next upload pass
 * deletes. */
#include "test_engine.h"

TestSuite(engine_delivery, .init = eng_init, .fini = eng_fini);

#define INBOX ENG_USER "/Maildir"
#define SENT ENG_USER "/Maildir/.Sent"
#define SEEN_NAME ENG_MAIL_NAME ":2,S"

Test(engine_delivery, delivery_is_stored_as_one_object)
{
	struct obox *obox = eng_open("cache");
	char keys[4][1024], *data;
	size_t len;
	uint64_t size;

	eng_make_user(obox);
	cr_assert_eq(eng_mail_keys(keys, 4), 0);
	eng_deliver(obox, INBOX, ENG_MAIL_NAME, ENG_MAIL);

	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	data = eng_get_object(keys[0], &len);
	cr_assert_eq(len, strlen(ENG_MAIL));
	cr_assert_str_eq(data, ENG_MAIL);
	free(data);
	cr_assert_eq(eng_stat(obox, "mails_stored"), 1);

	/* tmp/ has nothing left, new/ has the stub */
	cr_assert_neq(faccessat(obox_meta_fd(obox),
				INBOX "/tmp/" ENG_MAIL_NAME, F_OK, 0), 0);
	eng_assert_mail_stub(obox, INBOX "/new/" ENG_MAIL_NAME);

	/* the object carries where the mail goes back */
	struct objstore_stat st;

	cr_assert_eq(objstore_head(eng_store, keys[0], &st), 0);
	cr_assert_str_eq(objstore_stat_meta(&st, "name"), ENG_MAIL_NAME);
	cr_assert_str_eq(objstore_stat_meta(&st, "path"), "Maildir/new");
	objstore_stat_free(&st);

	/* a plain file outside a mail location is not stored */
	eng_write_file(obox, INBOX "/dovecot-uidlist", "3 V1 N2\n");
	cr_assert_eq(eng_stub_size(obox, INBOX "/dovecot-uidlist", &size), 0);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	obox_deinit(&obox);
}

Test(engine_delivery, new_to_cur_costs_no_object)
{
	struct obox *obox = eng_open("cache");
	char before[4][1024], after[4][1024];
	int err;

	eng_make_user(obox);
	eng_deliver(obox, INBOX, ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(eng_mail_keys(before, 4), 1);
	uint64_t puts = eng_stat(obox, "requests_put");

	err = eng_rename(obox, INBOX "/new", ENG_MAIL_NAME, INBOX "/cur",
			 SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_mail_keys(after, 4), 1);
	cr_assert_str_eq(after[0], before[0]);
	cr_assert_eq(eng_stat(obox, "requests_put"), puts,
		     "a flag change stored something");
	cr_assert_eq(eng_stat(obox, "objects_released"), 0);
	cr_assert_eq(eng_stat(obox, "mails_stored"), 1);
	eng_assert_mail_stub(obox, INBOX "/cur/" SEEN_NAME);
	obox_deinit(&obox);
}

Test(engine_delivery, move_to_another_folder_relocates)
{
	struct obox *obox = eng_open("cache");
	char before[4][1024], after[4][1024], guid_before[33], guid_after[33];
	char *data;
	size_t len;
	int err;

	eng_make_user(obox);
	eng_make_folder(obox, ".Sent");
	eng_deliver(obox, INBOX, ENG_MAIL_NAME, ENG_MAIL);
	err = eng_rename(obox, INBOX "/new", ENG_MAIL_NAME, INBOX "/cur",
			 SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_mail_keys(before, 4), 1);
	eng_key_guid(before[0], guid_before);

	err = eng_rename(obox, INBOX "/cur", SEEN_NAME, SENT "/cur",
			 SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "mails_relocated"), 1);
	cr_assert_eq(eng_stat(obox, "objects_released"), 1);
	eng_assert_mail_stub(obox, SENT "/cur/" SEEN_NAME);

	/* a new object in the other folder; the old one stays until an
	   upload no longer references it */
	cr_assert_eq(eng_mail_keys(after, 4), 2);
	cr_assert_eq(eng_stat(obox, "objects_pending_delete"), 1);
	cr_assert_eq(obox_upload_now(obox), 0);
	cr_assert_eq(eng_stat(obox, "objects_pending_delete"), 0);
	cr_assert_eq(eng_stat(obox, "objects_deleted"), 1);

	cr_assert_eq(eng_mail_keys(after, 4), 1);
	cr_assert_str_neq(after[0], before[0]);
	eng_key_guid(after[0], guid_after);
	cr_assert_str_neq(guid_after, guid_before,
			  "relocated within the same folder");
	data = eng_get_object(after[0], &len);
	cr_assert_str_eq(data, ENG_MAIL);
	free(data);
	struct objstore_stat st;

	cr_assert_eq(objstore_head(eng_store, after[0], &st), 0);
	cr_assert_str_eq(objstore_stat_meta(&st, "path"),
			 "Maildir/.Sent/cur");
	cr_assert_str_eq(objstore_stat_meta(&st, "name"), SEEN_NAME);
	objstore_stat_free(&st);
	eng_assert_mail_stub(obox, SENT "/cur/" SEEN_NAME);
	obox_deinit(&obox);
}
