/* test_fs_upload.h: shared fixture of the test_fs_upload_*.c tests (and
 * test_fs_users_delivery_count.c): a file:// store and an engine on a
 * cache directory (obox_init(), no upload threads: the tests call
 * upload_user() and objgc_flush() themselves), a user tree in
 * CACHE/meta/<user> (user root, Maildir INBOX folder, nested .Sent
 * folder) and helpers to look at the bundles stored.  The engine's inner
 * objects (cache state, objgc, users, upload context) are taken from
 * struct obox (obox-private.h). */
#ifndef TEST_FS_UPLOAD_H
#define TEST_FS_UPLOAD_H

/* not every test file uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "helper-objstore.h"
#include "bundle.h"
#include "cachestate.h"
#include "ids.h"
#include "keys.h"
#include "objgc.h"
#include "objstore.h"
#include "obox-private.h"
#include "stub.h"
#include "upload.h"
#include "users.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define UP_USER "user@example.com"
#define GUID_INBOX "11111111111111111111111111111111"
#define GUID_SENT "22222222222222222222222222222222"
#define OID(n) "0000000000000000000000000000000" #n
#define STUB1 "Maildir/cur/1.M1P1.host,S=100:2,S"
#define STUB2 "Maildir/.Sent/cur/2.M2P1.host,S=200:2,S"
#define BUNDLE_MAX_SIZE (16 * 1024 * 1024)

static char *up_dir;		/* the test's temporary directory */
static char up_cache[2048];	/* up_dir/cache */
static char up_store_url[2100];	/* file://up_dir/store */
/* the test's own handle on the store, to look at what the engine did */
static struct objstore *up_store;
static struct obox *up_obox;
/* taken from up_obox while it runs (up_start() .. up_stop()) */
static int up_meta_fd = -1;	/* up_dir/cache/meta */
static struct cachestate *up_cs;
static struct objgc *up_gc;
static struct users *up_users;
static struct ouser *up_user;
static struct upload_ctx *up_ctx;
/* the engine's store fault injection (objstore.h), NULL: none */
static const char *up_store_fault;

/* open the engine on up_cache (again, for a restart) */
static void up_start(void)
{
	struct obox_settings set = {
		.store_url = up_store_url,
		.store = { .no_fsync = true, .fault = up_store_fault },
		.cache_dir = up_cache,
		.cache_size = 1024 * 1024,
		.metacache_size = 64 * 1024 * 1024,
		.metacache_idle = 3600,
	};
	const char *error = NULL;

	cr_assert_eq(obox_init(&set, &up_obox, &error), 0,
		     "obox_init() failed: %s", error);
	up_meta_fd = obox_meta_fd(up_obox);
	up_cs = up_obox->cs;
	up_gc = up_obox->gc;
	up_users = up_obox->users;
	up_ctx = &up_obox->upctx;
	up_user = obox_user_get(up_obox, UP_USER);
	cr_assert_not_null(up_user);
}

/* clean: as at unmount; else the cache state is left as a killed daemon
   leaves it */
static void up_stop(bool clean)
{
	if (up_obox != NULL)
		up_obox->deinit_unclean = !clean;
	obox_deinit(&up_obox);
	up_meta_fd = -1;
	up_cs = NULL;
	up_gc = NULL;
	up_users = NULL;
	up_ctx = NULL;
	up_user = NULL;
}

static void up_init(void)
{
	struct objstore_settings set = { .no_fsync = true };

	up_dir = objtest_mkdtemp("upload");
	cr_assert_not_null(up_dir);
	up_store = objtest_open_posix_store(up_dir, &set);
	snprintf(up_store_url, sizeof(up_store_url), "file://%s/store",
		 up_dir);
	snprintf(up_cache, sizeof(up_cache), "%s/cache", up_dir);
	up_start();
}

static void up_fini(void)
{
	up_stop(false);
	if (up_store != NULL)
		objstore_deinit(&up_store);
	objtest_rm_rf(up_dir);
	free(up_dir);
}

/* --- the user tree, paths relative to meta/<user> --- */

