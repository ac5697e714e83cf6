/* test_engine_putback_sdbox_uids.c: a mail put back into an sdbox folder
 * (putback.c) never takes a UID Dovecot gave there before.  Dovecot's own
 * imap process makes the folder (tests/fixtures/sdbox-uids.sh: UIDs 1-5
 * appended, 4 and 5 expunged, so u.4 and u.5 are gone but next_uid is 6):
 * dovecotidx.c reads 6 from its files; a put-back mail named u.4 (the
 * other writer's UID 4 of a split brain) becomes u.6, not u.4, which a
 * client saw expunged.  Hand-made logs, damaged ones among them, check
 * the reader's bounds. */
#include "helper-objstore.h"
#include "dovecotfmt.h"
#include "dovecotidx.h"
#include "keys.h"
#include "putback.h"
#include "stub.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define USER "user@example.com"
#define GUID "00d7d12ea08a3153175e0000dfbea952"
#define MAILS_PATH "sdbox/mailboxes/INBOX/dbox-Mails"

static char *tmp;
static struct objstore *store;
static int folder_fd = -1, mails_fd = -1;

/* the folder as Dovecot leaves it: appends mails, expunge_set expunged */
static void dovecot_folder(const char *appends, const char *expunge_set)
{
	char script[4096], dir[4096];
	const char *src = getenv("OBOXFS_SOURCE_DIR");
	int status;
	pid_t pid;

	cr_assert_not_null(src, "OBOXFS_SOURCE_DIR is not set (run the test "
			   "through ctest)");
	snprintf(script, sizeof(script), "%s/tests/fixtures/sdbox-uids.sh",
		 src);
	snprintf(dir, sizeof(dir), "%s/sdbox", tmp);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execl(script, script, dir, appends, expunge_set, (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "%s failed (status %d)", script, status);
	snprintf(dir, sizeof(dir), "%s/sdbox/mailboxes/INBOX", tmp);
	folder_fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(folder_fd, 0, "%s", dir);
	mails_fd = openat(folder_fd, "dbox-Mails", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(mails_fd, 0);
}

static void init(void)
{
	struct objstore_settings set = { 0 };

	tmp = objtest_mkdtemp("sdbox-uids");
	cr_assert_not_null(tmp);
	/* Dovecot's process (user nobody) goes through it */
	cr_assert_eq(chmod(tmp, 0755), 0);
	store = objtest_open_posix_store(tmp, &set);
}

static void fini(void)
{
	if (mails_fd >= 0)
		close(mails_fd);
	if (folder_fd >= 0)
		close(folder_fd);
	objstore_deinit(&store);
	objtest_rm_rf(tmp);
	free(tmp);
}

TestSuite(putback_sdbox_uids, .init = init, .fini = fini);

/* put the mail object oid (sdbox name name) back into the folder; the
   name it got into name_r */
static void put_back(const char *oid, const char *name,
		     char name_r[MAILPATH_NAME_MAX + 1])
{
	struct objstore_meta meta[2] = {
		{ "path", MAILS_PATH }, { "name", name },
	};
	char key[OBJSTORE_KEY_MAX + 1], renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	struct stub stub;
	struct stat st;
	int fd;

	cr_assert_eq(keys_mail_key(USER, GUID, oid, key, sizeof(key)), 0);
	cr_assert_eq(objstore_put(store, key, "hello", 5, meta, 2), 0, "%s",
		     objstore_error());
	cr_assert_eq(putback_head(store, key, "test", &mail), 1);
	cr_assert_eq(putback_create(folder_fd, &mail, key, &stage, renamed), 1,
		     "putback_create(%s): %s", name, strerror(errno));
	putback_mail_free(&mail);
	snprintf(name_r, MAILPATH_NAME_MAX + 1, "%s",
		 renamed[0] != '\0' ? renamed : name);
	fd = openat(mails_fd, name_r, O_RDONLY | O_NOFOLLOW);
	cr_assert_geq(fd, 0, "%s", name_r);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &stub), 1);
	cr_assert_str_eq(stub.key, key);
	close(fd);
}

