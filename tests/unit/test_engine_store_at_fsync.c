/* test_engine_store_at_fsync.c: through obox.h, without a mount: a mail
 * Dovecot writes in a maildir tmp/ and fsync()s (obox_fsync_mail()) is
 * stored then, with store_on_fsync, as one object of its folder; the
 * rename into new/ or cur/ that follows keeps that object and sends no
 * request.  A tmp/ file stored so and then unlinked (an aborted save) or
 * rewritten has its object deleted at once; a failed store is EIO with
 * nothing left behind; a takeover puts a tmp-stored mail back into new/;
 * with store_on_fsync off the rename stores, as before. */
#include "test_engine.h"
#include "stub.h"

#include <sys/xattr.h>

TestSuite(engine_store_at_fsync, .init = eng_init, .fini = eng_fini);

#define INBOX ENG_USER "/Maildir"
#define TMP INBOX "/tmp"
#define NEW INBOX "/new"
#define CUR INBOX "/cur"
#define SEEN_NAME ENG_MAIL_NAME ":2,S"
#define OTHER_MAIL "From: b@example.com\r\n\r\nanother body, longer\r\n"

/* rewrite path (a stub or not) with content as a front end does: open
   with O_TRUNC, then a write through the engine */
static void sf_rewrite(struct obox *obox, const char *path,
		       const char *content)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);
	size_t len = strlen(content);
	int fd, mail_fd, err;
	bool written;
	ino_t ino;

	obox_change_begin(obox, user);
	fd = openat(obox_meta_fd(obox), path, O_RDWR | O_TRUNC);
	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	err = obox_open_setup(obox, fd, O_RDWR | O_TRUNC, &mail_fd, &written);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(mail_fd, -1);
	cr_assert_eq(obox_write_begin(obox, fd, &ino), 0, "%s",
		     strerror(errno));
	cr_assert_eq(pwrite(fd, content, len, 0), (ssize_t)len);
	obox_write_end(obox, ino);
	obox_touched(user, ino);
	obox_change_end(user);
	close(fd);
}

/* is path marked as a stub whose object never had a mail name? */
static bool sf_unnamed(struct obox *obox, const char *path)
{
	char proc[64];
	int fd = openat(obox_meta_fd(obox), path, O_PATH | O_NOFOLLOW);
	ssize_t ret;

	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ret = getxattr(proc, STUB_XATTR_UNNAMED, NULL, 0);
	close(fd);
	return ret >= 0;
}

static bool sf_exists(struct obox *obox, const char *path)
{
	struct stat st;

	return fstatat(obox_meta_fd(obox), path, &st,
		       AT_SYMLINK_NOFOLLOW) == 0;
}

