/* test_fs_mailcache_fetch.c: concurrent misses of one mail in the mail
 * cache: the threads waiting for a shared fetch get its result (a failure
 * is not retried by each of them in turn), and a mail released while it is
 * being fetched does not come back into the cache. */
#include "helper-objstore.h"
#include "ids.h"
#include "keys.h"
#include "mailcache.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAIL "From: a@example.com\r\n\r\nbody\r\n"
#define READERS 4

static char *dir;
static struct objstore *store;
static struct mailcache *mc;
static char key[OBJSTORE_KEY_MAX + 1];

/* a file:// store with fault spec fault holding one mail as key */
static void setup_store(const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };
	char path[4096], guid[IDS_HEX_LEN + 1], oid[IDS_HEX_LEN + 1];
	const char *error;

	store = objtest_open_posix_store(dir, &set);
	snprintf(path, sizeof(path), "%s/mail", dir);
	cr_assert_eq(mailcache_init(path, 1024 * 1024, store, &mc, &error), 0,
		     "%s", error);
	cr_assert_eq(ids_generate(guid), 0);
	cr_assert_eq(ids_generate(oid), 0);
	cr_assert_eq(keys_mail_key("user@example.com", guid, oid, key,
				  sizeof(key)), 0);
	cr_assert_eq(objstore_put(store, key, MAIL, strlen(MAIL), NULL, 0), 0,
		     "%s", objstore_error());
}

static void init(void)
{
	dir = objtest_mkdtemp("mailcache_fetch");
	cr_assert_not_null(dir);
}

static void fini(void)
{
	mailcache_deinit(&mc);
	if (store != NULL)
		objstore_deinit(&store);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(fs_mailcache_fetch, .init = init, .fini = fini);

struct reader {
	pthread_t thread;
	int ret, err;
};

static void *reader_run(void *context)
{
	struct reader *r = context;
	int fd;

	r->ret = mailcache_open(mc, key, strlen(MAIL), &fd);
	r->err = errno;
	if (r->ret == 0)
		close(fd);
	return NULL;
}

Test(fs_mailcache_fetch, waiters_share_a_failed_fetch)
{
	struct reader readers[READERS];
	struct cachedir_stats stats;

	/* every GET fails after 300 ms: the readers overlap */
	setup_store("ops=get;error=permanent;latency_ms=300");
	for (unsigned int i = 0; i < READERS; i++) {
		cr_assert_eq(pthread_create(&readers[i].thread, NULL,
					    reader_run, &readers[i]), 0);
	}
	for (unsigned int i = 0; i < READERS; i++) {
		pthread_join(readers[i].thread, NULL);
		cr_assert_eq(readers[i].ret, -1);
		cr_assert_eq(readers[i].err, EIO, "%s",
			     strerror(readers[i].err));
	}
	/* a miss per reader, but one failed fetch shared by all */
	mailcache_get_stats(mc, &stats);
	cr_assert_eq(stats.misses, READERS);
	cr_assert_eq(stats.fetch_errors, 1, "%ju failed fetches",
		     (uintmax_t)stats.fetch_errors);
}

Test(fs_mailcache_fetch, waiters_share_a_good_fetch)
{
	struct reader readers[READERS];
	struct cachedir_stats stats;
	struct objstore_stats os;

	setup_store("ops=get;rate=0;latency_ms=200");
	for (unsigned int i = 0; i < READERS; i++) {
		cr_assert_eq(pthread_create(&readers[i].thread, NULL,
					    reader_run, &readers[i]), 0);
	}
	for (unsigned int i = 0; i < READERS; i++) {
		pthread_join(readers[i].thread, NULL);
		cr_assert_eq(readers[i].ret, 0, "%s", strerror(readers[i].err));
	}
	/* a miss per reader, one GET */
	mailcache_get_stats(mc, &stats);
	objstore_get_stats(store, &os);
	cr_assert_eq(stats.misses, READERS);
	cr_assert_eq(stats.fetch_errors, 0);
	cr_assert_eq(os.requests[OBJSTORE_OP_GET], 1, "%ju GETs",
		     (uintmax_t)os.requests[OBJSTORE_OP_GET]);
	cr_assert_eq(stats.entries, 1);
}

Test(fs_mailcache_fetch, removed_during_fetch_stays_out)
{
	struct reader r;
	struct cachedir_stats stats;
	char path[4096];
	struct dirent *d;
	DIR *subdir;
	int fd;

	setup_store("ops=get;rate=0;latency_ms=300");
	cr_assert_eq(pthread_create(&r.thread, NULL, reader_run, &r), 0);
	usleep(100 * 1000);
	/* what objgc_release() does before deleting the object */
	mailcache_remove(mc, key);
	pthread_join(r.thread, NULL);
	cr_assert_eq(r.ret, -1);
	cr_assert_eq(r.err, ENOENT);
	/* nothing left in the cache directory for it (not even a
	   temporary file) */
	snprintf(path, sizeof(path), "%s/mail/%.2s", dir, keys_key_oid(key));
	subdir = opendir(path);
	if (subdir != NULL) {
		while ((d = readdir(subdir)) != NULL) {
			cr_assert(strcmp(d->d_name, ".") == 0 ||
				  strcmp(d->d_name, "..") == 0,
				  "%s/%s came back", path, d->d_name);
		}
		closedir(subdir);
	}
	mailcache_get_stats(mc, &stats);
	cr_assert_eq(stats.entries, 0);
	/* the object is still there: a new miss fetches it again */
	cr_assert_eq(mailcache_open(mc, key, strlen(MAIL), &fd), 0);
	close(fd);
	mailcache_get_stats(mc, &stats);
	cr_assert_eq(stats.misses, 2);
	cr_assert_eq(stats.entries, 1);
}
