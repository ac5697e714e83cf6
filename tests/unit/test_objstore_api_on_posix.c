/* test_objstore_api_on_posix.c: the objstore conformance suite on the
 * file:// backend, plus what only the file:// backend has to get right:
 * the reserved temporary directory, file/prefix conflicts, symlinks, modes,
 * untrusted metadata xattrs, removal of empty directories and of stale
 * temporary files. */
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static char *root;

static struct objstore *open_posix(void)
{
	struct objstore_settings set = { .no_fsync = true };
	struct objstore *new_store;
	const char *error;
	char url[1024];

	root = objtest_mkdtemp("objstore-posix");
	cr_assert_not_null(root);
	snprintf(url, sizeof(url), "file://%s", root);
	cr_assert_eq(objstore_init(url, &set, &new_store, &error), 0,
		     "init: %s", error);
	return new_store;
}

static void close_posix(struct objstore **_store)
{
	objstore_deinit(_store);
	cr_assert_null(*_store);
	objtest_rm_rf(root);
	free(root);
	root = NULL;
}

#define CONF_SUITE objstore_api_on_posix
#define CONF_EXACT_COUNTS 1
#define conf_open open_posix
#define conf_close close_posix
#include "objstore-conformance.h"

static void root_path(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", root, rel);
}

static bool exists(const char *rel)
{
	char path[2048];
	struct stat st;

	root_path(path, sizeof(path), rel);
	return lstat(path, &st) == 0;
}

static unsigned int count_dir(const char *rel)
{
	char path[2048], cmd[2200];
	unsigned int n = 0;
	FILE *f;

	root_path(path, sizeof(path), rel);
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%u", &n), 1);
	pclose(f);
	return n;
}

Test(objstore_posix, layout_and_modes, .init = conf_init, .fini = conf_fini)
{
	char path[2048];
	struct stat st;

	cr_assert_eq(objstore_put(store, "a/b/c", "data", 4, NULL, 0), 0);
	root_path(path, sizeof(path), "a/b/c");
	cr_assert_eq(lstat(path, &st), 0, "key is not a file below the root");
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);
	root_path(path, sizeof(path), "a/b");
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 0077, 0);
	/* no temporary file is left behind */
	cr_assert_eq(count_dir(".oboxfs-tmp"), 0);
}