/* written in tmp/ and fsynced: the mail is stored and tmp/ holds its stub */
static void sf_write_and_fsync(struct obox *obox, char key_r[1024])
{
	char keys[4][1024];
	uint64_t puts = eng_stat(obox, "requests_put");
	int err;

	eng_write_file(obox, TMP "/" ENG_MAIL_NAME, ENG_MAIL);
	err = eng_fsync(obox, TMP, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "fsync: %s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), puts + 1);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	snprintf(key_r, 1024, "%s", keys[0]);
	eng_assert_mail_stub(obox, TMP "/" ENG_MAIL_NAME);
	cr_assert(sf_unnamed(obox, TMP "/" ENG_MAIL_NAME));
}

Test(engine_store_at_fsync, fsync_stores_and_rename_to_new_is_local)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024], *data;
	struct objstore_stat st;
	size_t len;
	int err;

	eng_make_user(obox);
	sf_write_and_fsync(obox, key);
	cr_assert_eq(eng_stat(obox, "mails_stored_at_fsync"), 1);
	cr_assert_eq(eng_stat(obox, "mails_stored"), 1);
	data = eng_get_object(key, &len);
	cr_assert_str_eq(data, ENG_MAIL);
	free(data);
	/* the object says where it was stored: tmp/, under its name */
	cr_assert_eq(objstore_head(eng_store, key, &st), 0);
	cr_assert_str_eq(objstore_stat_meta(&st, "path"), "Maildir/tmp");
	cr_assert_str_eq(objstore_stat_meta(&st, "name"), ENG_MAIL_NAME);
	objstore_stat_free(&st);
	/* a second fsync stores nothing */
	cr_assert_eq(eng_fsync(obox, TMP, ENG_MAIL_NAME), 0);
	cr_assert_eq(eng_stat(obox, "requests_put"), 1);

	/* the delivery's rename: no request, the same object, no mark */
	uint64_t requests = eng_stat(obox, "requests_put") +
		eng_stat(obox, "requests_delete") +
		eng_stat(obox, "requests_head") +
		eng_stat(obox, "requests_get");

	err = eng_rename(obox, TMP, ENG_MAIL_NAME, NEW, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put") +
		     eng_stat(obox, "requests_delete") +
		     eng_stat(obox, "requests_head") +
		     eng_stat(obox, "requests_get"), requests,
		     "the rename sent a request");
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_str_eq(keys[0], key);
	eng_assert_mail_stub(obox, NEW "/" ENG_MAIL_NAME);
	cr_assert_not(sf_unnamed(obox, NEW "/" ENG_MAIL_NAME));
	cr_assert_not(sf_exists(obox, TMP "/" ENG_MAIL_NAME));
	cr_assert_eq(eng_stat(obox, "mails_stored"), 1);
	cr_assert_eq(eng_stat(obox, "objects_released"), 0);

	/* from then on an ordinary mail: new/ -> cur/ is free, an expunge
	   releases (not deletes) its object */
	err = eng_rename(obox, NEW, ENG_MAIL_NAME, CUR, SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 1);
	eng_unlink(obox, CUR, SEEN_NAME);
	cr_assert_eq(eng_stat(obox, "objects_released"), 1);
	cr_assert_eq(eng_stat(obox, "mails_unnamed_discarded"), 0);
	cr_assert_eq(eng_mail_keys(keys, 4), 1, "deleted before a bundle");
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, rename_to_cur_with_flags_is_local)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024];
	int err;

	eng_make_user(obox);
	sf_write_and_fsync(obox, key);
	err = eng_rename(obox, TMP, ENG_MAIL_NAME, CUR, SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 1);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_str_eq(keys[0], key);
	eng_assert_mail_stub(obox, CUR "/" SEEN_NAME);
	cr_assert_not(sf_unnamed(obox, CUR "/" SEEN_NAME));
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, unlink_after_fsync_deletes_the_object)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024];

	eng_make_user(obox);
	sf_write_and_fsync(obox, key);
	/* Dovecot aborted the save */
	eng_unlink(obox, TMP, ENG_MAIL_NAME);
	cr_assert_eq(eng_mail_keys(keys, 4), 0, "the object is left");
	cr_assert_eq(eng_stat(obox, "requests_delete"), 1);
	cr_assert_eq(eng_stat(obox, "mails_unnamed_discarded"), 1);
	cr_assert_eq(eng_stat(obox, "objects_released"), 0);
	/* nothing is left for a takeover to put back */
	obox_deinit(&obox);
	obox = eng_open("cache-b");
	cr_assert_eq(obox_user_load(obox, ENG_USER), ENOENT);
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, replaced_after_fsync_deletes_the_object)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024];
	int err;

	eng_make_user(obox);
	sf_write_and_fsync(obox, key);
	/* another file renamed over the tmp/ name */
	eng_write_file(obox, INBOX "/other", "x");
	err = eng_rename(obox, INBOX, "other", TMP, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_mail_keys(keys, 4), 0, "the object is left");
	cr_assert_eq(eng_stat(obox, "mails_unnamed_discarded"), 1);
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, written_after_fsync_is_stored_again_by_rename)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024], *data;
	size_t len;
	int err;

	eng_make_user(obox);
	sf_write_and_fsync(obox, key);
	sf_rewrite(obox, TMP "/" ENG_MAIL_NAME, OTHER_MAIL);
	/* a plain file again, its old object kept until the new content is
	   stored */
	cr_assert_eq(eng_stub_size(obox, TMP "/" ENG_MAIL_NAME,
				   &(uint64_t){ 0 }), 0);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);

	err = eng_rename(obox, TMP, ENG_MAIL_NAME, NEW, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 2);
	/* the new content is the one object; the fsync's went at once */
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_str_neq(keys[0], key);
	data = eng_get_object(keys[0], &len);
	cr_assert_str_eq(data, OTHER_MAIL);
	free(data);
	cr_assert_eq(eng_stat(obox, "mails_unnamed_discarded"), 1);
	cr_assert_eq(eng_stat(obox, "objects_released"), 0);
	cr_assert_eq(eng_stub_size(obox, NEW "/" ENG_MAIL_NAME,
				   &(uint64_t){ 0 }), 1);
	cr_assert_not(sf_unnamed(obox, NEW "/" ENG_MAIL_NAME));
	/* and it is named: an expunge releases it */
	eng_unlink(obox, NEW, ENG_MAIL_NAME);
	cr_assert_eq(eng_stat(obox, "objects_released"), 1);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, written_after_fsync_then_fsynced_again)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024];
	int err;

	eng_make_user(obox);
	sf_write_and_fsync(obox, key);
	sf_rewrite(obox, TMP "/" ENG_MAIL_NAME, OTHER_MAIL);
	cr_assert_eq(eng_fsync(obox, TMP, ENG_MAIL_NAME), 0);
	cr_assert_eq(eng_stat(obox, "requests_put"), 2);
	cr_assert_eq(eng_stat(obox, "mails_stored_at_fsync"), 2);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_str_neq(keys[0], key);
	cr_assert(sf_unnamed(obox, TMP "/" ENG_MAIL_NAME));
	snprintf(key, sizeof(key), "%s", keys[0]);
	err = eng_rename(obox, TMP, ENG_MAIL_NAME, NEW, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 2);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_str_eq(keys[0], key);
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, store_failure_is_eio_and_leaves_nothing)
{
	struct obox *obox;
	char keys[4][1024];
	int err;

	eng_fault = "ops=put;error=permanent";
	obox = eng_open("cache");
	eng_make_user(obox);
	eng_write_file(obox, TMP "/" ENG_MAIL_NAME, ENG_MAIL);
	err = eng_fsync(obox, TMP, ENG_MAIL_NAME);
	cr_assert_eq(err, EIO, "fsync: %s", strerror(err));
	cr_assert_eq(eng_mail_keys(keys, 4), 0);
	cr_assert_eq(eng_stat(obox, "mails_stored_at_fsync"), 0);
	/* the file is as written, no stub, no mark */
	eng_assert_mail(obox, TMP "/" ENG_MAIL_NAME, false);
	cr_assert_not(sf_unnamed(obox, TMP "/" ENG_MAIL_NAME));
	/* Dovecot unlinks it: nothing to delete */
	eng_unlink(obox, TMP, ENG_MAIL_NAME);
	cr_assert_eq(eng_stat(obox, "requests_delete"), 0);
	obox_deinit(&obox);
}

