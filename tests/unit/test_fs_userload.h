/* test_fs_userload.h: shared fixture of the test_fs_userload_*.c tests: a
 * file:// store, a source user tree ("src", what a machine had in its
 * metacache), bundles of its roots encoded the way the uploader does and
 * stored under their names, mail objects with metadata, and an empty
 * destination directory ("dst") for userload_load(). */
#ifndef TEST_FS_USERLOAD_H
#define TEST_FS_USERLOAD_H

/* not every test file uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "helper-objstore.h"
#include "bundle.h"
#include "ids.h"
#include "objstore.h"
#include "stub.h"
#include "userload.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define UL_USER "user@example.com"
#define GUID_INBOX "11111111111111111111111111111111"
#define GUID_SENT "22222222222222222222222222222222"
#define GUID_GONE "33333333333333333333333333333333"
#define OID(n) "0000000000000000000000000000000" #n

static char *ul_tmp;
static char ul_src[4096];
static int ul_src_fd = -1, ul_dst_fd = -1;
static struct objstore *ul_store;
static char ul_prefix[512];	/* "<h1>/<h2>/<user>" */
static char ul_log[65536];	/* everything obox_log()ged */

static void ul_log_func(enum obox_log_level level, const char *fmt,
			va_list ap)
{
	size_t len = strlen(ul_log);

	(void)level;
	vsnprintf(ul_log + len, sizeof(ul_log) - len, fmt, ap);
}

static void ul_setup_store(const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };

	char url[4096];
	const char *error;

	if (ul_store == NULL) {
		ul_store = objtest_open_posix_store(ul_tmp, &set);
		return;
	}
	/* reopen: fresh request counters, maybe with faults */
	objstore_deinit(&ul_store);
	snprintf(url, sizeof(url), "file://%s/store", ul_tmp);
	cr_assert_eq(objstore_init(url, &set, &ul_store, &error), 0, "%s",
		     error);
}

static void ul_init(void)
{
	char h1[3], h2[4];

	ul_tmp = objtest_mkdtemp("userload");
	cr_assert_not_null(ul_tmp);
	ul_src_fd = objtest_mkdir_open(ul_tmp, "src");
	ul_dst_fd = objtest_mkdir_open(ul_tmp, "dst");
	snprintf(ul_src, sizeof(ul_src), "%s/src", ul_tmp);
	ul_setup_store(NULL);
	ids_user_hash(UL_USER, h1, h2);
	snprintf(ul_prefix, sizeof(ul_prefix), "%s/%s/%s", h1, h2, UL_USER);
	ul_log[0] = '\0';
	obox_log_set_sink(ul_log_func);
}

static void ul_fini(void)
{
	if (ul_store != NULL)
		objstore_deinit(&ul_store);
	if (ul_src_fd >= 0)
		close(ul_src_fd);
	if (ul_dst_fd >= 0)
		close(ul_dst_fd);
	ul_src_fd = ul_dst_fd = -1;
	objtest_rm_rf(ul_tmp);
	free(ul_tmp);
}

static void ul_mail_key(char *buf, size_t size, const char *guid,
			const char *oid)
{
	snprintf(buf, size, "%s/mailboxes/%s/%s", ul_prefix, guid, oid);
}

/* ---- building the source tree ---- */

static void ul_mkdir(int dirfd, const char *path, const char *guid)
{
	cr_assert_eq(mkdirat(dirfd, path, 0700), 0, "mkdir %s: %s", path,
		     strerror(errno));
	if (guid != NULL) {
		int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY);

		cr_assert_geq(fd, 0);
		cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_GUID, guid,
				       strlen(guid), 0), 0);
		close(fd);
	}
}

static void ul_file(int dirfd, const char *path, const char *content,
		    time_t mtime)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { mtime, 5000 } };
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, content, strlen(content)),
		     (ssize_t)strlen(content));
	cr_assert_eq(futimens(fd, ts), 0);
	close(fd);
}

