/* test_engine_split_brain_deletes.c: through obox.h, without a mount, two
 * engines X and Y on their own cache directories serving one user of one
 * store (a split brain), as in the defect seen from outside: X expunges a
 * mail and deletes its object while Y's index still lists it.
 *  - an object that a bundle of another writer references is not deleted
 *    (objgc.h, gccheck.h); with no other writer it is;
 *  - condemned mail objects wait delete_grace seconds;
 *  - a stub whose object the other writer deleted is removed by the
 *    split-brain merge, so the merged base a third machine loads never
 *    points at a deleted object (CONTRACT section 5). */
#include "test_engine.h"
#include "bundle.h"
#include "stubattr.h"

#include <sys/xattr.h>
#include <unistd.h>

TestSuite(engine_split_brain_deletes, .init = eng_init, .fini = eng_fini,
	  .timeout = 60);

#define DIR_NEW ENG_USER "/Maildir/new"
#define NAME1 ENG_MAIL_NAME
#define NAME2 "1700000001.M2P1.host"

/* the store's mail keys: how many, and whether key is among them */
static bool store_has(const char *key)
{
	char keys[16][1024];
	unsigned int n = eng_mail_keys(keys, 16);

	for (unsigned int i = 0; i < n; i++) {
		if (strcmp(keys[i], key) == 0)
			return true;
	}
	return false;
}

/* the store key of the stub at path */
static void stub_key(struct obox *obox, const char *path, char key[1024])
{
	int fd = openat(obox_meta_fd(obox), path, O_RDONLY | O_NOFOLLOW);
	uint64_t size;
	const char *error;

	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	cr_assert_eq(bundle_stub_attr_read(fd, key, &size, &error), 1,
		     "%s has no key", path);
	close(fd);
}

/* X: the user with two mails, uploaded; the key of mail 1 */
static struct obox *x_with_two_mails(char key1[1024])
{
	struct obox *x = eng_open("cache-x");

	eng_make_user(x);
	eng_deliver(x, ENG_USER "/Maildir", NAME1, ENG_MAIL);
	eng_deliver(x, ENG_USER "/Maildir", NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	stub_key(x, DIR_NEW "/" NAME1, key1);
	cr_assert(store_has(key1));
	return x;
}

Test(engine_split_brain_deletes, expunged_mail_is_deleted_without_other_writer)
{
	char key1[1024];
	struct obox *x = x_with_two_mails(key1);

	eng_unlink(x, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_not(store_has(key1), "the expunged mail's object stays");
	cr_assert_geq(eng_stat(x, "objects_delete_checks"), 1);
	cr_assert_eq(eng_stat(x, "objects_kept_referenced"), 0);
	obox_deinit(&x);
}

Test(engine_split_brain_deletes, mail_another_writer_lists_is_kept)
{
	char key1[1024];
	struct obox *x = x_with_two_mails(key1), *y;

	/* Y takes the user over and stores bundles of its own that list
	   mail 1 (X does not know of Y) */
	y = eng_open("cache-y");
	cr_assert_eq(obox_user_load(y, ENG_USER), 0);
	eng_write_file(y, ENG_USER "/Maildir/dovecot-uidlist", "3 V1 N3\n");
	cr_assert_eq(obox_upload_now(y), 0);
	/* a diff of X's base (Y took X's chain over at its load): mail 1
	   is in X's base, which Y's chain goes on from */
	cr_assert_geq(eng_stat(y, "index_diffs_stored"), 1);

	/* X expunges mail 1: its object must stay while Y's bundle lists
	   it */
	eng_unlink(x, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert(store_has(key1), "deleted a mail another writer's index "
		  "still lists");
	cr_assert_geq(eng_stat(x, "objects_kept_referenced"), 1);
	/* and at the next flush still */
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert(store_has(key1));
	eng_assert_mail_stub(y, DIR_NEW "/" NAME1);
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_brain_deletes, condemned_mail_waits_delete_grace)
{
	char key1[1024];
	struct obox *x;

	eng_delete_grace = 2;
	x = x_with_two_mails(key1);
	eng_unlink(x, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert(store_has(key1), "deleted before delete_grace passed");
	cr_assert_eq(eng_stat(x, "objects_condemned"), 1);
	sleep(3);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_not(store_has(key1), "not deleted after delete_grace");
	cr_assert_eq(eng_stat(x, "objects_condemned"), 0);
	obox_deinit(&x);
}

Test(engine_split_brain_deletes, stub_of_mail_other_writer_deleted_goes)
{
	char key1[1024];
	struct obox *x, *y, *z;

	eng_split_check_interval = 1;
	x = x_with_two_mails(key1);
	/* Y loads the user and stores nothing yet */
	y = eng_open("cache-y");
	cr_assert_eq(obox_user_load(y, ENG_USER), 0);
	/* X expunges mail 1 and deletes its object (no bundle of Y lists
	   it) */
	eng_unlink(x, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_not(store_has(key1));
	obox_deinit(&x);

	/* Y changes something: its upload pass notices X's bundles, and
	   its stub of mail 1 has no object any more */
	eng_write_file(y, ENG_USER "/Maildir/dovecot-uidlist", "3 V1 N3\n");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_eq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_mails_dropped"), 1);
	cr_assert_neq(faccessat(obox_meta_fd(y), DIR_NEW "/" NAME1, F_OK,
				AT_SYMLINK_NOFOLLOW), 0,
		      "the stub of a deleted mail is still there");
	eng_assert_mail_stub(y, DIR_NEW "/" NAME2);
	obox_deinit(&y);

	/* a third machine sees the merged state: mail 2 only, readable */
	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert_neq(faccessat(obox_meta_fd(z), DIR_NEW "/" NAME1, F_OK,
				AT_SYMLINK_NOFOLLOW), 0,
		      "the merged index lists a deleted mail");
	eng_assert_mail_stub(z, DIR_NEW "/" NAME2);
	obox_deinit(&z);
}

/* not a split brain: an expunged mail's object waits delete_grace in the
   store; a machine loading the user meanwhile (a takeover) must not put
   it back (its bundle's watermark says it was released: bundle.h) */
Test(engine_split_brain_deletes, mail_waiting_grace_is_not_put_back_by_a_load)
{
	char key1[1024];
	struct obox *x, *z;

	eng_delete_grace = 3600;
	x = x_with_two_mails(key1);
	eng_unlink(x, DIR_NEW, NAME1);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert(store_has(key1), "deleted before delete_grace passed");
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert_neq(faccessat(obox_meta_fd(z), DIR_NEW "/" NAME1, F_OK,
				AT_SYMLINK_NOFOLLOW), 0,
		      "an expunged mail came back");
	cr_assert_eq(eng_stat(z, "index_load_mails_before_mark"), 1);
	cr_assert_eq(eng_stat(z, "index_mails_put_back"), 0);
	eng_assert_mail_stub(z, DIR_NEW "/" NAME2);
	obox_deinit(&z);
}
