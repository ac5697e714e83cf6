/* test_engine_missing_mail.c: through obox.h, without a mount, a stub
 * whose object the store does not have (mailmissing.h): with
 * missing_mails=eio its open fails with EIO and is counted; with drop the
 * open says ENODATA and obox_mail_drop() removes the name once a HEAD
 * confirms the object is gone (a fresh machine then has no such mail),
 * but keeps it when the object is there after all (a GET that failed). */
#include "test_engine.h"

TestSuite(engine_missing_mail, .init = eng_init, .fini = eng_fini,
	  .timeout = 60);

#define DIR_NEW ENG_USER "/Maildir/new"
#define PATH DIR_NEW "/" ENG_MAIL_NAME

/* a user with one mail, uploaded; the mail's object deleted from the
   store if lose; the engine that made it is gone */
static void make_mail(bool lose)
{
	struct obox *a = eng_open("cache-a");
	char keys[4][1024];

	eng_make_user(a);
	eng_deliver(a, ENG_USER "/Maildir", ENG_MAIL_NAME, ENG_MAIL);
	cr_assert_eq(obox_upload_now(a), 0);
	obox_deinit(&a);
	cr_assert_eq(eng_mail_keys(keys, 4), 1);
	if (lose)
		cr_assert_eq(objstore_delete(eng_store, keys[0]), 0);
}

/* obox_open_setup() of PATH on obox (a fresh cache: fetched from the
   store); the metacache fd in *fd_r */
static int open_mail(struct obox *obox, int *fd_r)
{
	int mail_fd = -1, err;
	bool written;

	cr_assert_eq(obox_user_load(obox, ENG_USER), 0);
	*fd_r = openat(obox_meta_fd(obox), PATH, O_RDONLY);
	cr_assert_geq(*fd_r, 0, "open(%s): %s", PATH, strerror(errno));
	err = obox_open_setup(obox, *fd_r, O_RDONLY, &mail_fd, &written);
	if (mail_fd >= 0)
		close(mail_fd);
	return err;
}

Test(engine_missing_mail, eio_for_that_mail)
{
	struct obox *b;
	int fd;

	make_mail(true);
	b = eng_open("cache-b");
	cr_assert_eq(open_mail(b, &fd), EIO);
	close(fd);
	cr_assert_eq(eng_stat(b, "mails_missing"), 1);
	/* again: still EIO, counted again; the stub stays */
	cr_assert_eq(open_mail(b, &fd), EIO);
	close(fd);
	cr_assert_eq(eng_stat(b, "mails_missing"), 2);
	cr_assert_eq(faccessat(obox_meta_fd(b), PATH, F_OK,
			       AT_SYMLINK_NOFOLLOW), 0);
	obox_deinit(&b);
}

Test(engine_missing_mail, drop_removes_the_mail)
{
	struct obox *b, *c;
	int fd, dir_fd;

	eng_missing_mails = OBOX_MISSING_MAILS_DROP;
	make_mail(true);
	b = eng_open("cache-b");
	cr_assert_eq(open_mail(b, &fd), ENODATA);
	dir_fd = openat(obox_meta_fd(b), DIR_NEW, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir_fd, 0);
	obox_change_begin(b, obox_user_get(b, ENG_USER));
	cr_assert_eq(obox_mail_drop(b, dir_fd, ENG_MAIL_NAME, fd), ENOENT);
	obox_change_end(obox_user_get(b, ENG_USER));
	close(fd);
	close(dir_fd);
	cr_assert_neq(faccessat(obox_meta_fd(b), PATH, F_OK,
				AT_SYMLINK_NOFOLLOW), 0, "the stub stayed");
	cr_assert_eq(eng_stat(b, "mails_missing_dropped"), 1);
	cr_assert_eq(obox_upload_now(b), 0);
	obox_deinit(&b);

	/* the drop was uploaded: another machine has no such mail */
	c = eng_open("cache-c");
	cr_assert_eq(obox_user_load(c, ENG_USER), 0);
	cr_assert_neq(faccessat(obox_meta_fd(c), PATH, F_OK,
				AT_SYMLINK_NOFOLLOW), 0);
	obox_deinit(&c);
}

Test(engine_missing_mail, drop_keeps_a_mail_the_store_has)
{
	struct obox *b;
	int fd, dir_fd;

	eng_missing_mails = OBOX_MISSING_MAILS_DROP;
	make_mail(false);
	/* every GET says "not found", HEAD finds the object */
	eng_fault = "ops=get;error=notfound";
	b = eng_open("cache-b");
	cr_assert_eq(open_mail(b, &fd), ENODATA);
	dir_fd = openat(obox_meta_fd(b), DIR_NEW, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir_fd, 0);
	cr_assert_eq(obox_mail_drop(b, dir_fd, ENG_MAIL_NAME, fd), EIO);
	close(fd);
	close(dir_fd);
	cr_assert_eq(faccessat(obox_meta_fd(b), PATH, F_OK,
			       AT_SYMLINK_NOFOLLOW), 0, "a stored mail went");
	cr_assert_eq(eng_stat(b, "mails_missing_dropped"), 0);
	obox_deinit(&b);
}
