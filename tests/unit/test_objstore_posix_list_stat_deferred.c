/* test_objstore_posix_list_stat_deferred.c: the file:// listing takes an
 * entry's type from readdir() and stats an object only when it gives it
 * (a cold load lists a 20,000-mail folder to give 1,000 keys, then again
 * from a watermark: it stat()ed every object twice).  What it gives is
 * unchanged: every key in order with its own size and mtime, also after
 * start_after and when the listing stops early; symlinks, FIFOs and the
 * directories' own entries are no objects; a directory holding keys after
 * start_after is entered. */
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define KEYS 3000

static char *dir;
static struct objstore *store;

static void setup(void)
{
	struct objstore_settings set = { .no_fsync = true };

	dir = objtest_mkdtemp("posix-list-stat");
	cr_assert_not_null(dir);
	store = objtest_open_posix_store(dir, &set);
}

static void teardown(void)
{
	objstore_deinit(&store);
	objtest_rm_rf(dir);
	free(dir);
}

static void key_of(char *buf, size_t size, unsigned int i)
{
	snprintf(buf, size, "u/f/m%05u", i);
}

/* object i holds i % 97 + 1 bytes and was last modified at 1e9 + i */
static void fill(void)
{
	char key[64], path[1024], buf[128];

	memset(buf, 'x', sizeof(buf));
	for (unsigned int i = 0; i < KEYS; i++) {
		key_of(key, sizeof(key), i);
		cr_assert_eq(objstore_put(store, key, buf, i % 97 + 1, NULL,
					  0), 0, "%s", objstore_error());
		snprintf(path, sizeof(path), "%s/store/%s", dir, key);
		struct timeval tv[2] = { { 1000000000 + i, 0 },
					 { 1000000000 + i, 0 } };
		cr_assert_eq(utimes(path, tv), 0, "%s", path);
	}
	/* not objects: a symlink and a FIFO among them */
	snprintf(path, sizeof(path), "%s/store/u/f/m01000a", dir);
	cr_assert_eq(symlink("m00001", path), 0);
	snprintf(path, sizeof(path), "%s/store/u/f/m02000a", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
}

struct seen {
	unsigned int next, count, stop_after;
};

static int check_cb(const struct objstore_list_entry *entry, void *context)
{
	struct seen *seen = context;
	char key[64];

	cr_assert(!entry->is_prefix);
	key_of(key, sizeof(key), seen->next);
	cr_assert_str_eq(entry->key, key);
	cr_assert_eq(entry->size, seen->next % 97 + 1, "%s: size %llu",
		     entry->key, (unsigned long long)entry->size);
	cr_assert_eq(entry->mtime, (time_t)(1000000000 + seen->next),
		     "%s: mtime %lld", entry->key, (long long)entry->mtime);
	seen->next++;
	seen->count++;
	return seen->stop_after != 0 && seen->count >= seen->stop_after;
}

Test(objstore_posix_list_stat_deferred, stops_early_with_sizes_and_mtimes,
     .init = setup, .fini = teardown)
{
	struct seen seen = { .stop_after = 1000 };

	fill();
	cr_assert_eq(objstore_list(store, "u/", NULL, check_cb, &seen), 0,
		     "%s", objstore_error());
	cr_assert_eq(seen.count, 1000);

	struct seen all = { 0 };

	cr_assert_eq(objstore_list(store, "u/f/m", NULL, check_cb, &all), 0,
		     "%s", objstore_error());
	cr_assert_eq(all.count, KEYS);
}

Test(objstore_posix_list_stat_deferred, start_after_with_sizes_and_mtimes,
     .init = setup, .fini = teardown)
{
	char key[64];

	fill();
	for (unsigned int from = 0; from < KEYS; from += 997) {
		struct seen seen = { .next = from + 1 };

		key_of(key, sizeof(key), from);
		cr_assert_eq(objstore_list_from(store, "u/", key, check_cb,
						&seen), 0, "%s",
			     objstore_error());
		cr_assert_eq(seen.count, KEYS - from - 1, "after %s: %u", key,
			     seen.count);
	}
	/* a start_after between the keys, before a deeper directory */
	struct seen seen = { .next = 0 };

	cr_assert_eq(objstore_list_from(store, "u/", "u/", check_cb, &seen),
		     0, "%s", objstore_error());
	cr_assert_eq(seen.count, KEYS);
}

static int count_cb(const struct objstore_list_entry *entry, void *context)
{
	char ***keys = context;
	size_t n = 0;

	while ((*keys)[n] != NULL)
		n++;
	*keys = realloc(*keys, (n + 2) * sizeof(char *));
	cr_assert_not_null(*keys);
	(*keys)[n] = strdup(entry->key);
	(*keys)[n + 1] = NULL;
	return 0;
}

Test(objstore_posix_list_stat_deferred, directories_after_start_after,
     .init = setup, .fini = teardown)
{
	static const char *const want[] = { "a/b/c2", "a/b2/x", "a/c", NULL };
	static const char *const put[] = { "a/b/c1", "a/b/c2", "a/b2/x",
		"a/a/y", "a/c", NULL };
	char **keys = calloc(1, sizeof(char *));
	size_t n;

	for (n = 0; put[n] != NULL; n++)
		cr_assert_eq(objstore_put(store, put[n], "v", 1, NULL, 0), 0);
	cr_assert_eq(objstore_list_from(store, "a/", "a/b/c1", count_cb,
					&keys), 0, "%s", objstore_error());
	for (n = 0; want[n] != NULL; n++) {
		cr_assert_not_null(keys[n], "missing %s", want[n]);
		cr_assert_str_eq(keys[n], want[n]);
	}
	cr_assert_null(keys[n], "extra %s", keys[n]);
	for (n = 0; keys[n] != NULL; n++)
		free(keys[n]);
	free(keys);
}
