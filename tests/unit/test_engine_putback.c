/* test_engine_putback.c: putting a mail back from the store (putback.c):
 * bad metadata is refused and logged with nothing created; good maildir
 * and sdbox mails become stubs with the key/size xattrs, the metadata's
 * mtime and the owner/mode rule (stub: the directory's owner and bits
 * without x; created directories: the parent's). */
#include "helper-objstore.h"
#include "keys.h"
#include "log.h"
#include "putback.h"
#include "stub.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER "user@example.com"
#define GUID "00d7d12ea08a3153175e0000dfbea952"
#define OID "d88ff1001d4bf753a1b800001accfe22"

static char *pb_dir;
static struct objstore *pb_store;
static int pb_folder_fd = -1;
static char pb_log[16384];

static void pb_sink(enum obox_log_level level, const char *fmt, va_list ap)
{
	size_t len = strlen(pb_log);

	(void)level;
	vsnprintf(pb_log + len, sizeof(pb_log) - len, fmt, ap);
}

static void init(void)
{
	struct objstore_settings set = { 0 };

	pb_dir = objtest_mkdtemp("putback");
	cr_assert_not_null(pb_dir);
	pb_store = objtest_open_posix_store(pb_dir, &set);
	pb_folder_fd = objtest_mkdir_open(pb_dir, "folder");
	/* the folder's bits, which created directories take over */
	cr_assert_eq(fchmod(pb_folder_fd, 0750), 0);
	pb_log[0] = '\0';
	obox_log_set_sink(pb_sink);
}

static void fini(void)
{
	obox_log_set_sink(NULL);
	close(pb_folder_fd);
	objstore_deinit(&pb_store);
	objtest_rm_rf(pb_dir);
	free(pb_dir);
}

TestSuite(engine_putback, .init = init, .fini = fini);

/* store mail oid with the metadata given ("-" or NULL: none) */
static void pb_put_oid(char key_r[OBJSTORE_KEY_MAX + 1], const char *oid,
		       const char *path, const char *name, const char *mtime)
{
	struct objstore_meta meta[3];
	unsigned int n = 0;

	if (path != NULL && strcmp(path, "-") != 0)
		meta[n++] = (struct objstore_meta){ "path", path };
	if (name != NULL && strcmp(name, "-") != 0)
		meta[n++] = (struct objstore_meta){ "name", name };
	if (mtime != NULL && strcmp(mtime, "-") != 0)
		meta[n++] = (struct objstore_meta){ "mtime", mtime };
	cr_assert_eq(keys_mail_key(USER, GUID, oid, key_r,
				   OBJSTORE_KEY_MAX + 1), 0);
	cr_assert_eq(objstore_put(pb_store, key_r, "hello", 5, meta, n), 0,
		     "%s", objstore_error());
}

static void pb_put(char key_r[OBJSTORE_KEY_MAX + 1], const char *path,
		   const char *name, const char *mtime)
{
	pb_put_oid(key_r, OID, path, name, mtime);
}

static bool pb_folder_empty(void)
{
	int fd = openat(pb_folder_fd, ".", O_RDONLY | O_DIRECTORY);
	DIR *dir = fdopendir(fd);
	struct dirent *d;
	bool empty = true;

	cr_assert_not_null(dir);
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
			empty = false;
	}
	closedir(dir);
	return empty;
}

struct bad_case {
	char path[64], name[300], mtime[40];	/* "-": none */
	char reason[64];
};

ParameterizedTestParameters(engine_putback, bad_metadata_refused)
{
	static struct bad_case cases[] = {
		{ "-", "1.M1:2,", "-", "no path/name metadata" },
		{ "Maildir/cur", "-", "-", "no path/name metadata" },
		{ "Maildir/cur", "", "-", "invalid name metadata" },
		{ "Maildir/cur", "a/b", "-", "invalid name metadata" },
		{ "Maildir/cur", "..", "-", "invalid name metadata" },
		{ "Maildir/cur", ".", "-", "invalid name metadata" },
		{ "Maildir/../cur", "1.M1", "-", "invalid path metadata" },
		{ "/etc/cur", "1.M1", "-", "invalid path metadata" },
		{ "Maildir", "1.M1", "-", "not a cur, new, tmp or dbox-Mails" },
		{ "Maildir/tmpx", "1.M1", "-",
		  "not a cur, new, tmp or dbox-Mails" },
		{ "Maildir/tmp", "..", "-", "invalid name metadata" },
		{ "sdbox/mailboxes/INBOX/dbox-Mails", "1.M1", "-",
		  "not an sdbox mail name" },
		{ "sdbox/mailboxes/INBOX/dbox-Mails", "u.", "-",
		  "not an sdbox mail name" },
		{ "sdbox/mailboxes/INBOX/dbox-Mails", "u.1x", "-",
		  "not an sdbox mail name" },
	};
	return cr_make_param_array(struct bad_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_case *c, engine_putback, bad_metadata_refused)
{
	char key[OBJSTORE_KEY_MAX + 1];
	struct putback_mail mail;

	pb_put(key, c->path, c->name, c->mtime);
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 0);
	cr_assert_not_null(strstr(pb_log, key), "%s", pb_log);
	cr_assert_not_null(strstr(pb_log, "not put back"), "%s", pb_log);
	cr_assert_not_null(strstr(pb_log, c->reason), "%s", pb_log);
	cr_assert(pb_folder_empty());
}

