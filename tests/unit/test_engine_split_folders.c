/* test_engine_split_folders.c: through obox.h, without a mount, two
 * engines X and Y on their own cache directories serve one user of one
 * store (a split brain) and change its maildir++ folders (".Name"
 * directories of the INBOX root) each in their own way; the split-brain
 * merge (splitfolders.h) keeps both sides' new folders, follows a rename
 * made on one side, removes a folder the other side deleted only if it is
 * untouched here, finds a folder empty at the split that one side renamed
 * and the other gave its first mail by its Dovecot mailbox GUID, and a
 * third machine loading the merged state sees the same. */
#include "test_engine.h"
#include "stub.h"

#include <fcntl.h>

#include <unistd.h>

TestSuite(engine_split_folders, .init = eng_init, .fini = eng_fini,
	  .timeout = 60);

#define MAILDIR ENG_USER "/Maildir"
#define NAME1 ENG_MAIL_NAME
#define NAME2 "1700000001.M2P1.host"
#define NAME3 "1700000002.M3P1.host"

static bool exists(struct obox *obox, const char *path)
{
	return faccessat(obox_meta_fd(obox), path, F_OK,
			 AT_SYMLINK_NOFOLLOW) == 0;
}

/* rm -r of a folder without mails, as a change of the user (Dovecot's
   DELETE of an empty maildir folder) */
static void remove_empty_folder(struct obox *obox, const char *folder)
{
	static const char *const subs[] = { "/cur", "/new", "/tmp", "" };
	struct ouser *user = obox_user_get(obox, ENG_USER);
	char path[1024];

	obox_change_begin(obox, user);
	for (unsigned int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), MAILDIR "/%s%s", folder, subs[i]);
		cr_assert_eq(unlinkat(obox_meta_fd(obox), path, AT_REMOVEDIR),
			     0, "rmdir(%s): %s", path, strerror(errno));
	}
	obox_change_end(user);
}

/* Dovecot's DELETE of .Old: its one mail expunged, the folder removed */
static void delete_old(struct obox *obox)
{
	eng_unlink(obox, MAILDIR "/.Old/new", NAME1);
	remove_empty_folder(obox, ".Old");
}

/* the Dovecot mailbox GUID of .Empty (its dovecot-uidlist's G field) */
#define EMPTY_DOVECOT_GUID "0123456789abcdef0123456789abcdef"

/* X and Y, both loaded from one base of: INBOX with a mail, ".Old" with
   a mail (a folder GUID), ".Empty" without mails (none; with the
   dovecot-uidlist Dovecot writes at its CREATE if uidlist) */
static void two_writers_with(struct obox **x_r, struct obox **y_r,
			     bool uidlist)
{
	eng_split_check_interval = 1;
	*x_r = eng_open("cache-x");
	eng_make_user(*x_r);
	eng_make_folder(*x_r, ".Old");
	eng_make_folder(*x_r, ".Empty");
	if (uidlist)
		eng_write_file(*x_r, MAILDIR "/.Empty/dovecot-uidlist",
			       "3 V1700000000 N1 G" EMPTY_DOVECOT_GUID "\n");
	eng_deliver(*x_r, MAILDIR, NAME1, ENG_MAIL);
	eng_deliver(*x_r, MAILDIR "/.Old", NAME1, ENG_MAIL);
	cr_assert_eq(obox_upload_now(*x_r), 0);
	*y_r = eng_open("cache-y");
	cr_assert_eq(obox_user_load(*y_r, ENG_USER), 0);
	eng_assert_mail_stub(*y_r, MAILDIR "/.Old/new/" NAME1);
	cr_assert(exists(*y_r, MAILDIR "/.Empty/cur"));
}

static void two_writers(struct obox **x_r, struct obox **y_r)
{
	two_writers_with(x_r, y_r, false);
}

/* as Dovecot's RENAME of a folder: change of the user */
static void rename_folder(struct obox *obox, const char *from, const char *to)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);

	obox_change_begin(obox, user);
	cr_assert_eq(renameat(obox_meta_fd(obox), from, obox_meta_fd(obox), to),
		     0, "rename(%s, %s): %s", from, to, strerror(errno));
	obox_change_end(user);
}

/* obox has NAME2 in .Renamed (from .Empty's first mail), no .Empty */
static void assert_renamed_with_mail(struct obox *obox)
{
	cr_assert_not(exists(obox, MAILDIR "/.Empty"));
	eng_assert_mail_stub(obox, MAILDIR "/.Renamed/new/" NAME2);
}

