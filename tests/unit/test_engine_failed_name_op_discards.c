/* test_engine_failed_name_op_discards.c: through obox.h, without a mount:
 * a delivery whose rename (or link) into a mail location fails after the
 * mail was stored (PUT) leaves no object behind and the file as it was, so
 * that the MTA, told the delivery failed, does not get a duplicate when a
 * load's rescan (here: another engine on an empty cache) lists the
 * folder.  The rename fails here because the target name is a non-empty
 * directory (EISDIR/ENOTEMPTY come from renameat2() itself, after the
 * store). */
#include "test_engine.h"

TestSuite(engine_failed_name_op, .init = eng_init, .fini = eng_fini);

#define TMP_DIR ENG_USER "/Maildir/tmp"
#define NEW_DIR ENG_USER "/Maildir/new"

/* new/<name> made a directory holding a file: renaming onto it fails */
static void block_name(struct obox *obox, const char *name)
{
	char path[1024];

	snprintf(path, sizeof(path), NEW_DIR "/%s", name);
	eng_mkdir(obox, path);
	snprintf(path, sizeof(path), NEW_DIR "/%s/x", name);
	eng_write_file(obox, path, "x");
}

/* another engine on an empty cache loads the user: no mail comes back */
static void assert_nothing_put_back(void)
{
	struct obox *b = eng_open("cache-b");

	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert_eq(eng_stat(b, "index_mails_put_back"), 0,
		     "a refused delivery came back as a mail");
	obox_deinit(&b);
}

Test(engine_failed_name_op, failed_rename_after_store_deletes_the_object)
{
	struct obox *a = eng_open("cache-a");
	char keys[4][1024];
	int err;

	eng_make_user(a);
	cr_assert_eq(obox_upload_now(a), 0);
	block_name(a, ENG_MAIL_NAME);
	eng_write_file(a, TMP_DIR "/" ENG_MAIL_NAME, ENG_MAIL);
	err = eng_rename(a, TMP_DIR, ENG_MAIL_NAME, NEW_DIR, ENG_MAIL_NAME);
	cr_assert(err == EISDIR || err == ENOTEMPTY,
		  "renaming onto a directory: %s", strerror(err));
	/* it was stored, and the object is gone again */
	cr_assert_eq(eng_stat(a, "mails_stored"), 1);
	cr_assert_eq(eng_mail_keys(keys, 4), 0,
		     "the object of the failed delivery is still there: %s",
		     keys[0]);
	cr_assert_eq(eng_stat(a, "objects_deleted"), 1);
	/* Dovecot may read the file again, or unlink it */
	eng_assert_mail(a, TMP_DIR "/" ENG_MAIL_NAME, false);
	cr_assert_eq(obox_unlink(a, openat(obox_meta_fd(a), TMP_DIR,
					   O_RDONLY | O_DIRECTORY),
				 ENG_MAIL_NAME), 0);
	cr_assert_eq(obox_upload_now(a), 0);
	cr_assert_eq(eng_stat(a, "objects_released"), 0,
		     "the unlink released an object that is deleted already");
	obox_deinit(&a);
	assert_nothing_put_back();
}

Test(engine_failed_name_op, failed_link_after_store_deletes_the_object)
{
	struct obox *a = eng_open("cache-a");
	char keys[4][1024];
	int fd, dir_fd, err;

	eng_make_user(a);
	cr_assert_eq(obox_upload_now(a), 0);
	eng_write_file(a, TMP_DIR "/" ENG_MAIL_NAME, ENG_MAIL);
	fd = openat(obox_meta_fd(a), TMP_DIR "/" ENG_MAIL_NAME, O_PATH);
	dir_fd = openat(obox_meta_fd(a), NEW_DIR, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_geq(dir_fd, 0);
	/* new/ goes while the link is on its way: the store succeeds (the
	   folder is there), linkat() into the removed directory fails */
	cr_assert_eq(unlinkat(obox_meta_fd(a), NEW_DIR, AT_REMOVEDIR), 0);
	err = obox_link(a, fd, dir_fd, NEW_DIR, ENG_MAIL_NAME);
	cr_assert_eq(err, ENOENT, "%s", strerror(err));
	cr_assert_eq(eng_stat(a, "mails_stored"), 1);
	cr_assert_eq(eng_mail_keys(keys, 4), 0,
		     "the object of the failed link is still there: %s",
		     keys[0]);
	eng_assert_mail(a, TMP_DIR "/" ENG_MAIL_NAME, false);
	close(fd);
	close(dir_fd);
	obox_deinit(&a);
	assert_nothing_put_back();
}
