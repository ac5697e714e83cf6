/* test_engine_folder_guid_from_dovecot.c: a maildir folder's first mail
 * names the folder (mailstore_folder_guid()) by its Dovecot mailbox GUID,
 * the G field of its dovecot-uidlist header (dovecotidx_maildir_guid()),
 * so that the two writers of a split brain, each storing the first mail
 * of a folder that was empty when they split, give it one GUID and their
 * merge finds it one folder (before, each drew a random GUID: each side
 * kept only its own mails of the folder, and a third mount got the other
 * side's back from their objects, without their flags: split-seeds
 * --ops flagsnew).  Without a usable G field: a random GUID, as before.
 * The uidlists are as Dovecot 2.3 writes them ("3 V<uidvalidity> N<next
 * uid> G<guid>", what an IMAP CREATE leaves) and damaged ones. */
#include "helper-objstore.h"
#include "bundle.h"
#include "dovecotidx.h"
#include "ids.h"
#include "mailstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define GUID "58264d20c425176b5477000083ecc375"
#define FOLDER "user@example.com/Maildir/.Projects"

static char *dir;
static int meta_fd = -1, folder_fd = -1;

static void init(void)
{
	dir = objtest_mkdtemp("folder-guid");
	cr_assert_not_null(dir);
	meta_fd = objtest_mkdir_open(dir, "meta");
	cr_assert_eq(mkdirat(meta_fd, "user@example.com", 0700), 0);
	cr_assert_eq(mkdirat(meta_fd, "user@example.com/Maildir", 0700), 0);
	cr_assert_eq(mkdirat(meta_fd, FOLDER, 0700), 0);
	folder_fd = openat(meta_fd, FOLDER, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(folder_fd, 0);
}

static void fini(void)
{
	close(folder_fd);
	close(meta_fd);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(folder_guid, .init = init, .fini = fini);

static void write_uidlist(const char *text)
{
	int fd = openat(folder_fd, "dovecot-uidlist",
			O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* the folder's GUID as its first mail makes it */
static void first_mail_guid(char guid_r[33])
{
	struct mailstore *ms = mailstore_init(NULL, NULL, NULL, meta_fd);
	char again[33], xattr[33];
	ssize_t len;

	cr_assert_not_null(ms);
	cr_assert_eq(mailstore_folder_guid(ms, FOLDER, guid_r), 0);
	cr_assert(ids_is_hex_id(guid_r) && strlen(guid_r) == IDS_HEX_LEN,
		  "%s", guid_r);
	/* kept: the next mail gets the same */
	cr_assert_eq(mailstore_folder_guid(ms, FOLDER, again), 0);
	cr_assert_str_eq(again, guid_r);
	len = fgetxattr(folder_fd, BUNDLE_XATTR_GUID, xattr, 32);
	cr_assert_eq(len, 32);
	xattr[32] = '\0';
	cr_assert_str_eq(xattr, guid_r);
	mailstore_deinit(&ms);
}

struct uidlist_case {
	char text[160];
	bool has_guid;	/* GUID is the folder's */
	char what[48];
};

ParameterizedTestParameters(folder_guid, from_the_uidlist)
{
	static struct uidlist_case cases[] = {
		{ "3 V1796679108 N1 G" GUID "\n", true, "as IMAP CREATE" },
		{ "3 V1796679108 N7 G" GUID "\n1 :1.M1P1.h\n", true,
		  "with mails" },
		{ "3 V1796679108 G" GUID " N7\n", true, "G first" },
		{ "3 V1796679108 N1 G" GUID, true, "no newline" },
		{ "3 V1796679108 N1\n", false, "no G" },
		{ "3 V1796679108 N1 G58264D20C425176B5477000083ECC375\n", false,
		  "upper case" },
		{ "3 V1796679108 N1 G58264d20c425176b5477000083ecc3\n", false,
		  "short" },
		{ "3 V1796679108 N1 G58264d20c425176b5477000083ecc37500\n",
		  false, "long" },
		{ "1 1796679108 7\n", false, "version 1" },
		{ "3\n", false, "version alone" },
		{ "", false, "empty" },
		{ "N1 G" GUID "\n", false, "no version" },
		{ "3 V1 N1\nG" GUID "\n", false, "G on line 2" },
	};

	return cr_make_param_array(struct uidlist_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct uidlist_case *c, folder_guid, from_the_uidlist)
{
	char guid[33], first[33];
	int ret;

	write_uidlist(c->text);
	ret = dovecotidx_maildir_guid(folder_fd, guid);
	cr_assert_eq(ret, c->has_guid ? 1 : 0, "%s: %d", c->what, ret);
	if (c->has_guid)
		cr_assert_str_eq(guid, GUID, "%s", c->what);
	/* the same from the bytes alone (a bundle tree's copy), in a buffer
	   of their exact size (no NUL after them: ASan sees an overread) */
	size_t len = strlen(c->text);
	unsigned char *bytes = malloc(len == 0 ? 1 : len);

	cr_assert_not_null(bytes);
	memcpy(bytes, c->text, len);
	memset(guid, 0, sizeof(guid));
	ret = dovecotidx_uidlist_guid(bytes, len, guid);
	free(bytes);
	cr_assert_eq(ret, c->has_guid ? 1 : 0, "%s (bytes): %d", c->what, ret);
	if (c->has_guid)
		cr_assert_str_eq(guid, GUID, "%s (bytes)", c->what);
	first_mail_guid(first);
	if (c->has_guid)
		cr_assert_str_eq(first, GUID, "%s", c->what);
	else
		cr_assert_str_neq(first, GUID, "%s", c->what);
}

/* no uidlist: a new random GUID for each folder */
Test(folder_guid, without_a_uidlist_a_new_one)
{
	char a[33], b[33];

	cr_assert_eq(dovecotidx_maildir_guid(folder_fd, a), 0);
	first_mail_guid(a);
	cr_assert_eq(fremovexattr(folder_fd, BUNDLE_XATTR_GUID), 0);
	first_mail_guid(b);
	cr_assert_str_neq(a, b);
}

/* a folder that has a GUID keeps it, whatever its uidlist says */
Test(folder_guid, a_folder_keeps_its_guid)
{
	char first[33], again[33];

	first_mail_guid(first);
	write_uidlist("3 V1796679108 N1 G" GUID "\n");
	first_mail_guid(again);
	cr_assert_str_eq(again, first);
	cr_assert_str_neq(again, GUID);
}

/* another folder of the user (other, relative to the tree root) has the
   uidlist's GUID: the folder gets a new one, never a second directory of
   one GUID */
static void assert_guid_not_taken_from(const char *other)
{
	char first[33];
	int fd = openat(meta_fd, other, O_RDONLY | O_DIRECTORY);

	cr_assert_geq(fd, 0, "%s", other);
	cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_GUID, GUID, 32, 0), 0);
	close(fd);
	write_uidlist("3 V1796679108 N1 G" GUID "\n");
	first_mail_guid(first);
	cr_assert_str_neq(first, GUID);
}

/* a ".Name" sibling (a copy of the folder's files) */
Test(folder_guid, a_guid_another_folder_has_is_not_taken)
{
	cr_assert_eq(mkdirat(meta_fd, "user@example.com/Maildir/.Copy", 0700),
		     0);
	assert_guid_not_taken_from("user@example.com/Maildir/.Copy");
}

/* the INBOX (the maildir root) */
Test(folder_guid, the_inbox_is_another_folder)
{
	assert_guid_not_taken_from("user@example.com/Maildir");
}
