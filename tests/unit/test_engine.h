/* test_engine.h: shared fixture of the test_engine_*.c tests, which drive
 * the engine through obox.h only, as a front end would, without a mount:
 * a file:// store (or the test S3 server's: eng_init_s3()), engines (obox_init()) on cache directories below the
 * test's temporary directory, a Dovecot-like maildir tree made below
 * obox_meta_fd() with every change between obox_change_begin() and
 * obox_change_end(), and helpers to look at the store through the
 * objstore API. */
#ifndef TEST_ENGINE_H
#define TEST_ENGINE_H

/* not every test file uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "helper-objstore.h"
#include "objstore.h"
#include "obox.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENG_USER "user@example.com"
#define ENG_MAIL "From: a@example.com\r\nTo: " ENG_USER "\r\n" \
	"Subject: hello\r\n\r\nthe body of the mail\r\n"
#define ENG_MAIL_NAME "1700000000.M1P1.host"
/* 32 lowercase hex digits */
#define ENG_HEX32 "[0-9a-f]{32}"

static char *eng_dir;		/* the test's temporary directory */
static char eng_store_url[2100];	/* file://eng_dir/store */
/* the store is the test S3 server's (eng_init_s3()): its settings */
static struct objstore_settings eng_s3_set;
static bool eng_s3;
/* the test's own handle on the store, to look at what the engines did */
static struct objstore *eng_store;

static void eng_init(void)
{
	struct objstore_settings set = { .no_fsync = true };

	eng_dir = objtest_mkdtemp("engine");
	cr_assert_not_null(eng_dir);
	eng_store = objtest_open_posix_store(eng_dir, &set);
	snprintf(eng_store_url, sizeof(eng_store_url), "file://%s/store",
		 eng_dir);
}

/* eng_init() on a prefix of its own on the test S3 server (a test named
   *_on_s3: tests/CMakeLists.txt), with S3's own page size */
static void eng_init_s3(void)
{
	const char *error;

	eng_dir = objtest_mkdtemp("engine");
	cr_assert_not_null(eng_dir);
	memset(&eng_s3_set, 0, sizeof(eng_s3_set));
	objtest_s3_settings(&eng_s3_set);
	objtest_s3_url("engine", eng_store_url, sizeof(eng_store_url));
	cr_assert_eq(objstore_init(eng_store_url, &eng_s3_set, &eng_store,
				   &error), 0, "init(%s): %s", eng_store_url,
		     error);
	eng_s3 = true;
}

static void eng_fini(void)
{
	if (eng_store != NULL && eng_s3)
		objtest_delete_all(eng_store);	/* below its prefix */
	if (eng_store != NULL)
		objstore_deinit(&eng_store);
	objtest_rm_rf(eng_dir);
	free(eng_dir);
}

/* settings of the engines eng_open() makes from now on (0: off) */
static unsigned int eng_split_check_interval, eng_delete_grace;
static enum obox_missing_mails eng_missing_mails;
static const char *eng_fault;	/* the store's fault spec, or NULL */
static int eng_root_mode = -1;	/* root_mode setting, -1: none */
static bool eng_store_on_fsync = true;	/* the daemon's default */

/* an engine on the cache directory eng_dir/<cache_name>, not started */
static struct obox *eng_open(const char *cache_name)
{
	char cache_dir[4096];
	struct obox_settings set = {
		.store_url = eng_store_url,
		.store = { .no_fsync = true, .fault = eng_fault },
		.cache_dir = cache_dir,
		.cache_size = 4 * 1024 * 1024,
		.metacache_size = 64 * 1024 * 1024,
		.metacache_idle = 3600,
		.split_check_interval = eng_split_check_interval,
		.delete_grace = eng_delete_grace,
		.missing_mails = eng_missing_mails,
		.store_on_fsync = eng_store_on_fsync,
		.root_mode_set = eng_root_mode >= 0,
		.root_mode = eng_root_mode >= 0 ? (uint32_t)eng_root_mode : 0,
	};
	const char *error = NULL;
	struct obox *obox;