/* a stub in the source tree and its mail object in the store */
static void ul_stub(int dirfd, const char *path, const char *guid,
		    const char *oid, const char *body, time_t mtime)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { mtime, 0 } };
	struct stub stub;
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	ul_mail_key(stub.key, sizeof(stub.key), guid, oid);
	stub.size = strlen(body);
	cr_assert_eq(stub_write(fd, &stub), 0);
	cr_assert_eq(futimens(fd, ts), 0);
	close(fd);
	cr_assert_eq(objstore_put(ul_store, stub.key, body, strlen(body),
				  NULL, 0), 0, "%s", objstore_error());
}

/* a mail object only in the store, with metadata (NULL: left out) */
static void ul_put_mail(const char *guid, const char *oid, const char *body,
			const char *path, const char *name, const char *mtime)
{
	struct objstore_meta meta[3];
	unsigned int n = 0;
	char key[OBJSTORE_KEY_MAX + 1];

	if (path != NULL)
		meta[n++] = (struct objstore_meta){ "path", path };
	if (name != NULL)
		meta[n++] = (struct objstore_meta){ "name", name };
	if (mtime != NULL)
		meta[n++] = (struct objstore_meta){ "mtime", mtime };
	ul_mail_key(key, sizeof(key), guid, oid);
	cr_assert_eq(objstore_put(ul_store, key, body, strlen(body), meta, n),
		     0, "%s", objstore_error());
}

/* ---- scanning roots the way the uploader does ---- */

struct ul_filter_ctx {
	char root[8192];	/* absolute path of the scanned root */
};

static enum bundle_scan_action ul_filter(const char *path, bool is_dir,
					 void *context)
{
	struct ul_filter_ctx *ctx = context;
	const char *last = strrchr(path, '/');
	char full[16384], guid[64];
	size_t len = strlen(path);

	last = last == NULL ? path : last + 1;
	if (!is_dir)
		return len > 5 && strcmp(path + len - 5, ".lock") == 0 ?
			BUNDLE_SCAN_SKIP : BUNDLE_SCAN_INCLUDE;
	if (strcmp(last, "tmp") == 0)
		return BUNDLE_SCAN_NO_CHILDREN;
	snprintf(full, sizeof(full), "%s/%s", ctx->root, path);
	if (lgetxattr(full, BUNDLE_XATTR_GUID, guid, sizeof(guid)) > 0)
		return BUNDLE_SCAN_NO_CHILDREN;
	return BUNDLE_SCAN_INCLUDE;
}

/* the tree of the root at path ("" = user root) of the source tree */
static struct bundle_tree *ul_scan_root(const char *path)
{
	struct ul_filter_ctx ctx;
	struct bundle_tree *tree;
	const char *error;
	int fd;

	snprintf(ctx.root, sizeof(ctx.root), "%s%s%s", ul_src,
		 path[0] == '\0' ? "" : "/", path);
	fd = open(ctx.root, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bundle_tree_scan_filtered(fd, ul_filter, &ctx, &tree,
					       &error), 0, "scan: %s", error);
	close(fd);
	return tree;
}

/* "<P>" or "<P>/mailboxes/<guid>" */
static void ul_root_prefix(char *buf, size_t size, const char *guid)
{
	if (guid == NULL)
		snprintf(buf, size, "%s", ul_prefix);
	else
		snprintf(buf, size, "%s/mailboxes/%s", ul_prefix, guid);
}

static void ul_store_bundle(const char *guid, const struct bundle_name *name,
			    const unsigned char *data, size_t size,
			    char *key_r, size_t key_size)
{
	char prefix[1024], key[OBJSTORE_KEY_MAX + 1];
	const char *error;

	ul_root_prefix(prefix, sizeof(prefix), guid);
	cr_assert_eq(bundle_key_build(prefix, name, key, sizeof(key), &error),
		     0, "%s", error);
	cr_assert_eq(objstore_put(ul_store, key, data, size, NULL, 0), 0,
		     "%s", objstore_error());
	if (key_r != NULL)
		snprintf(key_r, key_size, "%s", key);
}

