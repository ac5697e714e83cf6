/* test_engine_lazydir.h: shared fixture of the test_engine_lazydir_*.c
 * tests: a cache directory with lazydir's tables, a user tree in meta/
 * whose Maildir/cur got LZ_STUBS stubs from a tree written the way a
 * load writes it (lazydir_split(), bundle_tree_write(), lazydir_install()),
 * and Maildir/new a few real ones. */
#ifndef TEST_ENGINE_LAZYDIR_H
#define TEST_ENGINE_LAZYDIR_H

/* not every test file uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include "helper-objstore.h"
#include "bundle.h"
#include "lazydir.h"
#include "log.h"
#include "stubattr.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LZ_USER "user@example.com"
#define LZ_STUBS 300
#define LZ_NEW 5
#define LZ_DIR_MTIME 1600000000
#define LZ_KEY_PREFIX "ab/cde/user@example.com/mailboxes/" \
	"11111111111111111111111111111111/"

static char *lz_tmp;
static char lz_cache[4096];
static struct lazydir *lz;
static int lz_meta_fd = -1, lz_user_fd = -1;
static struct bundle_tree *lz_orig;	/* the tree as a load had it */
static char lz_log[65536];

static void lz_log_func(enum obox_log_level level, const char *fmt,
			va_list ap)
{
	size_t len = strlen(lz_log);

	(void)level;
	vsnprintf(lz_log + len, sizeof(lz_log) - len, fmt, ap);
}

static void lz_add(struct bundle_tree *tree, const char *path,
		   enum bundle_entry_type type, unsigned int i)
{
	struct bundle_entry e = { .path = (char *)path, .type = type };
	char key[256];
	const char *error;

	e.mode = type == BUNDLE_ENTRY_DIR ? 0700 : 0600;
	e.uid = (uint32_t)geteuid();
	e.gid = (uint32_t)getegid();
	e.mtime_sec = LZ_DIR_MTIME + (type == BUNDLE_ENTRY_DIR ? 0 : i);
	e.mtime_nsec = type == BUNDLE_ENTRY_DIR ? 5000 : i;
	if (type == BUNDLE_ENTRY_STUB) {
		snprintf(key, sizeof(key), LZ_KEY_PREFIX "%032x", i + 1);
		e.key = key;
		e.size = 1000 + i;
	}
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
}

/* the tree of the user root: Maildir/{cur,new,tmp}, cur with stubs
   stubs, new with LZ_NEW */
static struct bundle_tree *lz_tree(unsigned int stubs)
{
	struct bundle_tree *tree = bundle_tree_new();
	char path[256];

	lz_add(tree, "Maildir", BUNDLE_ENTRY_DIR, 0);
	lz_add(tree, "Maildir/cur", BUNDLE_ENTRY_DIR, 0);
	lz_add(tree, "Maildir/new", BUNDLE_ENTRY_DIR, 0);
	lz_add(tree, "Maildir/tmp", BUNDLE_ENTRY_DIR, 0);
	for (unsigned int i = 0; i < stubs; i++) {
		snprintf(path, sizeof(path), "Maildir/cur/%u.M%uP1.host:2,S",
			 1600000000 + i, i);
		lz_add(tree, path, BUNDLE_ENTRY_STUB, i);
	}
	for (unsigned int i = 0; i < LZ_NEW; i++) {
		snprintf(path, sizeof(path), "Maildir/new/%u.M%uP2.host",
			 1700000000 + i, i);
		lz_add(tree, path, BUNDLE_ENTRY_STUB, 100000 + i);
	}
	return tree;
}

/* write the user's tree as a load does; returns the number of lazy
   directories */