/* a name over 255 bytes cannot be stored as metadata by the posix store:
   the rule putback_head() applies is checked directly */
Test(engine_putback, name_over_255_bytes_refused)
{
	char name[300];
	const char *error;

	memset(name, 'n', 255);
	name[255] = '\0';
	cr_assert_eq(mailpath_mail_name_check(MAILPATH_DIR_CUR, name, &error),
		     0);
	name[255] = 'n';
	name[256] = '\0';
	cr_assert_eq(mailpath_mail_name_check(MAILPATH_DIR_CUR, name, &error),
		     -1);
	cr_assert_str_eq(error, "invalid name");
}

Test(engine_putback, head_failure_is_the_callers)
{
	char key[OBJSTORE_KEY_MAX + 1];
	struct putback_mail mail;

	cr_assert_eq(keys_mail_key(USER, GUID, OID, key, sizeof(key)), 0);
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_eq(pb_log[0], '\0');
}

struct mtime_case {
	char mtime[40];
	bool from_meta;		/* else the object's Last-Modified */
	long long secs;
};

ParameterizedTestParameters(engine_putback, mtime)
{
	static struct mtime_case cases[] = {
		{ "1500000001", true, 1500000001 },
		{ "0", true, 0 },
		{ "-", false, 0 },
		{ "", false, 0 },
		{ " 1500000001", false, 0 },
		{ "+1500000001", false, 0 },
		{ "-1", false, 0 },
		{ "15e8", false, 0 },
		{ "1500000001x", false, 0 },
		{ "1234567890123456789", false, 0 },	/* 19 digits */
	};
	return cr_make_param_array(struct mtime_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct mtime_case *c, engine_putback, mtime)
{
	char key[OBJSTORE_KEY_MAX + 1];
	struct putback_mail mail;

	pb_put(key, "Maildir/cur", "1.M1:2,S", c->mtime);
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	if (c->from_meta)
		cr_assert_eq((long long)mail.mtime, c->secs);
	else
		cr_assert_eq(mail.mtime, mail.st.mtime);
	putback_mail_free(&mail);
}

/* dir/name is a stub of key, 5 bytes, mtime, mode; dir has dir_mode */
static void pb_assert_stub(const char *dir, const char *name,
			   const char *key, time_t mtime, mode_t dir_mode,
			   mode_t mode)
{
	char path[512];
	struct stub stub;
	struct stat st;
	int fd;

	cr_assert_eq(fstatat(pb_folder_fd, dir, &st, 0), 0, "%s", dir);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, dir_mode, "%s: %o", dir,
		     st.st_mode & 07777);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = openat(pb_folder_fd, path, O_RDONLY | O_NOFOLLOW);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &stub), 1);
	cr_assert_str_eq(stub.key, key);
	cr_assert_eq(stub.size, 5);
	cr_assert_eq(st.st_mtime, mtime);
	cr_assert_eq(st.st_mode & 07777, mode, "%o", st.st_mode & 07777);
	cr_assert_eq(st.st_uid, geteuid());
	close(fd);
}

Test(engine_putback, maildir_mail)
{
	char key[OBJSTORE_KEY_MAX + 1];
	char renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	struct stat st;

	pb_put(key, "Maildir/.Sent/cur", "1.M1:2,S", "1500000001");
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	cr_assert_eq(mail.dir, MAILPATH_DIR_CUR);
	cr_assert_str_eq(mail.dir_name, "cur");
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage, renamed), 1);
	/* the folder's bits for the directories, without x for the stub */
	pb_assert_stub("cur", "1.M1:2,S", key, 1500000001, 0750, 0640);
	/* a maildir folder gets all three */
	cr_assert_eq(fstatat(pb_folder_fd, "new", &st, 0), 0);
	cr_assert_eq(fstatat(pb_folder_fd, "tmp", &st, 0), 0);
	/* the name taken: nothing changes */
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage, renamed), 0);
	pb_assert_stub("cur", "1.M1:2,S", key, 1500000001, 0750, 0640);
	putback_mail_free(&mail);
}

