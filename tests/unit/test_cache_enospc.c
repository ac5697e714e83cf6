/* test_cache_enospc.c: a cache whose cap is larger than its disk (a 2 MiB
 * tmpfs): writes hit ENOSPC, the cache evicts and succeeds, or serves the
 * object from memory when nothing can be evicted; a partial file is never
 * served or left behind. */
#include "cachedir.h"
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define OBJECTS 16
#define SIZE (300 * 1024)
#define BIG (3 * 1024 * 1024)

static char *dir;
static char cache_path[4096];
static bool mounted;
static struct objstore *store;
static struct cachedir *cd;
static char keys[OBJECTS][128];
static char big_key[128];

static void init(void)
{
	struct objstore_settings set = { .no_fsync = true };
	static unsigned char buf[BIG];
	const char *error;

	dir = objtest_mkdtemp("cache_enospc");
	cr_assert_not_null(dir);
	snprintf(cache_path, sizeof(cache_path), "%s/cache", dir);
	cr_assert_eq(mkdir(cache_path, 0700), 0);
	/* a private mount namespace: the tmpfs goes away with this process
	   even if it dies before fini.  Where / is not a mount point (a
	   chroot, some containers) it cannot be made private (EINVAL): the
	   tmpfs then propagates like any mount, and fini unmounts it. */
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare() failed: %s",
		     strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		cr_assert_eq(errno, EINVAL, "mount(/, MS_PRIVATE) failed: %s",
			     strerror(errno));
	cr_assert_eq(mount("tmpfs", cache_path, "tmpfs", 0, "size=2m,mode=0700"),
		     0, "mount(tmpfs) failed: %s", strerror(errno));
	mounted = true;
	store = objtest_open_posix_store(dir, &set);
	/* a cap 8 times the disk */
	cr_assert_eq(cachedir_init(cache_path, 16 * 1024 * 1024, store, &cd,
				   &error), 0, "%s", error);
	for (unsigned int i = 0; i < OBJECTS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "aa/bbb/u@example.com"
			 "/mailboxes/%032x/%032x", 5, i + 1);
		objtest_random_bytes(buf, SIZE, i);
		cr_assert_eq(objstore_put(store, keys[i], buf, SIZE, NULL, 0), 0);
	}
	snprintf(big_key, sizeof(big_key), "aa/bbb/u@example.com"
		 "/mailboxes/%032x/%032x", 5, 999);
	objtest_random_bytes(buf, BIG, 999);
	cr_assert_eq(objstore_put(store, big_key, buf, BIG, NULL, 0), 0);
}

static void fini(void)
{
	cachedir_deinit(&cd);
	if (store != NULL)
		objstore_deinit(&store);
	if (mounted && umount2(cache_path, 0) < 0)
		(void)umount2(cache_path, MNT_DETACH);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(cache_enospc, .init = init, .fini = fini, .timeout = 60);

static bool content_ok(unsigned int i, int fd)
{
	static __thread unsigned char want[SIZE], got[SIZE + 1];

	objtest_random_bytes(want, SIZE, i);
	return pread(fd, got, sizeof(got), 0) == SIZE &&
		memcmp(got, want, SIZE) == 0;
}

/* every file in the cache is a complete object (no temporary file) */
static unsigned int files;
static int walk_cb(const char *path, const struct stat *sb, int flag,
		   struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_F) {
		files++;
		cr_assert_eq(sb->st_size, SIZE, "partial file %s", path);
		cr_assert_null(strstr(path, ".tmp."), "leftover %s", path);
	}
	return 0;
}

static void check_files(void)
{
	files = 0;
	cr_assert_eq(nftw(cache_path, walk_cb, 16, FTW_PHYS), 0);
}

Test(cache_enospc, open_evicts_when_disk_full)
{
	struct cachedir_stats st;
	int fd;

	for (unsigned int round = 0; round < 2; round++) {
		for (unsigned int i = 0; i < OBJECTS; i++) {
			cr_assert_eq(cachedir_open(cd, keys[i], SIZE, &fd), 0,
				     "object %u: %s", i, cachedir_error());
			cr_assert(content_ok(i, fd), "object %u: bad bytes", i);
			close(fd);
			check_files();
		}
	}
	cachedir_get_stats(cd, &st);
	cr_assert_gt(st.evictions, 0);
	cr_assert_eq(st.fetch_errors, 0);
	cr_assert_eq(st.reserved, 0);
	cr_assert_eq(st.bytes, (uint64_t)files * SIZE);
	cr_assert_lt(st.bytes, 2 * 1024 * 1024);
}