Test(engine_split_folders, folders_created_on_either_side_are_kept)
{
	struct obox *x, *y, *z;

	two_writers(&x, &y);
	/* X: a new empty folder and a new folder with a mail */
	eng_make_folder(x, ".Xempty");
	eng_write_file(x, MAILDIR "/.Xempty/maildirfolder", "");
	eng_make_folder(x, ".Xmails");
	eng_deliver(x, MAILDIR "/.Xmails", NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y: a new empty folder of its own */
	eng_make_folder(y, ".Yempty");
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_eq(eng_stat(y, "index_split_folders_merged"), 2);
	cr_assert(exists(y, MAILDIR "/.Xempty/cur"));
	cr_assert(exists(y, MAILDIR "/.Xempty/maildirfolder"));
	/* with the other writer's tree of it: its mail's stub */
	eng_assert_mail_stub(y, MAILDIR "/.Xmails/new/" NAME2);
	cr_assert(exists(y, MAILDIR "/.Yempty/cur"));
	cr_assert(exists(y, MAILDIR "/.Empty/cur"));
	eng_assert_mail_stub(y, MAILDIR "/.Old/new/" NAME1);

	/* X merges Y's merged state: it gets .Yempty */
	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert(exists(x, MAILDIR "/.Yempty/cur"));
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert(exists(z, MAILDIR "/.Xempty/cur"));
	cr_assert(exists(z, MAILDIR "/.Yempty/cur"));
	eng_assert_mail_stub(z, MAILDIR "/.Xmails/new/" NAME2);
	eng_assert_mail_stub(z, MAILDIR "/.Old/new/" NAME1);
	obox_deinit(&z);
}

Test(engine_split_folders, rename_there_and_mail_to_the_old_name_here)
{
	struct obox *x, *y, *z;

	two_writers(&x, &y);
	/* X renames .Old to .New */
	rename_folder(x, MAILDIR "/.Old", MAILDIR "/.New");
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y, not knowing, delivers to .Old */
	eng_deliver(y, MAILDIR "/.Old", NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_geq(eng_stat(y, "index_split_folders_merged"), 1);
	cr_assert_not(exists(y, MAILDIR "/.Old"));
	eng_assert_mail_stub(y, MAILDIR "/.New/new/" NAME1);
	eng_assert_mail_stub(y, MAILDIR "/.New/new/" NAME2);

	/* X merges: Y's mail comes into .New, .Old does not come back */
	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_not(exists(x, MAILDIR "/.Old"));
	eng_assert_mail_stub(x, MAILDIR "/.New/new/" NAME2);
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert_not(exists(z, MAILDIR "/.Old"));
	eng_assert_mail_stub(z, MAILDIR "/.New/new/" NAME1);
	eng_assert_mail_stub(z, MAILDIR "/.New/new/" NAME2);
	obox_deinit(&z);
}

Test(engine_split_folders, folder_deleted_there_and_untouched_here_goes)
{
	struct obox *x, *y, *z;

	two_writers(&x, &y);
	remove_empty_folder(x, ".Empty");
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y changes something else */
	eng_deliver(y, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_eq(eng_stat(y, "index_split_folders_merged"), 1);
	cr_assert_not(exists(y, MAILDIR "/.Empty"));
	eng_assert_mail_stub(y, MAILDIR "/new/" NAME2);
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	cr_assert_not(exists(z, MAILDIR "/.Empty"));
	obox_deinit(&z);
}

Test(engine_split_folders, folder_deleted_there_and_changed_here_stays)
{
	struct obox *x, *y;

	two_writers(&x, &y);
	remove_empty_folder(x, ".Empty");
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y writes into .Empty (Dovecot's index of it) */
	eng_write_file(y, MAILDIR "/.Empty/dovecot-uidlist", "3 V1 N1\n");
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_eq(eng_stat(y, "index_split_folders_merged"), 0);
	cr_assert(exists(y, MAILDIR "/.Empty/dovecot-uidlist"));

	/* X, which deleted it, takes it back: changed on the other side */
	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert(exists(x, MAILDIR "/.Empty/dovecot-uidlist"));
	obox_deinit(&y);
	obox_deinit(&x);
}

Test(engine_split_folders, folder_deleted_here_and_untouched_there_stays_gone)
{
	struct obox *x, *y;

	two_writers(&x, &y);
	/* X changes something else; Y deletes .Empty */
	eng_deliver(x, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	remove_empty_folder(y, ".Empty");
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	cr_assert_not(exists(y, MAILDIR "/.Empty"));
	eng_assert_mail_stub(y, MAILDIR "/new/" NAME2);
	obox_deinit(&y);
	obox_deinit(&x);
}

/* a "folder" below a mail directory (cur/, new/, tmp/, dbox-Mails/) in
   the other writer's tree is no folder: not made here */
Test(engine_split_folders, no_folder_below_a_mail_directory)
{
	struct obox *x, *y;

	two_writers(&x, &y);
	eng_mkdir(x, MAILDIR "/cur/.odd");
	eng_mkdir(x, MAILDIR "/cur/.odd/cur");
	eng_make_folder(x, ".Fine");
	cr_assert_eq(obox_upload_now(x), 0);
	eng_deliver(y, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_eq(eng_stat(y, "index_split_folders_merged"), 1);
	cr_assert(exists(y, MAILDIR "/.Fine/cur"));
	cr_assert_not(exists(y, MAILDIR "/cur/.odd"));
	obox_deinit(&y);
	obox_deinit(&x);
}

/* a folder deleted here is made again when the other writer changed a
   mail of it (a flag), even once both rebased their user roots: what
   this machine had when it deleted it tells */
Test(engine_split_folders, folder_deleted_here_and_flagged_there_comes_back)
{
	struct obox *x, *y;

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	/* Y deletes .Old with its mail, and rebases */
	delete_old(y);
	eng_write_big_file(y, MAILDIR "/dovecot.index.cache");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_not(exists(y, MAILDIR "/.Old"));
	/* X changes .Old's mail and rebases too */
	cr_assert_eq(eng_rename(x, MAILDIR "/.Old/new", NAME1,
				MAILDIR "/.Old/cur", NAME1 ":2,F"), 0);
	eng_write_big_file(x, MAILDIR "/dovecot.index.cache");
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y deleted the base X's diff of .Old applies to (no diff of X was
	   there yet): X's check finds its base gone and stores a new one */
	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	usleep(1100000);	/* Y checks a root at most once a second */
	eng_deliver(y, MAILDIR, NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);

	cr_assert_geq(eng_stat(y, "index_split_brains"), 1);
	eng_assert_mail_stub(y, MAILDIR "/.Old/cur/" NAME1 ":2,F");
	obox_deinit(&y);
	obox_deinit(&x);
}

/* a folder deleted here stays gone when the other writer only rewrote
   its index files (a SELECT there), even with a base of its own */
Test(engine_split_folders, folder_deleted_here_and_reindexed_there_stays_gone)
{
	struct obox *x, *y;

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	delete_old(x);
	cr_assert_eq(obox_upload_now(x), 0);
	/* Y rewrites .Old's index: a diff of X's gone base, then a base */
	eng_write_big_file(y, MAILDIR "/.Old/dovecot.index.cache");
	cr_assert_eq(obox_upload_now(y), 0);
	usleep(1100000);
	cr_assert_eq(obox_upload_now(y), 0);
	for (unsigned int round = 0; round < 2; round++) {
		usleep(1100000);
		eng_deliver(x, MAILDIR, round == 0 ? NAME2 : NAME3, ENG_MAIL);
		cr_assert_eq(obox_upload_now(x), 0);
		cr_assert_not(exists(x, MAILDIR "/.Old"),
			      "a folder only reindexed there came back");
	}
	obox_deinit(&y);
	obox_deinit(&x);
}

/* the number of .Old's bundles in the store (folder_guid: its GUID) */
static unsigned int folder_bundles(const char *folder_guid)
{
	char pattern[256], keys[16][1024];

	snprintf(pattern, sizeof(pattern), "/mailboxes/%s/idx/bundle\\.",
		 folder_guid);
	return eng_store_keys(pattern, keys, 16);
}

/* .Old's GUID: its mail's key, from its stub on obox */
static void old_guid(struct obox *obox, char guid[33])
{
	struct stub stub;
	struct stat st;
	int fd = openat(obox_meta_fd(obox), MAILDIR "/.Old/new/" NAME1,
			O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s", strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &stub), 1);
	close(fd);
	eng_key_guid(stub.key, guid);
}

/* .Old on X and on a third machine, after Y's change of it merged: its
   mail from the base (which X had released) and Y's new one */
static void assert_old_came_back(struct obox *x, struct obox *y)
{
	cr_assert(exists(x, MAILDIR "/.Old/cur"));
	eng_assert_mail_stub(x, MAILDIR "/.Old/new/" NAME1);
	eng_assert_mail_stub(x, MAILDIR "/.Old/new/" NAME2);
	cr_assert_geq(eng_stat(x, "index_split_folders_merged"), 1);
	obox_deinit(&y);
	obox_deinit(&x);
	eng_delete_grace = 0;
	struct obox *z = eng_open("cache-z");

	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	eng_assert_mail_stub(z, MAILDIR "/.Old/new/" NAME1);
	eng_assert_mail_stub(z, MAILDIR "/.Old/new/" NAME2);
	obox_deinit(&z);
}

/* X deletes .Old after Y went on with diffs of X's base of it: X's check
   of the folders it deleted (Y changed no other root) reads Y's chain
   (X's base, held while Y's diff applies to it: objgc.h) and brings
   .Old back with both mails, the one it released revived */
Test(engine_split_folders, folder_deleted_here_after_a_change_there_comes_back)
{
	struct obox *x, *y;
	char guid[33];

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	old_guid(x, guid);
	/* Y delivers to .Old: a diff of X's base (its parent root, the
	   INBOX's, unchanged) */
	eng_deliver(y, MAILDIR "/.Old", NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);
	/* X deletes .Old with its mail */
	delete_old(x);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_geq(folder_bundles(guid), 1);
	assert_old_came_back(x, y);
}

/* X deletes .Old and deletes its bundles before Y stores anything: Y's
   diffs of that base cannot be read, so Y's next upload stores a new
   base of .Old; X's merge then brings .Old back from it */
Test(engine_split_folders, folder_deleted_here_before_a_change_there_comes_back)
{
	struct obox *x, *y;
	char guid[33];

	eng_delete_grace = 3600;
	two_writers(&x, &y);
	old_guid(x, guid);
	delete_old(x);
	cr_assert_eq(obox_upload_now(x), 0);
	cr_assert_eq(folder_bundles(guid), 0);
	/* Y delivers to .Old: a diff of the gone base, then a new base;
	   and, as Dovecot does, updates its mailbox list index in the
	   parent root (the merge of that root brings .Old back) */
	eng_deliver(y, MAILDIR "/.Old", NAME2, ENG_MAIL);
	eng_write_file(y, MAILDIR "/dovecot.list.index", "Y's list");
	cr_assert_eq(obox_upload_now(y), 0);
	usleep(1100000);
	cr_assert_eq(obox_upload_now(y), 0);
	char keys[4][1024], pattern[256];

	snprintf(pattern, sizeof(pattern), "/mailboxes/%s/idx/bundle\\.[^-]+$",
		 guid);
	cr_assert_geq(eng_store_keys(pattern, keys, 4), 1,
		      "Y stored a new base of .Old");
	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	assert_old_came_back(x, y);
}

/* .Empty held no mail at the split, so no folder GUID is in the base:
   X renames it, Y delivers its first mail under the old name.  Dovecot's
   mailbox GUID (in both sides' dovecot-uidlist) makes it one folder: Y
   follows X's rename, X gives its .Renamed Y's folder GUID and takes the
   mail in; nothing stays under the old name */
Test(engine_split_folders, empty_folder_renamed_there_first_mail_here)
{
	struct obox *x, *y, *z;

	two_writers_with(&x, &y, true);
	rename_folder(x, MAILDIR "/.Empty", MAILDIR "/.Renamed");
	cr_assert_eq(obox_upload_now(x), 0);
	eng_deliver(y, MAILDIR "/.Empty", NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_split_folders_merged"), 1);
	assert_renamed_with_mail(y);

	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	usleep(1100000);
	cr_assert_eq(obox_upload_now(x), 0);
	assert_renamed_with_mail(x);
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	assert_renamed_with_mail(z);
	obox_deinit(&z);
}

/* the same, the other way round: the side that renamed merges first */
Test(engine_split_folders, empty_folder_renamed_here_first_mail_there)
{
	struct obox *x, *y, *z;

	two_writers_with(&x, &y, true);
	eng_deliver(x, MAILDIR "/.Empty", NAME2, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	rename_folder(y, MAILDIR "/.Empty", MAILDIR "/.Renamed");
	cr_assert_eq(obox_upload_now(y), 0);
	cr_assert_geq(eng_stat(y, "index_split_folders_merged"), 1);
	usleep(1100000);
	cr_assert_eq(obox_upload_now(y), 0);
	assert_renamed_with_mail(y);

	usleep(1100000);
	eng_deliver(x, MAILDIR, NAME3, ENG_MAIL);
	cr_assert_eq(obox_upload_now(x), 0);
	assert_renamed_with_mail(x);
	obox_deinit(&y);
	obox_deinit(&x);

	z = eng_open("cache-z");
	cr_assert_eq(obox_user_load(z, ENG_USER), 0);
	assert_renamed_with_mail(z);
	obox_deinit(&z);
}