static void up_mkdir(const char *path, const char *guid)
{
	char full[4096];
	int fd;

	snprintf(full, sizeof(full), UP_USER "/%s", path);
	cr_assert_eq(mkdirat(up_meta_fd, full, 0700), 0, "mkdir(%s): %s",
		     full, strerror(errno));
	if (guid == NULL)
		return;
	fd = openat(up_meta_fd, full, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_GUID, guid, strlen(guid), 0),
		     0, "setxattr(%s): %s", full, strerror(errno));
	close(fd);
}

/* write (append: add) size bytes of data (NULL: pseudo-random) */
static void up_write(const char *path, const void *data, size_t size,
		     bool append)
{
	char full[4096];
	void *buf = NULL;
	int fd;

	struct stat st;

	snprintf(full, sizeof(full), UP_USER "/%s", path);
	fd = openat(up_meta_fd, full, O_WRONLY | O_CREAT |
		    (append ? O_APPEND : O_TRUNC), 0600);
	cr_assert_geq(fd, 0, "open(%s): %s", full, strerror(errno));
	if (data == NULL) {
		buf = malloc(size + 1);
		cr_assert_not_null(buf);
		objtest_random_bytes(buf, size, (unsigned int)size);
		data = buf;
	}
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	cr_assert_eq(fstat(fd, &st), 0);
	/* a change, told as a front end tells it (obox_touched()) */
	users_touched(up_user, st.st_ino);
	close(fd);
	free(buf);
}

static void up_file(const char *path, const char *content)
{
	up_write(path, content, strlen(content), false);
}

/* the object key of mail oid in folder guid */
static void up_mail_key(const char *guid, const char *oid, char *buf,
			size_t size)
{
	cr_assert_eq(keys_mail_key(UP_USER, guid, oid, buf, size), 0);
}

