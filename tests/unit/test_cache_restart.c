/* test_cache_restart.c: reopening the cache keeps its entries (no GET), in
 * mtime order; a corrupted or truncated file is dropped, never served;
 * leftover temporary files and unknown files are deleted. */
#include "cachedir.h"
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OBJECTS 4
#define SIZE 5000

static char *dir;
static char cache_path[4096];
static struct objstore *store;
static struct cachedir *cd;
static char keys[OBJECTS][128];

static void reopen(uint64_t cap)
{
	const char *error;

	cachedir_deinit(&cd);
	cr_assert_eq(cachedir_init(cache_path, cap, store, &cd, &error), 0,
		     "%s", error);
}

static void init(void)
{
	struct objstore_settings set = { .no_fsync = true };
	unsigned char buf[SIZE];

	dir = objtest_mkdtemp("cache_restart");
	cr_assert_not_null(dir);
	store = objtest_open_posix_store(dir, &set);
	snprintf(cache_path, sizeof(cache_path), "%s/cache", dir);
	reopen(1024 * 1024);
	for (unsigned int i = 0; i < OBJECTS; i++) {
		/* half oid keys, half keys named by their hash */
		if (i % 2 == 0)
			snprintf(keys[i], sizeof(keys[i]), "aa/bbb/u@example.com"
				 "/mailboxes/%032x/%032x", 3, i + 1);
		else
			snprintf(keys[i], sizeof(keys[i]), "other/key-%u", i);
		objtest_random_bytes(buf, sizeof(buf), i);
		cr_assert_eq(objstore_put(store, keys[i], buf, sizeof(buf),
					  NULL, 0), 0);
	}
}

static void fini(void)
{
	cachedir_deinit(&cd);
	if (store != NULL)
		objstore_deinit(&store);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(cache_restart, .init = init, .fini = fini, .timeout = 60);

static uint64_t gets(void)
{
	struct objstore_stats st;

	objstore_get_stats(store, &st);
	return st.requests[OBJSTORE_OP_GET];
}

/* open key i and check its bytes */
static void open_check(unsigned int i)
{
	unsigned char want[SIZE], got[SIZE + 1];
	int fd;

	cr_assert_eq(cachedir_open(cd, keys[i], SIZE, &fd), 0, "%s",
		     cachedir_error());
	objtest_random_bytes(want, sizeof(want), i);
	cr_assert_eq(pread(fd, got, sizeof(got), 0), SIZE);
	cr_assert_eq(memcmp(got, want, SIZE), 0, "object %u: wrong bytes", i);
	close(fd);
}

static char found_path[4096];
static unsigned int found_files;

static int find_cb(const char *path, const struct stat *sb, int flag,
		   struct FTW *ftw)
{
	(void)sb; (void)ftw;
	if (flag == FTW_F) {
		found_files++;
		snprintf(found_path, sizeof(found_path), "%s", path);
	}
	return 0;
}

/* the path of the only cache file, which must exist */
static const char *only_file(void)
{
	found_files = 0;
	cr_assert_eq(nftw(cache_path, find_cb, 16, FTW_PHYS), 0);
	cr_assert_eq(found_files, 1, "%u files", found_files);
	return found_path;
}

Test(cache_restart, entries_kept)
{
	struct cachedir_stats st;

	for (unsigned int i = 0; i < OBJECTS; i++)
		open_check(i);
	cr_assert_eq(gets(), OBJECTS);
	reopen(1024 * 1024);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, OBJECTS);
	cr_assert_eq(st.bytes, OBJECTS * SIZE);
	for (unsigned int i = 0; i < OBJECTS; i++)
		open_check(i);
	cr_assert_eq(gets(), OBJECTS, "entries were fetched again");
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.hits, OBJECTS);
}

struct damage {
	char name[16];
	off_t truncate_to;	/* -1: flip a byte instead */
	off_t flip_at;
};

ParameterizedTestParameters(cache_restart, damaged_file_dropped)
{
	static struct damage params[] = {
		{ "flip-first", -1, 0 },
		{ "flip-last", -1, SIZE - 1 },
		{ "truncated", SIZE - 1, 0 },
		{ "empty", 0, 0 },
	};
	return cr_make_param_array(struct damage, params,
				   sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct damage *p, cache_restart, damaged_file_dropped)
{
	struct cachedir_stats st;
	unsigned char c;
	int fd;

	open_check(1);
	cachedir_deinit(&cd);
	fd = open(only_file(), O_RDWR);
	cr_assert_geq(fd, 0);
	if (p->truncate_to >= 0) {
		cr_assert_eq(ftruncate(fd, p->truncate_to), 0);
	} else {
		cr_assert_eq(pread(fd, &c, 1, p->flip_at), 1);
		c ^= 0x40;
		cr_assert_eq(pwrite(fd, &c, 1, p->flip_at), 1);
	}
	close(fd);
	reopen(1024 * 1024);
	/* served from the store again, with the right bytes */
	open_check(1);
	cr_assert_eq(gets(), 2, "%s: damaged file served", p->name);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, 1);
	cr_assert_eq(st.bytes, SIZE);
	only_file();
}

Test(cache_restart, damaged_and_gone_from_store_fails)
{
	int fd;

	open_check(0);
	cachedir_deinit(&cd);
	fd = open(only_file(), O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "X", 1, 10), 1);
	close(fd);
	cr_assert_eq(objstore_delete(store, keys[0]), 0);
	reopen(1024 * 1024);
	cr_assert_eq(cachedir_open(cd, keys[0], SIZE, &fd), -1,
		     "corrupted file was served");
	/* not a store failure: the store does not have it */
	cr_assert_eq(errno, CACHEDIR_ERR_MISSING);
	found_files = 0;
	cr_assert_eq(nftw(cache_path, find_cb, 16, FTW_PHYS), 0);
	cr_assert_eq(found_files, 0);
}

Test(cache_restart, leftovers_deleted)
{
	char path[4200];
	struct cachedir_stats st;
	int fd;

	open_check(2);
	cachedir_deinit(&cd);
	snprintf(path, sizeof(path), "%s/00", cache_path);
	(void)mkdir(path, 0700);
	const char *junk[] = { "00/.tmp.0123456789abcdef",
			       "00/00000000000000000000000000000001",
			       "00/zz.junk" };
	for (unsigned int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", cache_path, junk[i]);
		fd = open(path, O_WRONLY | O_CREAT, 0600);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, "junk", 4), 4);
		close(fd);
	}
	reopen(1024 * 1024);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, 1);
	only_file();
	open_check(2);
	cr_assert_eq(gets(), 1);
}

Test(cache_restart, lru_order_from_mtime_and_lower_cap)
{
	struct cachedir_stats st;
	char path[4096];

	/* file times are kernel-tick coarse: space the accesses */
	for (unsigned int i = 0; i < OBJECTS; i++) {
		open_check(i);
		usleep(20 * 1000);
	}
	/* hit 0 last: it is the most recently used */
	open_check(0);
	reopen(2 * SIZE + 100);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.entries, 2);
	cr_assert_eq(st.evictions, 2);
	cr_assert_leq(st.bytes, 2 * SIZE + 100);
	/* 0 (touched) and 3 (newest) remain */
	uint64_t before = gets();
	open_check(0);
	open_check(3);
	cr_assert_eq(gets(), before, "kept the wrong entries");
	snprintf(path, sizeof(path), "%s", cache_path);
	found_files = 0;
	cr_assert_eq(nftw(path, find_cb, 16, FTW_PHYS), 0);
	cr_assert_eq(found_files, 2);
}