Test(objstore_posix, reserved_tmp_dir, .init = conf_init, .fini = conf_fini)
{
	struct objtest_list list = { 0 };
	struct objstore_stat st;

	cr_assert_eq(objstore_put(store, ".oboxfs-tmp/x", "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), "reserved") != NULL, "%s",
		  objstore_error());
	cr_assert_eq(objstore_put(store, ".oboxfs-tmp", "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert_eq(objstore_head(store, ".oboxfs-tmp/x", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	/* similar names are fine */
	cr_assert_eq(objstore_put(store, ".oboxfs-tmpx", "x", 1, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "a/.oboxfs-tmp", "x", 1, NULL, 0), 0);
	/* a stray file in the tmp dir is never listed */
	char path[2048];
	root_path(path, sizeof(path), ".oboxfs-tmp/stray");
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert_eq(objtest_list(store, "", NULL, &list), 0);
	cr_assert_eq(list.count, 2);
	cr_assert_str_eq(list.keys[0], ".oboxfs-tmpx");
	cr_assert_str_eq(list.keys[1], "a/.oboxfs-tmp");
	objtest_list_free(&list);
	cr_assert_eq(objtest_list(store, ".oboxfs-tmp/", NULL, &list), 0);
	cr_assert_eq(list.count, 0);
	objtest_list_free(&list);
}

Test(objstore_posix, key_prefix_conflict, .init = conf_init, .fini = conf_fini)
{
	cr_assert_eq(objstore_put(store, "a", "file a", 6, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "a/b", "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	cr_assert(strstr(objstore_error(), "a/b") != NULL);
	conf_assert_get("a", "file a", 6);

	cr_assert_eq(objstore_put(store, "c/d", "file c/d", 8, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "c", "x", 1, NULL, 0), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	conf_assert_get("c/d", "file c/d", 8);
	cr_assert_eq(objstore_copy(store, "a", "c"), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
	conf_assert_get("c/d", "file c/d", 8);
	/* the prefix is no object */
	struct objstore_stat st;
	cr_assert_eq(objstore_head(store, "c", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND);
	cr_assert_eq(count_dir(".oboxfs-tmp"), 0);
}

Test(objstore_posix, symlinks_not_followed, .init = conf_init,
     .fini = conf_fini)
{
	char *outside = objtest_mkdtemp("objstore-outside");
	char path[2048], target[2048];
	struct objtest_list list = { 0 };
	struct objstore_stat st;
	void *data;
	size_t size;

	cr_assert_not_null(outside);
	snprintf(target, sizeof(target), "%s/secret", outside);
	FILE *f = fopen(target, "w");
	cr_assert_not_null(f);
	fputs("secret", f);
	fclose(f);
	root_path(path, sizeof(path), "dirlink");
	cr_assert_eq(symlink(outside, path), 0);
	root_path(path, sizeof(path), "filelink");
	cr_assert_eq(symlink(target, path), 0);

	cr_assert_eq(objstore_get(store, "dirlink/secret", 0, OBJSTORE_TO_END,
				  100, &data, &size), -1);
	cr_assert_neq(objstore_errcode(), OBJSTORE_ERR_NONE);
	cr_assert_eq(objstore_get(store, "filelink", 0, OBJSTORE_TO_END, 100,
				  &data, &size), -1);
	cr_assert_eq(objstore_head(store, "filelink", &st), -1);
	cr_assert_eq(objstore_put(store, "dirlink/new", "x", 1, NULL, 0), -1);
	snprintf(target, sizeof(target), "%s/new", outside);
	cr_assert_eq(access(target, F_OK), -1, "put followed a symlink");
	cr_assert_eq(objstore_copy(store, "filelink", "copied"), -1);
	/* not a key of this store: "deleted" or refused, never followed */
	(void)objstore_delete(store, "dirlink/secret");
	snprintf(target, sizeof(target), "%s/secret", outside);
	cr_assert_eq(access(target, F_OK), 0, "delete followed a symlink");
	cr_assert_eq(objtest_list(store, "", NULL, &list), 0);
	cr_assert_eq(list.count, 0);
	objtest_list_free(&list);
	objtest_rm_rf(outside);
	free(outside);
}

static const char *bad_meta_values[] = {
	"not json",
	"[1,2]",
	"{\"name\": 1}",
	"{\"UPPER\": \"x\"}",
	"{\"bad name\": \"x\"}",
	"{\"a\": \"x\", \"a\": \"y\"}",
	"{\"a\": {\"hex\": \"zz\"}}",
	"{\"a\": {\"hex\": \"00\"}}",
	"{\"a\": \"nul\\u0000inside\"}",
};

Test(objstore_posix, untrusted_metadata, .init = conf_init, .fini = conf_fini)
{
	struct objstore_stat st;
	char path[2048];

	cr_assert_eq(objstore_put(store, "m", "x", 1, NULL, 0), 0);
	root_path(path, sizeof(path), "m");
	for (unsigned int i = 0; i < sizeof(bad_meta_values) /
		     sizeof(bad_meta_values[0]); i++) {
		cr_assert_eq(setxattr(path, "user.oboxfs.meta",
				      bad_meta_values[i],
				      strlen(bad_meta_values[i]), 0), 0);
		cr_assert_eq(objstore_head(store, "m", &st), -1, "accepted %s",
			     bad_meta_values[i]);
		cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_INVALID);
		cr_assert(strstr(objstore_error(), "metadata") != NULL);
		cr_assert_eq(objstore_copy(store, "m", "m2"), -1);
	}
	/* a 300-byte value is too long even if it is valid JSON */
	char big[400];
	memset(big, 'x', sizeof(big));
	memcpy(big, "{\"a\":\"", 6);
	memcpy(big + 306, "\"}", 3);
	cr_assert_eq(setxattr(path, "user.oboxfs.meta", big, strlen(big), 0),
		     0);
	cr_assert_eq(objstore_head(store, "m", &st), -1);
	/* no xattr at all: an object without metadata */
	cr_assert_eq(removexattr(path, "user.oboxfs.meta"), 0);
	cr_assert_eq(objstore_head(store, "m", &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.meta_count, 0);
	objstore_stat_free(&st);
}

Test(objstore_posix, binary_metadata_value, .init = conf_init,
     .fini = conf_fini)
{
	struct objstore_meta meta = { "bin", "\xff\xfe latin1 \xe9" };
	struct objstore_stat st;

	cr_assert_eq(objstore_put(store, "bin", "x", 1, &meta, 1), 0, "%s",
		     objstore_error());
	cr_assert_eq(objstore_head(store, "bin", &st), 0, "%s",
		     objstore_error());
	cr_assert_str_eq(objstore_stat_meta(&st, "bin"), meta.value);
	objstore_stat_free(&st);
}

Test(objstore_posix, delete_removes_empty_dirs, .init = conf_init,
     .fini = conf_fini)
{
	cr_assert_eq(objstore_put(store, "x/y/z/k1", "1", 1, NULL, 0), 0);
	cr_assert_eq(objstore_put(store, "x/other", "2", 1, NULL, 0), 0);
	cr_assert_eq(objstore_delete(store, "x/y/z/k1"), 0);
	cr_assert(!exists("x/y"), "empty directories were left");
	cr_assert(exists("x/other"));
	cr_assert_eq(objstore_delete(store, "x/other"), 0);
	cr_assert(!exists("x"));
	cr_assert(exists(".oboxfs-tmp"));
}

struct churn_ctx {
	unsigned int index;
	int failures;
};

/* puts and deletes racing on the same directories */
static void *churn_thread(void *context)
{
	struct churn_ctx *ctx = context;
	char key[64];

	for (unsigned int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "churn/d%u/e/k%u", i % 3,
			 ctx->index);
		if (objstore_put(store, key, "v", 1, NULL, 0) < 0) {
			fprintf(stderr, "%s\n", objstore_error());
			ctx->failures++;
		}
		if (objstore_delete(store, key) < 0)
			ctx->failures++;
	}
	return NULL;
}

Test(objstore_posix, put_delete_race, .init = conf_init, .fini = conf_fini)
{
	struct churn_ctx ctx[4];
	pthread_t threads[4];

	for (unsigned int i = 0; i < 4; i++) {
		ctx[i] = (struct churn_ctx){ .index = i };
		pthread_create(&threads[i], NULL, churn_thread, &ctx[i]);
	}
	for (unsigned int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		cr_assert_eq(ctx[i].failures, 0);
	}
	cr_assert(!exists("churn"));
}

/* plant a file in the store's temporary directory, modified age_secs ago */
static void plant_tmp(const char *name, time_t age_secs)
{
	char path[2048];
	struct timespec times[2];
	int fd;

	snprintf(path, sizeof(path), "%s/.oboxfs-tmp/%s", root, name);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
	cr_assert(fd >= 0, "open(%s) failed: %m", path);
	cr_assert_eq(write(fd, "partial", 7), 7);
	close(fd);
	cr_assert_eq(clock_gettime(CLOCK_REALTIME, &times[0]), 0);
	times[0].tv_sec -= age_secs;
	times[1] = times[0];
	cr_assert_eq(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

Test(objstore_posix, init_removes_stale_tmp_files, .init = conf_init,
     .fini = conf_fini)
{
	struct objstore_settings set = { .no_fsync = true };
	struct objstore *second;
	const char *error;
	char url[1024], path[2048];

	/* left by crashed writers */
	plant_tmp("tmp.1234.0.5678", 2 * 3600);
	plant_tmp("stray-old", 3600 + 120);
	/* possibly being written by another process right now */
	plant_tmp("tmp.4321.7.8765", 0);
	plant_tmp("tmp.4321.8.9999", 3600 - 120);
	/* directories are never touched */
	snprintf(path, sizeof(path), "%s/.oboxfs-tmp/olddir", root);
	cr_assert_eq(mkdir(path, 0700), 0);
	struct timespec old[2] = { { .tv_sec = 1000 }, { .tv_sec = 1000 } };
	cr_assert_eq(utimensat(AT_FDCWD, path, old, 0), 0);
	cr_assert_eq(count_dir(".oboxfs-tmp"), 5);

	snprintf(url, sizeof(url), "file://%s", root);
	cr_assert_eq(objstore_init(url, &set, &second, &error), 0, "init: %s",
		     error);
	cr_assert(!exists(".oboxfs-tmp/tmp.1234.0.5678"),
		  "stale temporary file was left");
	cr_assert(!exists(".oboxfs-tmp/stray-old"));
	cr_assert(exists(".oboxfs-tmp/tmp.4321.7.8765"),
		  "a fresh temporary file was removed");
	cr_assert(exists(".oboxfs-tmp/tmp.4321.8.9999"));
	cr_assert(exists(".oboxfs-tmp/olddir"));
	cr_assert_eq(count_dir(".oboxfs-tmp"), 3);
	/* both stores still work on the same root */
	cr_assert_eq(objstore_put(second, "k", "v", 1, NULL, 0), 0, "%s",
		     objstore_error());
	conf_assert_get("k", "v", 1);
	objstore_deinit(&second);
	cr_assert_null(second);
	cr_assert_eq(count_dir(".oboxfs-tmp"), 3);
}

Test(objstore_posix, init_errors)
{
	struct objstore_settings set = { .no_fsync = true };
	struct objstore *s;
	const char *error;

	cr_assert_eq(objstore_init("file://relative/dir", &set, &s, &error),
		     -1);
	cr_assert(strstr(error, "absolute") != NULL, "%s", error);
	cr_assert_null(s);
	cr_assert_eq(objstore_init("file:///nonexistent/oboxfs/dir", &set, &s,
				   &error), -1);
	cr_assert(strstr(error, "/nonexistent/oboxfs/dir") != NULL, "%s",
		  error);
	cr_assert_eq(objstore_init("file:///etc/passwd", &set, &s, &error), -1);
	cr_assert(strstr(error, "Not a directory") != NULL, "%s", error);
}