/* the fsync's store failed, the rename's works: stored by the rename */
Test(engine_store_at_fsync, rename_stores_when_the_fsync_did_not)
{
	struct obox *obox;
	char keys[4][1024];
	int err;

	eng_fault = "ops=put;error=permanent;rate=1;fail_after=0";
	obox = eng_open("cache");
	eng_make_user(obox);
	eng_write_file(obox, TMP "/" ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(eng_fsync(obox, TMP, ENG_MAIL_NAME), EIO);
	obox_deinit(&obox);

	/* the same cache, the store working again (a new engine, as a
	   restarted daemon): the rename stores */
	eng_fault = NULL;
	obox = eng_open("cache");
	err = eng_rename(obox, TMP, ENG_MAIL_NAME, NEW, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 1);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	eng_assert_mail_stub(obox, NEW "/" ENG_MAIL_NAME);
	obox_deinit(&obox);
}

Test(engine_store_at_fsync, takeover_puts_it_back_into_new)
{
	struct obox *a = eng_open("cache-a"), *b;
	char key[1024];
	struct stat st;
	int err;

	/* stored at fsync and renamed into cur/ with flags, never uploaded
	   (the engine was not started): a crash before any bundle */
	eng_make_user(a);
	sf_write_and_fsync(a, key);
	err = eng_rename(a, TMP, ENG_MAIL_NAME, CUR, SEEN_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	obox_deinit(&a);

	b = eng_open("cache-b");
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert_eq(eng_stat(b, "index_mails_put_back"), 1);
	/* back in new/ under its tmp/ name (Dovecot finds its flags
	   gone, as with any index change after the last upload) */
	eng_assert_mail_stub(b, NEW "/" ENG_MAIL_NAME);
	cr_assert_neq(fstatat(obox_meta_fd(b), TMP "/" ENG_MAIL_NAME, &st,
			      AT_SYMLINK_NOFOLLOW), 0);
	obox_deinit(&b);
}

Test(engine_store_at_fsync, off_stores_at_rename)
{
	struct obox *obox;
	char keys[4][1024];
	struct objstore_stat st;
	int err;

	eng_store_on_fsync = false;
	obox = eng_open("cache");
	eng_make_user(obox);
	eng_write_file(obox, TMP "/" ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(eng_fsync(obox, TMP, ENG_MAIL_NAME), 0);
	cr_assert_eq(eng_stat(obox, "requests_put"), 0);
	eng_assert_mail(obox, TMP "/" ENG_MAIL_NAME, false);
	err = eng_rename(obox, TMP, ENG_MAIL_NAME, NEW, ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 1);
	cr_assert_eq(eng_stat(obox, "mails_stored_at_fsync"), 0);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_eq(objstore_head(eng_store, keys[0], &st), 0);
	cr_assert_str_eq(objstore_stat_meta(&st, "path"), "Maildir/new");
	objstore_stat_free(&st);
	obox_deinit(&obox);
}

/* a tmp/ stub moved into another folder is stored for it; the tmp
   object, never named, goes at once */
Test(engine_store_at_fsync, rename_into_another_folder_relocates)
{
	struct obox *obox = eng_open("cache");
	char key[1024], keys[4][1024];
	int err;

	eng_make_user(obox);
	eng_make_folder(obox, ".Sent");
	sf_write_and_fsync(obox, key);
	err = eng_rename(obox, TMP, ENG_MAIL_NAME, INBOX "/.Sent/new",
			 ENG_MAIL_NAME);
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(obox, "requests_put"), 2);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	cr_assert_str_neq(keys[0], key);
	cr_assert_eq(eng_stat(obox, "mails_unnamed_discarded"), 1);
	eng_assert_mail_stub(obox, INBOX "/.Sent/new/" ENG_MAIL_NAME);
	cr_assert_not(sf_unnamed(obox, INBOX "/.Sent/new/" ENG_MAIL_NAME));
	obox_deinit(&obox);
}

/* a file that is no maildir tmp/ entry is not stored at fsync */
Test(engine_store_at_fsync, only_maildir_tmp)
{
	struct obox *obox = eng_open("cache");

	eng_make_user(obox);
	eng_write_file(obox, INBOX "/dovecot-uidlist", "3 V1 N2\n");
	cr_assert_eq(eng_fsync(obox, INBOX, "dovecot-uidlist"), 0);
	eng_mkdir(obox, INBOX "/tmpx");
	eng_write_file(obox, INBOX "/tmpx/m", ENG_MAIL);
	cr_assert_eq(eng_fsync(obox, INBOX "/tmpx", "m"), 0);
	/* a tmp/ file with another name (a hard link) is left to its
	   rename: it may be a named mail */
	eng_write_file(obox, TMP "/a", ENG_MAIL);
	cr_assert_eq(linkat(obox_meta_fd(obox), TMP "/a", obox_meta_fd(obox),
			    TMP "/b", 0), 0);
	cr_assert_eq(eng_fsync(obox, TMP, "a"), 0);
	cr_assert_eq(eng_stat(obox, "requests_put"), 0);
	obox_deinit(&obox);
}