	if (eng_s3) {
		set.store = eng_s3_set;
		set.store.fault = eng_fault;
	}
	snprintf(cache_dir, sizeof(cache_dir), "%s/%s", eng_dir, cache_name);
	cr_assert_eq(obox_init(&set, &obox, &error), 0,
		     "obox_init(%s) failed: %s", cache_dir, error);
	return obox;
}

/* --- the tree, as Dovecot makes it through a front end --- */

/* mkdir path (relative to the tree root) as a change of user */
static void eng_mkdir(struct obox *obox, const char *path)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);

	cr_assert_not_null(user);
	obox_change_begin(obox, user);
	cr_assert_eq(mkdirat(obox_meta_fd(obox), path, 0700), 0,
		     "mkdir(%s): %s", path, strerror(errno));
	obox_change_end(user);
}

/* the user and a maildir folder dir ("" for INBOX, ".Sent", ...) with
   cur/new/tmp */
static void eng_make_folder(struct obox *obox, const char *folder)
{
	static const char *const subdirs[] = { "", "/cur", "/new", "/tmp" };
	char path[1024];

	for (unsigned int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), ENG_USER "/Maildir%s%s%s",
			 folder[0] == '\0' ? "" : "/", folder, subdirs[i]);
		eng_mkdir(obox, path);
	}
}

static void eng_make_user(struct obox *obox)
{
	eng_mkdir(obox, ENG_USER);
	eng_make_folder(obox, "");
}

/* create (or replace) the file path with content, as a change of user */
static void eng_write_file(struct obox *obox, const char *path,
			   const char *content)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);
	size_t len = strlen(content);
	struct stat st;
	int fd;

	obox_change_begin(obox, user);
	fd = openat(obox_meta_fd(obox), path, O_WRONLY | O_CREAT | O_TRUNC,
		    0600);
	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	cr_assert_eq(fstat(fd, &st), 0);
	obox_touched(user, st.st_ino);	/* as a front end tells it */
	close(fd);
	obox_change_end(user);
}

/* write 256 KiB of incompressible content (xorshift letters) to path:
   a diff that big is not worth it, the next upload stores a base of its
   own */
static void eng_write_big_file(struct obox *obox, const char *path)
{
	char *big = malloc(256 * 1024 + 1);
	uint64_t r = 88172645463325252ULL;

	cr_assert_not_null(big);
	for (size_t i = 0; i < 256 * 1024; i++) {
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		big[i] = (char)('a' + r % 26);
	}
	big[256 * 1024] = '\0';
	eng_write_file(obox, path, big);
	free(big);
}

/* obox_rename(olddir/name, newdir/newname) as a change of user, with the
   directories opened as a front end has them */