/* a mail stored at its fsync in tmp/ (store_on_fsync) comes back in new/
   under its tmp/ name (Dovecot renames tmp/X to new/X,S=..,W=..) */
Test(engine_putback, maildir_tmp_mail_goes_to_new)
{
	char key[OBJSTORE_KEY_MAX + 1];
	char renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	struct stat st;

	pb_put(key, "Maildir/.Sent/tmp", "1.M7P7.host", "1500000004");
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	cr_assert_eq(mail.dir, MAILPATH_DIR_NEW);
	cr_assert_str_eq(mail.dir_name, "new");
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage, renamed), 1);
	pb_assert_stub("new", "1.M7P7.host", key, 1500000004, 0750, 0640);
	/* nothing in tmp/ */
	cr_assert_neq(fstatat(pb_folder_fd, "tmp/1.M7P7.host", &st,
			      AT_SYMLINK_NOFOLLOW), 0);
	putback_mail_free(&mail);
}

Test(engine_putback, sdbox_mail_in_an_existing_dir)
{
	char key[OBJSTORE_KEY_MAX + 1];
	char renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	struct stat st;

	/* an existing directory keeps its bits; the stub takes them */
	cr_assert_eq(mkdirat(pb_folder_fd, "dbox-Mails", 0700), 0);
	cr_assert_eq(fchmodat(pb_folder_fd, "dbox-Mails", 0770, 0), 0);
	pb_put(key, "sdbox/mailboxes/INBOX/dbox-Mails", "u.12", "1500000002");
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	cr_assert_eq(mail.dir, MAILPATH_DIR_DBOX_MAILS);
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage, renamed), 1);
	pb_assert_stub("dbox-Mails", "u.12", key, 1500000002, 0770, 0660);
	cr_assert_str_eq(renamed, "");
	/* no maildir directories for an sdbox mail */
	cr_assert_neq(fstatat(pb_folder_fd, "cur", &st, 0), 0);
	putback_mail_free(&mail);
}

/* two writers gave UID 12 to different mails (a split brain): the second
   gets the UID above every one of the folder's */
Test(engine_putback, sdbox_mail_whose_uid_is_taken_gets_the_next_free_one)
{
	char key[OBJSTORE_KEY_MAX + 1], key2[OBJSTORE_KEY_MAX + 1];
	char renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	int fd;

	cr_assert_eq(mkdirat(pb_folder_fd, "dbox-Mails", 0700), 0);
	fd = openat(pb_folder_fd, "dbox-Mails/u.30", O_CREAT | O_WRONLY,
		    0600);
	cr_assert_geq(fd, 0);
	close(fd);
	pb_put(key, "sdbox/mailboxes/INBOX/dbox-Mails", "u.12", "1500000002");
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage,
				    renamed), 1);
	putback_mail_free(&mail);
	/* the same mail again: nothing */
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage,
				    renamed), 0);
	putback_mail_free(&mail);
	pb_put_oid(key2, "6b166fb420e21c404de86fa495146961",
		   "sdbox/mailboxes/INBOX/dbox-Mails", "u.12", "1500000003");
	cr_assert_str_neq(key, key2);
	cr_assert_eq(putback_head(pb_store, key2, "test", &mail), 1);
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key2, &stage,
				    renamed), 1);
	cr_assert_str_eq(renamed, "u.31");
	pb_assert_stub("dbox-Mails", "u.12", key, 1500000002, 0700, 0600);
	pb_assert_stub("dbox-Mails", "u.31", key2, 1500000003, 0700, 0600);
	putback_mail_free(&mail);
}

Test(engine_putback, created_dirs_take_the_parents_owner)
{
	char key[OBJSTORE_KEY_MAX + 1];
	char renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	struct stat st;

	/* the suite runs as root (scripts/run-tests): a failure, not a
	   skip, elsewhere */
	cr_assert_eq(geteuid(), 0, "this test needs root (chown)");
	cr_assert_eq(fchown(pb_folder_fd, 12345, 23456), 0);
	pb_put(key, "Maildir/new", "2.M2", "1500000003");
	cr_assert_eq(putback_head(pb_store, key, "test", &mail), 1);
	cr_assert_eq(putback_create(pb_folder_fd, &mail, key, &stage, renamed), 1);
	cr_assert_eq(fstatat(pb_folder_fd, "new", &st, 0), 0);
	cr_assert_eq(st.st_uid, 12345);
	cr_assert_eq(st.st_gid, 23456);
	cr_assert_eq(fstatat(pb_folder_fd, "new/2.M2", &st, AT_SYMLINK_NOFOLLOW),
		     0);
	cr_assert_eq(st.st_uid, 12345);
	cr_assert_eq(st.st_gid, 23456);
	cr_assert_eq(st.st_mode & 07777, 0640);
	putback_mail_free(&mail);
}