static bool exists(const char *name)
{
	struct stat st;

	return fstatat(mails_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Test(putback_sdbox_uids, dovecot_files_give_the_next_uid)
{
	uint32_t next = 0;

	dovecot_folder("5", "4:5");
	cr_assert(exists("u.3") && !exists("u.4") && !exists("u.5"));
	cr_assert_eq(dovecotidx_next_uid(mails_fd, &next), 0);
	cr_assert_eq(next, 6, "next UID %u, Dovecot's is 6", next);
}

Test(putback_sdbox_uids, an_expunged_uid_is_not_given_again)
{
	char name[MAILPATH_NAME_MAX + 1];

	dovecot_folder("5", "4:5");
	/* UID 4 was given here and expunged: the mail gets 6 */
	put_back("d88ff1001d4bf753a1b800001accfe22", "u.4", name);
	cr_assert_str_eq(name, "u.6");
	cr_assert_not(exists("u.4"));
	/* a UID above every one given here keeps its name */
	put_back("6b166fb420e21c404de86fa495146961", "u.7", name);
	cr_assert_str_eq(name, "u.7");
	/* a UID another mail has: the next free one */
	put_back("1f0c5e1a7c2d3b4a59687766554433ab", "u.2", name);
	cr_assert_str_eq(name, "u.8");
}

static void empty_folder(void)
{
	folder_fd = objtest_mkdir_open(tmp, "INBOX");
	cr_assert_eq(mkdirat(folder_fd, "dbox-Mails", 0700), 0);
	mails_fd = openat(folder_fd, "dbox-Mails", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(mails_fd, 0);
}

/* a folder with no index (made from its mails alone): the names rule */
Test(putback_sdbox_uids, no_index_files_say_nothing)
{
	uint32_t next = 99;

	empty_folder();
	cr_assert_eq(dovecotidx_next_uid(mails_fd, &next), 0);
	cr_assert_eq(next, 0);
}

/* hand-made log bytes: a 40-byte header (major version 1, size 40), then
   records; sizes in Dovecot's offset encoding */
struct log_case {
	unsigned char bytes[128];
	size_t size;
	uint32_t next_uid;
	char what[64];
	bool foreign;	/* compat flags of the other byte order */
};

#define LOG_HDR 1, 3, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, \
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
/* size 16 (8 + one 8-byte record), APPEND | EXTERNAL, uid */
#define APPEND(uid) 0x80, 0x80, 0x80, 0x84, 2, 0, 0, 0x10, uid, 0, 0, 0, \
	0, 0, 0, 0

ParameterizedTestParameters(putback_sdbox_uids, hand_made_logs)
{
	static struct log_case cases[] = {
		{ { LOG_HDR, APPEND(3), APPEND(9) }, 72, 10, "appends", false },
		/* a header update of next_uid (offset 28, 4 bytes): 50 */
		{ { LOG_HDR, 0x80, 0x80, 0x80, 0x84, 0x20, 0, 0, 0x10,
		    28, 0, 4, 0, 50, 0, 0, 0 }, 56, 50, "next_uid update", false },
		/* a UID update 2 -> 20 */
		{ { LOG_HDR, 0x80, 0x80, 0x80, 0x84, 0, 0x40, 0, 0,
		    2, 0, 0, 0, 20, 0, 0, 0 }, 56, 21, "UID update", false },
		/* the second record is cut short: the first counts */
		{ { LOG_HDR, APPEND(3), APPEND(9) }, 70, 4, "cut short", false },
		/* a size not in the offset encoding ends the reading */
		{ { LOG_HDR, 16, 0, 0, 0, 2, 0, 0, 0x10, 9, 0, 0, 0, 0, 0, 0, 0 },
		  56, 0, "bad size", false },
		/* a size below a record header's ends it too */
		{ { LOG_HDR, 0x80, 0x80, 0x80, 0x81, 2, 0, 0, 0x10, 9 }, 56, 0,
		  "size 4", false },
		/* a header update running past its record */
		{ { LOG_HDR, 0x80, 0x80, 0x80, 0x84, 0x20, 0, 0, 0x10,
		    28, 0, 200, 0, 50, 0, 0, 0 }, 56, 0, "update too long", false },
		/* not a log */
		{ { 2, 3, 40, 0, 0, 0, 0, 0, APPEND(9) }, 56, 0, "version 2", false },
		{ { 1, 3, 8, 0, APPEND(9) }, 56, 0, "header too short", false },
		{ { 1, 3, 200, 0 }, 40, 0, "header past the end", false },
		{ { 0 }, 0, 0, "empty", false },
		{ { LOG_HDR, APPEND(3), APPEND(9) }, 72, 0, "other order",
		  true },
	};

	return cr_make_param_array(struct log_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct log_case *c, putback_sdbox_uids, hand_made_logs)
{
	unsigned char bytes[sizeof(c->bytes)];
	uint32_t next = 0;

	/* a 40-byte header's compat flags (byte 32): this machine's order,
	   or the other one */
	memcpy(bytes, c->bytes, sizeof(bytes));
	if (bytes[0] == 1 && bytes[2] == 40)
		bytes[32] = c->foreign ? dovecotfmt_compat_flags() ^ 1 :
			dovecotfmt_compat_flags();
	dovecotidx_log_next_uid(bytes, c->size, &next);
	cr_assert_eq(next, c->next_uid, "%s: %u, not %u", c->what, next,
		     c->next_uid);
}

/* dovecot.index's header (64 bytes here: version 7, compat flags, then
   next_uid at 28), in this machine's byte order */
static void write_index(uint32_t next_uid)
{
	unsigned char hdr[64] = { 7, 3 };
	int fd;

	hdr[12] = dovecotfmt_compat_flags();
	memcpy(hdr + 28, &next_uid, 4);
	fd = openat(mails_fd, "dovecot.index", O_WRONLY | O_CREAT | O_TRUNC,
		    0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	close(fd);
}


/* the index header's next_uid counts as the logs' do */
Test(putback_sdbox_uids, the_index_header_gives_the_next_uid)
{
	char name[MAILPATH_NAME_MAX + 1];
	uint32_t next = 0;

	empty_folder();
	write_index(40);
	cr_assert_eq(dovecotidx_next_uid(mails_fd, &next), 0);
	cr_assert_eq(next, 40);
	put_back("d88ff1001d4bf753a1b800001accfe22", "u.12", name);
	cr_assert_str_eq(name, "u.40");
}

/* a next UID at the end of the range (damaged) or index files that
   cannot be read never keep a mail out: the names alone decide */
Test(putback_sdbox_uids, a_damaged_index_leaves_the_names_rule)
{
	char name[MAILPATH_NAME_MAX + 1];
	uint32_t next = 0;

	empty_folder();
	write_index(UINT32_MAX);
	put_back("d88ff1001d4bf753a1b800001accfe22", "u.4", name);
	cr_assert_str_eq(name, "u.4");
	/* a FIFO is not read (nor waited on) */
	cr_assert_eq(unlinkat(mails_fd, "dovecot.index", 0), 0);
	cr_assert_eq(mkfifoat(mails_fd, "dovecot.index.log", 0600), 0);
	cr_assert_eq(dovecotidx_next_uid(mails_fd, &next), -1);
	put_back("6b166fb420e21c404de86fa495146961", "u.9", name);
	cr_assert_str_eq(name, "u.9");
}