static int eng_rename(struct obox *obox, const char *olddir, const char *name,
		      const char *newdir, const char *newname)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);
	int meta_fd = obox_meta_fd(obox), ofd, nfd, err;
	struct stat st;

	ofd = openat(meta_fd, olddir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(ofd, 0, "open(%s): %s", olddir, strerror(errno));
	nfd = openat(meta_fd, newdir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(nfd, 0, "open(%s): %s", newdir, strerror(errno));
	obox_change_begin(obox, user);
	/* the moved file and the one it replaces, as a front end tells it */
	if (fstatat(ofd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		obox_touched(user, st.st_ino);
	if (fstatat(nfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		obox_touched(user, st.st_ino);
	err = obox_rename(obox, ofd, olddir, name, nfd, newdir, newname, 0);
	if (err == 0 && fstatat(nfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		obox_touched(user, st.st_ino);
	obox_change_end(user);
	close(ofd);
	close(nfd);
	return err;
}

/* obox_unlink(dir/name) as a change of user (an expunge) */
static void eng_unlink(struct obox *obox, const char *dir, const char *name)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);
	int fd = openat(obox_meta_fd(obox), dir, O_RDONLY | O_DIRECTORY);
	struct stat st;
	int err;

	cr_assert_geq(fd, 0, "open(%s): %s", dir, strerror(errno));
	obox_change_begin(obox, user);
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		obox_touched(user, st.st_ino);
	err = obox_unlink(obox, fd, name);
	obox_change_end(user);
	close(fd);
	cr_assert_eq(err, 0, "unlink(%s/%s): %s", dir, name, strerror(err));
}

/* a delivery as Dovecot's maildir does it: written to tmp/, renamed into
   new/ */
static void eng_deliver(struct obox *obox, const char *folder_dir,
			const char *name, const char *content)
{
	char tmp[1024], path[2048], newdir[1024];
	int err;

	snprintf(tmp, sizeof(tmp), "%s/tmp", folder_dir);
	snprintf(newdir, sizeof(newdir), "%s/new", folder_dir);
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	eng_write_file(obox, path, content);
	err = eng_rename(obox, tmp, name, newdir, name);
	cr_assert_eq(err, 0, "rename into %s: %s", newdir, strerror(err));
}

/* obox_fsync_mail() of dir/name as a front end's fsync handler calls it
   (a change of the user, the file told).  Returns 0 or the errno. */
static int eng_fsync(struct obox *obox, const char *dir, const char *name)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);
	char path[2048];
	struct stat st;
	int fd, ret, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = openat(obox_meta_fd(obox), path, O_RDWR);
	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	obox_change_begin(obox, user);
	obox_touched(user, st.st_ino);
	ret = obox_fsync_mail(obox, fd, dir, name);
	if (ret < 0)
		err = errno;
	obox_change_end(user);
	close(fd);
	cr_assert(ret == 0 || err != 0);
	return err;
}

/* 1 if path (relative to the tree root) is a stub, with its size */
static int eng_stub_size(struct obox *obox, const char *path,
			 uint64_t *size_r)
{
	struct stat st;
	int fd, ret;

	fd = openat(obox_meta_fd(obox), path, O_PATH | O_NOFOLLOW);
	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	cr_assert_eq(fstatat(fd, "", &st, AT_EMPTY_PATH), 0);
	ret = obox_stub_size(fd, &st, size_r);
	close(fd);
	return ret;
}

/* read the file path through the engine, as a front end's read handler
   does: malloc()ed, NUL-terminated, *size_r bytes */
static char *eng_read(struct obox *obox, const char *path, size_t *size_r)
{
	int fd, mail_fd, rfd, err;
	bool written;
	struct stat st;
	char *buf;
	ssize_t ret;

	fd = openat(obox_meta_fd(obox), path, O_RDONLY);
	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	err = obox_open_setup(obox, fd, O_RDONLY, &mail_fd, &written);
	cr_assert_eq(err, 0, "obox_open_setup(%s): %s", path, strerror(err));
	cr_assert_not(written);
	cr_assert_eq(obox_read_fd(obox, fd, &mail_fd), 0, "%s",
		     strerror(errno));
	cr_assert_eq(obox_stat(fd, &st), 0);
	rfd = mail_fd >= 0 ? mail_fd : fd;
	buf = malloc(st.st_size + 1);
	cr_assert_not_null(buf);
	ret = pread(rfd, buf, st.st_size, 0);
	cr_assert_eq(ret, st.st_size, "read(%s): %zd of %jd bytes", path, ret,
		     (intmax_t)st.st_size);
	buf[ret] = '\0';
	if (mail_fd >= 0)
		close(mail_fd);
	close(fd);
	*size_r = (size_t)ret;
	return buf;
}

/* path reads as ENG_MAIL, and is a stub (a stored mail) or not */
static void eng_assert_mail(struct obox *obox, const char *path, bool stub)
{
	uint64_t size;
	size_t len;
	char *data;

	cr_assert_eq(eng_stub_size(obox, path, &size), stub ? 1 : 0,
		     "%s is %sa stub", path, stub ? "not " : "");
	if (stub)
		cr_assert_eq(size, strlen(ENG_MAIL));
	data = eng_read(obox, path, &len);
	cr_assert_eq(len, strlen(ENG_MAIL), "%s lost its bytes", path);
	cr_assert_str_eq(data, ENG_MAIL, "%s lost its bytes", path);
	free(data);
}

/* path is a stub that reads as ENG_MAIL */
static void eng_assert_mail_stub(struct obox *obox, const char *path)
{
	eng_assert_mail(obox, path, true);
}

/* --- the store --- */

/* every key in the store matching the extended regex pattern, sorted by
   the store's listing; returns the count (up to max keys copied) */
static unsigned int eng_store_keys(const char *pattern, char keys[][1024],
				   unsigned int max)
{
	struct objtest_list list = { 0 };
	unsigned int count = 0;
	regex_t re;

	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0,
		     "bad regex %s", pattern);
	cr_assert_eq(objtest_list(eng_store, "", NULL, &list), 0, "%s",
		     objstore_error());
	for (size_t i = 0; i < list.count; i++) {
		if (regexec(&re, list.keys[i], 0, NULL, 0) != 0)
			continue;
		if (count < max) {
			snprintf(keys[count], sizeof(keys[0]), "%s",
				 list.keys[i]);
		}
		count++;
	}
	objtest_list_free(&list);
	regfree(&re);
	return count;
}

/* the user's mail objects: <h1>/<h2>/<user>/mailboxes/<guid>/<oid> */
#define ENG_MAIL_KEY_RE "^[0-9a-f]{2}/[0-9a-f]{3}/" ENG_USER \
	"/mailboxes/" ENG_HEX32 "/" ENG_HEX32 "$"
/* the user's bundles: the user root's, a folder's */
#define ENG_USER_BUNDLE_RE "^[0-9a-f]{2}/[0-9a-f]{3}/" ENG_USER \
	"/idx/bundle\\.[^/]+$"
#define ENG_FOLDER_BUNDLE_RE "^[0-9a-f]{2}/[0-9a-f]{3}/" ENG_USER \
	"/mailboxes/" ENG_HEX32 "/idx/bundle\\.[^/]+$"

static unsigned int eng_mail_keys(char keys[][1024], unsigned int max)
{
	return eng_store_keys(ENG_MAIL_KEY_RE, keys, max);
}

/* the folder GUID part of a mail key */
static void eng_key_guid(const char *key, char guid[33])
{
	const char *p = strstr(key, "/mailboxes/");

	cr_assert_not_null(p, "%s", key);
	memcpy(guid, p + strlen("/mailboxes/"), 32);
	guid[32] = '\0';
}

/* the object's bytes, malloc()ed and NUL-terminated */
static char *eng_get_object(const char *key, size_t *size_r)
{
	void *data;
	char *buf;

	cr_assert_eq(objstore_get(eng_store, key, 0, OBJSTORE_TO_END,
				  1024 * 1024, &data, size_r), 0,
		     "get(%s) failed: %s", key, objstore_error());
	buf = malloc(*size_r + 1);
	cr_assert_not_null(buf);
	memcpy(buf, data, *size_r);
	buf[*size_r] = '\0';
	free(data);
	return buf;
}

/* the value of the line "name value" of obox_stats_text() */
static uint64_t eng_stat(struct obox *obox, const char *name)
{
	size_t len, name_len = strlen(name);
	char *text = obox_stats_text(obox, &len);
	uint64_t value = 0;
	bool found = false;

	cr_assert_not_null(text);
	for (const char *line = text; *line != '\0';) {
		const char *end = strchr(line, '\n');

		if (strncmp(line, name, name_len) == 0 &&
		    line[name_len] == ' ') {
			value = strtoull(line + name_len + 1, NULL, 10);
			found = true;
			break;
		}
		if (end == NULL)
			break;
		line = end + 1;
	}
	free(text);
	cr_assert(found, "no stats line %s", name);
	return value;
}

#endif