Test(cache_enospc, add_evicts_when_disk_full)
{
	static unsigned char buf[SIZE];
	char path[4200];
	int src, fd;

	snprintf(path, sizeof(path), "%s/src", dir);
	for (unsigned int i = 0; i < OBJECTS; i++) {
		src = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		cr_assert_geq(src, 0);
		objtest_random_bytes(buf, SIZE, i);
		cr_assert_eq(write(src, buf, SIZE), SIZE);
		cr_assert_eq(cachedir_add_fd(cd, keys[i], src, SIZE), 0,
			     "object %u: %s", i, cachedir_error());
		close(src);
		check_files();
	}
	/* the last one added is there */
	cr_assert_eq(cachedir_open(cd, keys[OBJECTS - 1], SIZE, &fd), 0);
	cr_assert(content_ok(OBJECTS - 1, fd));
	close(fd);
	struct cachedir_stats st;
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.hits, 1);
}

Test(cache_enospc, too_big_for_disk_served_from_memory)
{
	static unsigned char want[BIG], got[BIG];
	struct cachedir_stats st;
	int fd;

	for (unsigned int i = 0; i < 3; i++) {
		cr_assert_eq(cachedir_open(cd, keys[i], SIZE, &fd), 0);
		close(fd);
	}
	/* it does not fit on the disk even after evicting everything: the
	   mail is still read, from memory, and nothing of it is left on
	   the disk */
	cr_assert_eq(cachedir_open(cd, big_key, BIG, &fd), 0, "%s",
		     cachedir_error());
	objtest_random_bytes(want, BIG, 999);
	cr_assert_eq(pread(fd, got, BIG, 0), (ssize_t)BIG);
	cr_assert_eq(memcmp(got, want, BIG), 0);
	close(fd);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.misses, 4, "misses %llu", (unsigned long long)st.misses);
	cr_assert_eq(st.reserved, 0);
	check_files();	/* no partial or temporary file */
	cr_assert_eq(st.bytes, (uint64_t)files * SIZE);
	/* the cache still works */
	cr_assert_eq(cachedir_open(cd, keys[5], SIZE, &fd), 0, "%s",
		     cachedir_error());
	cr_assert(content_ok(5, fd));
	close(fd);
}

Test(cache_enospc, shrink_keeps_the_room_it_made)
{
	struct cachedir_stats st;
	int fd;

	for (unsigned int i = 0; i < 4; i++) {
		cr_assert_eq(cachedir_open(cd, keys[i], SIZE, &fd), 0);
		close(fd);
	}
	/* the owner's own write hit ENOSPC: room for one object is made,
	   and the cache must not fill it again */
	cr_assert_eq(cachedir_shrink(cd, SIZE), 0);
	cachedir_get_stats(cd, &st);
	cr_assert_eq(st.bytes, 3 * SIZE, "%llu", (unsigned long long)st.bytes);
	for (unsigned int i = 4; i < 8; i++) {
		cr_assert_eq(cachedir_open(cd, keys[i], SIZE, &fd), 0, "%s",
			     cachedir_error());
		cr_assert(content_ok(i, fd));
		close(fd);
		cachedir_get_stats(cd, &st);
		cr_assert_leq(st.bytes, 3 * SIZE, "grew back to %llu",
			      (unsigned long long)st.bytes);
	}
}

struct worker {
	pthread_t thread;
	unsigned int seed;
	unsigned int failures, bad;
};

static void *worker_run(void *context)
{
	struct worker *w = context;
	int fd;

	for (unsigned int n = 0; n < 40; n++) {
		unsigned int i = (unsigned int)rand_r(&w->seed) % OBJECTS;

		if (cachedir_open(cd, keys[i], SIZE, &fd) < 0) {
			fprintf(stderr, "object %u: %s\n", i, cachedir_error());
			w->failures++;
			continue;
		}
		if (!content_ok(i, fd))
			w->bad++;
		close(fd);
	}
	return NULL;
}

Test(cache_enospc, concurrent_opens_on_full_disk)
{
	struct worker w[3] = { { .seed = 1 }, { .seed = 2 }, { .seed = 3 } };

	for (unsigned int t = 0; t < 3; t++)
		cr_assert_eq(pthread_create(&w[t].thread, NULL, worker_run,
					    &w[t]), 0);
	for (unsigned int t = 0; t < 3; t++)
		pthread_join(w[t].thread, NULL);
	for (unsigned int t = 0; t < 3; t++) {
		cr_assert_eq(w[t].bad, 0, "wrong bytes served");
		cr_assert_eq(w[t].failures, 0);
	}
	check_files();
}