static size_t lz_load(unsigned int stubs)
{
	struct bundle_tree *tree = lz_tree(stubs);
	struct lazydir_split *splits;
	struct bundle_tree *rest;
	size_t count;
	const char *error;

	lz_orig = lz_tree(stubs);
	cr_assert_eq(mkdirat(lz_meta_fd, LZ_USER, 0700), 0);
	lz_user_fd = openat(lz_meta_fd, LZ_USER, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(lz_user_fd, 0);
	lazydir_split(tree, LAZYDIR_THRESHOLD, &splits, &count, &rest);
	cr_assert_eq(bundle_tree_write(rest != NULL ? rest : tree, lz_user_fd,
				       &error), 0, "%s", error);
	for (size_t i = 0; i < count; i++) {
		int fd = openat(lz_user_fd, splits[i].path,
				O_RDONLY | O_DIRECTORY);

		cr_assert_geq(fd, 0);
		cr_assert_eq(lazydir_install(lz, LZ_USER, fd, &splits[i].tree,
					     &error), 0, "%s", error);
		close(fd);
	}
	lazydir_splits_free(&splits, count);
	lazydir_split_rest_free(&rest);
	bundle_tree_free(&tree);
	return count;
}

static int lz_open(const char *path)
{
	int fd = openat(lz_user_fd, path, O_RDONLY | O_DIRECTORY);

	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	return fd;
}

static size_t lz_dir_count(const char *path)
{
	DIR *dir = fdopendir(lz_open(path));
	struct dirent *d;
	size_t n = 0;

	cr_assert_not_null(dir);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] != '.')
			n++;
	}
	closedir(dir);
	return n;
}

static size_t lz_table_count(void)
{
	char path[4200];
	DIR *dir;
	struct dirent *d;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/lazy", lz_cache);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] != '.')
			n++;
	}
	closedir(dir);
	return n;
}

/* the path of the one table in CACHE_DIR/lazy */
static void lz_table_path(char *buf, size_t size)
{
	char path[4200];
	DIR *dir;
	struct dirent *d;

	snprintf(path, sizeof(path), "%s/lazy", lz_cache);
	dir = opendir(path);
	cr_assert_not_null(dir);
	buf[0] = '\0';
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] != '.')
			snprintf(buf, size, "%.4000s/%.255s", path, d->d_name);
	}
	closedir(dir);
	cr_assert_neq(buf[0], '\0', "no table");
}

static void lz_mtime_check(const char *path)
{
	struct stat st;

	cr_assert_eq(fstatat(lz_user_fd, path, &st, 0), 0);
	cr_assert_eq(st.st_mtim.tv_sec, LZ_DIR_MTIME, "%s mtime changed",
		     path);
	cr_assert_eq(st.st_mtim.tv_nsec, 5000, "%s mtime nsec changed", path);
}

/* the stub at path is exactly the original tree's entry */
static void lz_stub_check(const char *path)
{
	const struct bundle_entry *e = bundle_tree_find(lz_orig, path);
	char key[BUNDLE_KEY_MAX + 1];
	const char *error;
	uint64_t size;
	struct stat st;
	int fd;

	cr_assert_not_null(e, "%s", path);
	fd = openat(lz_user_fd, path, O_RDONLY);
	cr_assert_geq(fd, 0, "open(%s): %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(bundle_stub_attr_read(fd, key, &size, &error), 1);
	cr_assert_str_eq(key, e->key);
	cr_assert_eq(size, e->size);
	cr_assert_eq(st.st_size, 0);
	cr_assert_eq(st.st_mode & 07777, e->mode);
	cr_assert_eq(st.st_mtim.tv_sec, e->mtime_sec);
	cr_assert_eq(st.st_mtim.tv_nsec, (long)e->mtime_nsec);
	close(fd);
}

static void lz_init(void)
{
	const char *error;

	obox_log_set_sink(lz_log_func);
	lz_log[0] = '\0';
	lz_tmp = objtest_mkdtemp("lazydir");
	cr_assert_not_null(lz_tmp);
	snprintf(lz_cache, sizeof(lz_cache), "%s", lz_tmp);
	lz_meta_fd = objtest_mkdir_open(lz_tmp, "meta");
	lz = lazydir_init(lz_cache, &error);
	cr_assert_not_null(lz, "%s", error);
}

/* a new lazydir, as a restart has it */
static void lz_restart(void (*discard)(const char *user, void *context),
		       void *context)
{
	const char *error;

	lazydir_deinit(&lz);
	lz = lazydir_init(lz_cache, &error);
	cr_assert_not_null(lz, "%s", error);
	(void)lazydir_startup(lz, lz_meta_fd, discard, context);
}

static void lz_fini(void)
{
	lazydir_deinit(&lz);
	bundle_tree_free(&lz_orig);
	if (lz_user_fd >= 0)
		close(lz_user_fd);
	if (lz_meta_fd >= 0)
		close(lz_meta_fd);
	lz_user_fd = lz_meta_fd = -1;
	objtest_rm_rf(lz_tmp);
	free(lz_tmp);
	obox_log_set_sink(NULL);
}

#endif