/* encode tree as a base (tree becomes is_base) and store it for guid
   (NULL: the user root); key_r (may be NULL) gets its key */
static void ul_put_base(struct bundle_tree *tree, const char *guid,
			uint32_t secs, char *key_r, size_t key_size)
{
	struct bundle_info info = { .secs = secs, .usecs = 1 };
	struct bundle_name name;
	unsigned char *data;
	const char *error;
	size_t size;

	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0,
		     "encode: %s", error);
	bundle_name_from_info(&tree->base_info, &name);
	ul_store_bundle(guid, &name, data, size, key_r, key_size);
	free(data);
}

static void ul_put_diff(const struct bundle_tree *base,
			const struct bundle_tree *new_tree, const char *guid,
			uint32_t seq, uint32_t secs)
{
	struct bundle_info info = { .secs = secs, .usecs = 2, .seq = seq };
	struct bundle_name name;
	unsigned char *data;
	const char *error;
	size_t size;

	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_diff(base, new_tree, &info, &data, &size, &error),
		     0, "diff: %s", error);
	bundle_name_from_info(&base->base_info, &name);
	name.is_diff = true;
	memcpy(name.diff_id, info.id, BUNDLE_ID_SIZE);
	ul_store_bundle(guid, &name, data, size, NULL, 0);
	free(data);
}

/* scan the source root at path and store it as a base for guid */
static void ul_bundle_root(const char *path, const char *guid)
{
	struct bundle_tree *tree = ul_scan_root(path);

	ul_put_base(tree, guid, 0x60000000, NULL, 0);
	bundle_tree_free(&tree);
}

/* ---- checking the result ---- */

static int ul_load(struct userload_stats *stats_r)
{
	const char *error = "";
	int ret = userload_load(ul_store, UL_USER, ul_dst_fd, stats_r, NULL,
				&error);

	cr_assert_geq(ret, 0, "userload_load: %s", error);
	return ret;
}

static void ul_request_counts(uint64_t counts_r[OBJSTORE_OP_COUNT])
{
	struct objstore_stats stats;

	objstore_get_stats(ul_store, &stats);
	memcpy(counts_r, stats.requests, sizeof(stats.requests));
}

static void ul_assert_stub(const char *path, const char *guid,
			   const char *oid, uint64_t size, time_t mtime)
{
	char expected[OBJSTORE_KEY_MAX + 1];
	struct stub stub;
	struct stat st;
	int fd = openat(ul_dst_fd, path, O_RDONLY | O_NOFOLLOW);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &stub), 1, "%s is not a stub", path);
	ul_mail_key(expected, sizeof(expected), guid, oid);
	cr_assert_str_eq(stub.key, expected);
	cr_assert_eq(stub.size, size);
	if (mtime != 0)
		cr_assert_eq(st.st_mtime, mtime, "%s mtime %jd", path,
			     (intmax_t)st.st_mtime);
	close(fd);
}

static void ul_assert_guid(const char *path, const char *guid)
{
	char value[64];
	int fd = openat(ul_dst_fd, path, O_RDONLY | O_DIRECTORY);
	ssize_t len;

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	len = fgetxattr(fd, BUNDLE_XATTR_GUID, value, sizeof(value) - 1);
	close(fd);
	cr_assert_eq(len, 32, "%s has no guid", path);
	value[len] = '\0';
	cr_assert_str_eq(value, guid);
}

static bool ul_exists(const char *path)
{
	struct stat st;

	return fstatat(ul_dst_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void ul_assert_log(const char *needle)
{
	cr_assert_not_null(strstr(ul_log, needle), "log lacks '%s':\n%s",
			   needle, ul_log);
}

#endif