static void up_stub(const char *path, const char *guid, const char *oid,
		    uint64_t size)
{
	struct stub stub = { .size = size };
	char full[4096];
	int fd;

	struct stat st;

	up_mail_key(guid, oid, stub.key, sizeof(stub.key));
	snprintf(full, sizeof(full), UP_USER "/%s", path);
	fd = openat(up_meta_fd, full, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "open(%s): %s", full, strerror(errno));
	cr_assert_eq(stub_write(fd, &stub), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	users_touched(up_user, st.st_ino);
	close(fd);
}

static void up_make_tree(void)
{
	cr_assert_eq(mkdirat(up_meta_fd, UP_USER, 0700), 0);
	up_file("dovecot.sieve", "require \"fileinto\";\n");
	up_mkdir("Maildir", GUID_INBOX);
	up_write("Maildir/dovecot.index", NULL, 200, false);
	up_write("Maildir/dovecot.index.log", NULL, 300, false);
	up_file("Maildir/dovecot-uidlist", "3 V1 N3\n");
	up_file("Maildir/dovecot-uidlist.lock", "");
	up_file("Maildir/subscriptions", "Sent\n");
	up_mkdir("Maildir/cur", NULL);
	up_mkdir("Maildir/new", NULL);
	up_mkdir("Maildir/tmp", NULL);
	up_file("Maildir/tmp/3.M3P1.host", "a mail being written");
	up_stub(STUB1, GUID_INBOX, OID(1), 100);
	up_mkdir("Maildir/.Sent", GUID_SENT);
	up_write("Maildir/.Sent/dovecot.index", NULL, 150, false);
	up_mkdir("Maildir/.Sent/cur", NULL);
	up_mkdir("Maildir/.Sent/new", NULL);
	up_mkdir("Maildir/.Sent/tmp", NULL);
	up_stub(STUB2, GUID_SENT, OID(2), 200);
}

/* what a FUSE operation does around a change */
static void up_changed(void)
{
	users_change_begin(up_users, up_user);
	users_change_end(up_user);
}

static struct upload_stats up_stats(void)
{
	struct upload_stats stats;

	upload_get_stats(up_ctx, &stats);
	return stats;
}

static struct objgc_stats up_gc_stats(void)
{
	struct objgc_stats stats;

	objgc_get_stats(up_gc, &stats);
	return stats;
}

/* --- the bundles in the store --- */

/* the store prefix of a root: guid NULL = the user root */
static void up_root_prefix(const char *guid, char *buf, size_t size)
{
	if (guid == NULL)
		snprintf(buf, size, "%s/idx/", up_user->prefix);
	else {
		snprintf(buf, size, "%s/mailboxes/%s/idx/", up_user->prefix,
			 guid);
	}
}

#define UP_MAX_BUNDLES 8
struct up_bundles {
	char base[BUNDLE_KEY_MAX + 1];	/* "" if none */
	struct bundle_name base_name;
	char diffs[UP_MAX_BUNDLES][BUNDLE_KEY_MAX + 1];
	struct bundle_name diff_names[UP_MAX_BUNDLES];
	unsigned int base_count, diff_count;
};

/* list a root's bundles; every name must parse */
static void up_list_bundles(const char *guid, struct up_bundles *b)
{
	struct objtest_list list = { 0 };
	char prefix[1024];
	const char *error;

	memset(b, 0, sizeof(*b));
	up_root_prefix(guid, prefix, sizeof(prefix));
	cr_assert_eq(objtest_list(up_store, prefix, "/", &list), 0, "%s",
		     objstore_error());
	for (size_t i = 0; i < list.count; i++) {
		const char *name = list.keys[i] + strlen(prefix);
		struct bundle_name parsed;

		cr_assert_not(list.is_prefix[i], "%s", list.keys[i]);
		cr_assert_eq(bundle_name_parse(name, &parsed, &error), 0,
			     "%s: %s", list.keys[i], error);
		if (parsed.is_diff) {
			cr_assert_lt(b->diff_count, UP_MAX_BUNDLES);
			snprintf(b->diffs[b->diff_count],
				 sizeof(b->diffs[0]), "%s", list.keys[i]);
			b->diff_names[b->diff_count++] = parsed;
		} else {
			snprintf(b->base, sizeof(b->base), "%s",
				 list.keys[i]);
			b->base_name = parsed;
			b->base_count++;
		}
	}
	objtest_list_free(&list);
}

/* exactly one base and diff_count diffs of it */
static void up_assert_bundles(const char *guid, unsigned int diff_count,
			      struct up_bundles *b)
{
	up_list_bundles(guid, b);
	cr_assert_eq(b->base_count, 1, "root %s: %u bases",
		     guid == NULL ? "user" : guid, b->base_count);
	cr_assert_eq(b->diff_count, diff_count, "root %s: %u diffs",
		     guid == NULL ? "user" : guid, b->diff_count);
	for (unsigned int i = 0; i < b->diff_count; i++) {
		cr_assert_eq(b->diff_names[i].secs, b->base_name.secs);
		cr_assert_eq(b->diff_names[i].usecs, b->base_name.usecs);
		cr_assert_arr_eq(b->diff_names[i].base_id,
				 b->base_name.base_id, BUNDLE_ID_SIZE);
	}
}

static struct bundle *up_get_bundle(const char *key)
{
	struct bundle *bundle;
	const char *error;
	size_t size;
	void *data;

	cr_assert_eq(objstore_get(up_store, key, 0, OBJSTORE_TO_END,
				  BUNDLE_MAX_SIZE, &data, &size), 0,
		     "get(%s) failed: %s", key, objstore_error());
	cr_assert_eq(bundle_decode(data, size, BUNDLE_MAX_SIZE, &bundle,
				   &error), 0, "%s: %s", key, error);
	free(data);
	return bundle;
}

static bool up_object_exists(const char *key)
{
	struct objstore_stat st;

	if (objstore_head(up_store, key, &st) == 0) {
		objstore_stat_free(&st);
		return true;
	}
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND,
		     "head(%s) failed: %s", key, objstore_error());
	return false;
}

static void up_put_object(const char *key)
{
	cr_assert_eq(objstore_put(up_store, key, "mail", 4, NULL, 0), 0,
		     "put(%s) failed: %s", key, objstore_error());
}

/* the number of lines of CACHE/state/bundles/<user> */
static unsigned int up_state_lines(void)
{
	char path[4096], line[2048];
	unsigned int count = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/state/bundles/" UP_USER, up_cache);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		count++;
	fclose(f);
	return count;
}

static bool up_dirty_marker_exists(void)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/state/dirty/" UP_USER, up_cache);
	return stat(path, &st) == 0;
}

#endif
