/* test_fs_objgc_deferred_delete.c: released mail objects stay in the store
 * until an index upload condemns them; condemned keys are deleted by
 * objgc_flush(), survive failed deletes and restarts (the garbage file),
 * and a damaged garbage file is read without trusting its junk. */
#include "helper-objstore.h"
#include "ids.h"
#include "keys.h"
#include "mailcache.h"
#include "objgc.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER1 "user@example.com"
#define USER2 "other@example.com"
#define GUID1 "00d7d12ea08a3153175e0000dfbea952"
#define GUID2 "11d7d12ea08a3153175e0000dfbea953"

static char *dir;
static char garbage_path[4096];
static struct objstore *store;
static struct mailcache *mc;
static struct objgc *gc;

static void init(void)
{
	struct objstore_settings set = { .no_fsync = true };
	const char *error;
	char path[4096];

	dir = objtest_mkdtemp("objgc");
	cr_assert_not_null(dir);
	store = objtest_open_posix_store(dir, &set);
	snprintf(path, sizeof(path), "%s/mail", dir);
	cr_assert_eq(mailcache_init(path, 1024 * 1024, store, &mc, &error), 0,
		     "%s", error);
	snprintf(garbage_path, sizeof(garbage_path), "%s/garbage", dir);
	gc = objgc_init(store, mc, garbage_path);
	cr_assert_not_null(gc);
}

static void fini(void)
{
	objgc_deinit(&gc);
	mailcache_deinit(&mc);
	if (store != NULL)
		objstore_deinit(&store);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(fs_objgc_deferred_delete, .init = init, .fini = fini);

/* the key of mail n of user's folder guid */
static void mail_key(const char *user, const char *guid, unsigned int n,
		     char *buf, size_t size)
{
	char oid[IDS_HEX_LEN + 1];

	snprintf(oid, sizeof(oid), "%08x%024x", n, 0xabcdefU);
	cr_assert_eq(keys_mail_key(user, guid, oid, buf, size), 0);
}

static void put_object(const char *key)
{
	cr_assert_eq(objstore_put(store, key, key, strlen(key), NULL, 0), 0,
		     "put(%s) failed: %s", key, objstore_error());
}

static bool object_exists(const char *key)
{
	struct objstore_stat st;

	if (objstore_head(store, key, &st) == 0) {
		objstore_stat_free(&st);
		return true;
	}
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND,
		     "head(%s) failed: %s", key, objstore_error());
	return false;
}

static struct objgc_stats get_stats(void)
{
	struct objgc_stats stats;

	objgc_get_stats(gc, &stats);
	return stats;
}

static bool batch_has(const struct objgc_batch *batch, const char *key)
{
	for (size_t i = 0; i < batch->count; i++) {
		if (strcmp(batch->keys[i], key) == 0)
			return true;
	}
	return false;
}

static off_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat(%s) failed", path);
	return st.st_size;
}

/* condemn every pending key, as the uploader does after a stored bundle */
static void condemn_all_pending(void)
{
	struct objgc_batch batch;

	objgc_take_pending(gc, "", &batch);
	objgc_condemn_batch(gc, &batch);
	cr_assert_null(batch.keys);
	cr_assert_eq(batch.count, 0);
}

Test(fs_objgc_deferred_delete, release_keeps_object_pending)
{
	char key[512];
	struct objgc_stats stats;

	mail_key(USER1, GUID1, 1, key, sizeof(key));
	put_object(key);
	cr_assert_eq(objgc_release(gc, key), 0);
	stats = get_stats();
	cr_assert_eq(stats.released, 1);
	cr_assert_eq(stats.pending, 1);
	cr_assert_eq(stats.condemned, 0);
	cr_assert(object_exists(key));

	/* a flush deletes only condemned keys, never pending ones */
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert(object_exists(key));
	stats = get_stats();
	cr_assert_eq(stats.pending, 1);
	cr_assert_eq(stats.deleted, 0);
	/* nothing was condemned: the garbage file holds nothing */
	cr_assert_eq(file_size(garbage_path), 0);
}

Test(fs_objgc_deferred_delete, take_pending_by_prefix)
{
	char k1[512], k2[512], k3[512], k4[512], prefix[512];
	char h1[3], h2[4];
	struct objgc_batch batch;

	mail_key(USER1, GUID1, 1, k1, sizeof(k1));
	mail_key(USER1, GUID1, 2, k2, sizeof(k2));
	mail_key(USER1, GUID2, 3, k3, sizeof(k3));
	mail_key(USER2, GUID1, 4, k4, sizeof(k4));
	cr_assert_eq(objgc_release(gc, k1), 0);
	cr_assert_eq(objgc_release(gc, k3), 0);
	cr_assert_eq(objgc_release(gc, k2), 0);
	cr_assert_eq(objgc_release(gc, k4), 0);
	cr_assert_eq(get_stats().pending, 4);

	/* one folder of one user */
	ids_user_hash(USER1, h1, h2);
	snprintf(prefix, sizeof(prefix), "%s/%s/%s/mailboxes/%s/", h1, h2,
		 USER1, GUID1);
	objgc_take_pending(gc, prefix, &batch);
	cr_assert_eq(batch.count, 2);
	cr_assert(batch_has(&batch, k1));
	cr_assert(batch_has(&batch, k2));
	cr_assert_eq(get_stats().pending, 2);

	/* the snapshot's upload failed: they are pending again */
	objgc_return_pending(gc, &batch);
	cr_assert_null(batch.keys);
	cr_assert_eq(batch.count, 0);
	cr_assert_eq(get_stats().pending, 4);

	/* a prefix matching nothing */
	objgc_take_pending(gc, "zz/", &batch);
	cr_assert_eq(batch.count, 0);
	objgc_batch_free(&batch);
	cr_assert_eq(get_stats().pending, 4);

	/* the whole user: not the other user's key */
	snprintf(prefix, sizeof(prefix), "%s/%s/%s/", h1, h2, USER1);
	objgc_take_pending(gc, prefix, &batch);
	cr_assert_eq(batch.count, 3);
	cr_assert(batch_has(&batch, k1));
	cr_assert(batch_has(&batch, k2));
	cr_assert(batch_has(&batch, k3));
	cr_assert_not(batch_has(&batch, k4));
	cr_assert_eq(get_stats().pending, 1);
	objgc_batch_free(&batch);
	cr_assert_eq(get_stats().released, 4);
}

Test(fs_objgc_deferred_delete, condemn_then_flush_deletes)
{
	char k1[512], k2[512], k3[512], keep[512];
	struct objgc_stats stats;

	mail_key(USER1, GUID1, 1, k1, sizeof(k1));
	mail_key(USER1, GUID1, 2, k2, sizeof(k2));
	mail_key(USER1, GUID2, 3, k3, sizeof(k3));
	mail_key(USER1, GUID2, 4, keep, sizeof(keep));
	put_object(k1);
	put_object(k2);
	put_object(k3);
	put_object(keep);

	cr_assert_eq(objgc_release(gc, k1), 0);
	cr_assert_eq(objgc_release(gc, k2), 0);
	condemn_all_pending();
	/* a superseded bundle is condemned directly */
	objgc_condemn(gc, k3);
	stats = get_stats();
	cr_assert_eq(stats.pending, 0);
	cr_assert_eq(stats.condemned, 3);
	/* condemned, not deleted yet */
	cr_assert(object_exists(k1));
	cr_assert(object_exists(k3));
	cr_assert_gt(file_size(garbage_path), 0);

	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_not(object_exists(k1));
	cr_assert_not(object_exists(k2));
	cr_assert_not(object_exists(k3));
	cr_assert(object_exists(keep));
	stats = get_stats();
	cr_assert_eq(stats.condemned, 0);
	cr_assert_eq(stats.deleted, 3);
	cr_assert_eq(stats.delete_failures, 0);
	/* deleted keys are no longer in the garbage file */
	cr_assert_eq(file_size(garbage_path), 0);

	/* an empty flush is fine */
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_eq(get_stats().deleted, 3);
}

/* a gc over a store whose deletes fail, sharing the test's store dir */
static struct objstore *open_fault_store(const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };
	struct objstore *fstore;
	const char *error;
	char url[4200];

	snprintf(url, sizeof(url), "file://%s/store", dir);
	cr_assert_eq(objstore_init(url, &set, &fstore, &error), 0, "%s",
		     error);
	return fstore;
}

Test(fs_objgc_deferred_delete, failed_delete_stays_condemned)
{
	struct objstore *fstore =
		open_fault_store("ops=delete;error=permanent;rate=1");
	char k1[512], k2[512];
	struct objgc_stats stats;

	/* the failing gc uses the same garbage file as a later run */
	objgc_deinit(&gc);
	gc = objgc_init(fstore, mc, garbage_path);
	cr_assert_not_null(gc);

	mail_key(USER1, GUID1, 1, k1, sizeof(k1));
	mail_key(USER1, GUID1, 2, k2, sizeof(k2));
	put_object(k1);
	put_object(k2);
	objgc_condemn(gc, k1);
	cr_assert_eq(objgc_flush(gc), -1);
	stats = get_stats();
	cr_assert_eq(stats.condemned, 1);
	cr_assert_eq(stats.deleted, 0);
	cr_assert_eq(stats.delete_failures, 1);
	cr_assert(object_exists(k1));

	/* condemned meanwhile: tried together next time */
	objgc_condemn(gc, k2);
	cr_assert_eq(objgc_flush(gc), -1);
	stats = get_stats();
	cr_assert_eq(stats.condemned, 2);
	cr_assert_eq(stats.delete_failures, 2);
	cr_assert(object_exists(k1));
	cr_assert(object_exists(k2));

	/* the store works again (a restart on a healthy store): the
	   garbage file still names both */
	objgc_deinit(&gc);
	objstore_deinit(&fstore);
	gc = objgc_init(store, mc, garbage_path);
	cr_assert_not_null(gc);
	cr_assert_eq(get_stats().condemned, 2);
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_not(object_exists(k1));
	cr_assert_not(object_exists(k2));
	cr_assert_eq(get_stats().deleted, 2);
	cr_assert_eq(file_size(garbage_path), 0);
}

Test(fs_objgc_deferred_delete, failed_delete_retried_by_next_flush)
{
	/* with this seed the first delete fails and a later one succeeds */
	struct objstore *fstore =
		open_fault_store("ops=delete;error=transient;rate=0.5;seed=3");
	char key[512];
	unsigned int flushes = 0;
	int ret;

	objgc_deinit(&gc);
	gc = objgc_init(fstore, mc, NULL);
	cr_assert_not_null(gc);
	mail_key(USER1, GUID1, 1, key, sizeof(key));
	put_object(key);
	objgc_condemn(gc, key);
	do {
		ret = objgc_flush(gc);
		flushes++;
		if (ret < 0) {
			cr_assert(object_exists(key));
			cr_assert_eq(get_stats().condemned, 1);
		}
	} while (ret < 0 && flushes < 64);
	cr_assert_eq(ret, 0, "no flush succeeded");
	cr_assert_gt(flushes, 1, "the first flush did not fail: pick "
		     "another seed");
	cr_assert_not(object_exists(key));
	cr_assert_eq(get_stats().condemned, 0);
	cr_assert_eq(get_stats().delete_failures, flushes - 1);
	objgc_deinit(&gc);
	objstore_deinit(&fstore);
}

Test(fs_objgc_deferred_delete, condemned_keys_survive_restart)
{
	char k1[512], k2[512], k3[512];

	mail_key(USER1, GUID1, 1, k1, sizeof(k1));
	mail_key(USER1, GUID2, 2, k2, sizeof(k2));
	mail_key(USER2, GUID1, 3, k3, sizeof(k3));
	put_object(k1);
	put_object(k2);
	put_object(k3);
	cr_assert_eq(objgc_release(gc, k1), 0);
	condemn_all_pending();
	objgc_condemn(gc, k2);
	/* released but never condemned: must not be deleted after a
	   restart (the stored index may still reference it) */
	cr_assert_eq(objgc_release(gc, k3), 0);

	objgc_deinit(&gc);
	cr_assert(object_exists(k1));
	cr_assert(object_exists(k2));
	gc = objgc_init(store, mc, garbage_path);
	cr_assert_not_null(gc);
	cr_assert_eq(get_stats().condemned, 2);
	cr_assert_eq(get_stats().pending, 0);
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_not(object_exists(k1));
	cr_assert_not(object_exists(k2));
	cr_assert(object_exists(k3));

	/* and once deleted they are not loaded again */
	objgc_deinit(&gc);
	gc = objgc_init(store, mc, garbage_path);
	cr_assert_eq(get_stats().condemned, 0);
}

/* write a garbage file of a previous run and restart the gc on it */
static void restart_with_garbage(const void *data, size_t size)
{
	int fd;

	objgc_deinit(&gc);
	fd = open(garbage_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	close(fd);
	gc = objgc_init(store, mc, garbage_path);
	cr_assert_not_null(gc);
}

struct junk_case {
	char name[32];
	/* the junk line(s), with %s replaced by an existing object's key */
	char junk[64];
	/* written after a NUL byte following junk, if not empty */
	char after_nul[16];
	/* this many bytes of 'x' before the junk */
	unsigned int pad;
};

ParameterizedTestParameters(fs_objgc_deferred_delete, junk_is_ignored)
{
	static struct junk_case cases[] = {
		{ "dotdot", "../%s\n", "", 0 },
		{ "empty_segment", "a//%s\n", "", 0 },
		{ "leading_slash", "/%s\n", "", 0 },
		{ "empty_lines", "\n\n\n", "", 0 },
		{ "control_char", "%s\x01\n", "", 0 },
		{ "nul_inside", "%s", "tail\n", 0 },
		{ "over_long", "\n", "", 5000 },
		/* the tail of an over-long line is not a key of its own,
		   wherever the line is cut */
		{ "over_long_tail", "%s\n", "", OBJSTORE_KEY_MAX + 1 },
		{ "over_long_tail2", "%s\n", "", 2 * (OBJSTORE_KEY_MAX + 1) },
		{ "torn_last_line", "%s", "", 0 },
	};
	return cr_make_param_array(struct junk_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct junk_case *c, fs_objgc_deferred_delete,
		  junk_is_ignored)
{
	char good[512], victim[512];
	size_t size = 0, alloc = 16384;
	char *buf = malloc(alloc);
	int len;

	cr_assert_not_null(buf);
	mail_key(USER1, GUID1, 1, good, sizeof(good));
	mail_key(USER1, GUID1, 2, victim, sizeof(victim));
	put_object(good);
	put_object(victim);

	/* a good key first, then the junk (naming victim) */
	size += (size_t)snprintf(buf, alloc, "%s\n", good);
	cr_assert_lt(c->pad, alloc / 2);
	memset(buf + size, 'x', c->pad);
	size += c->pad;
	len = snprintf(buf + size, alloc - size, c->junk, victim);
	cr_assert_gt(len, 0);
	size += (size_t)len;
	if (c->after_nul[0] != '\0') {
		buf[size++] = '\0';
		len = snprintf(buf + size, alloc - size, "%s", c->after_nul);
		size += (size_t)len;
	}
	restart_with_garbage(buf, size);
	free(buf);

	uint64_t loaded = get_stats().condemned;

	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_not(object_exists(good));
	cr_assert(object_exists(victim), "%s: junk deleted %s", c->name,
		  victim);
	cr_assert_eq(loaded, 1, "%s: %llu keys loaded", c->name,
		     (unsigned long long)loaded);
	/* the junk is gone from the file once the good key is deleted */
	cr_assert_eq(file_size(garbage_path), 0);
}

Test(fs_objgc_deferred_delete, missing_garbage_file_dir)
{
	char path[4096], key[512];

	/* the garbage file cannot be created: keys are kept in memory */
	objgc_deinit(&gc);
	snprintf(path, sizeof(path), "%s/no-such-dir/garbage", dir);
	gc = objgc_init(store, mc, path);
	cr_assert_not_null(gc);
	mail_key(USER1, GUID1, 1, key, sizeof(key));
	put_object(key);
	objgc_condemn(gc, key);
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_not(object_exists(key));
}

Test(fs_objgc_deferred_delete, undeletable_key_does_not_block_others)
{
	char good[512], bad[512];
	unsigned int i;

	/* a valid key the file:// store can never delete (a segment
	   longer than NAME_MAX): its failure must not keep every other
	   condemned object in the store forever */
	mail_key(USER1, GUID1, 1, good, sizeof(good));
	put_object(good);
	snprintf(bad, sizeof(bad), "%s/", USER1);
	memset(bad + strlen(bad), 'y', 300);
	bad[strlen(USER1) + 1 + 300] = '\0';
	objgc_condemn(gc, bad);
	objgc_condemn(gc, good);
	for (i = 0; i < 3; i++)
		(void)objgc_flush(gc);
	cr_assert_not(object_exists(good), "still in the store after %u "
		      "flushes: one undeletable key blocks all deletes", i);
}

/* the key of a bundle of user's folder guid: a base of id n, or (diff
   not 0) that base's diff d */
static void bundle_key(const char *guid, unsigned int n, unsigned int d,
		       char *buf, size_t size)
{
	char prefix[KEYS_PREFIX_MAX], user_prefix[KEYS_PREFIX_MAX];
	int len;

	cr_assert_eq(keys_user_prefix(USER1, user_prefix,
				      sizeof(user_prefix)), 0);
	cr_assert_eq(keys_idx_prefix(user_prefix, guid, prefix,
				     sizeof(prefix)), 0);
	len = snprintf(buf, size, "%sbundle.6b168c01.e77a4.%032x", prefix, n);
	if (d != 0)
		snprintf(buf + len, size - len, "-%032x", d);
}

/* a condemned base another writer's diff applies to (it loaded this
   machine's chain and went on with it) waits: its chain stays readable;
   once that diff is gone, the next flush deletes the base.  A base
   whose diff this machine condemned too goes at once. */
Test(fs_objgc_deferred_delete, a_base_another_writer_builds_on_waits)
{
	char held[512], theirs[512], lone[512], mine[512], mine_diff[512];
	char other_folder[512];
	struct objgc_stats st;

	bundle_key(GUID1, 1, 0, held, sizeof(held));
	bundle_key(GUID1, 1, 7, theirs, sizeof(theirs));
	bundle_key(GUID1, 2, 0, lone, sizeof(lone));
	bundle_key(GUID1, 3, 0, mine, sizeof(mine));
	bundle_key(GUID1, 3, 8, mine_diff, sizeof(mine_diff));
	/* a diff of another folder's base 1 holds nothing here */
	bundle_key(GUID2, 2, 9, other_folder, sizeof(other_folder));
	put_object(held);
	put_object(theirs);
	put_object(lone);
	put_object(mine);
	put_object(mine_diff);
	put_object(other_folder);
	objgc_condemn(gc, held);
	objgc_condemn(gc, lone);
	objgc_condemn(gc, mine);
	objgc_condemn(gc, mine_diff);
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert(object_exists(held), "a base another writer builds on");
	cr_assert(objgc_is_garbage(gc, held), "still condemned");
	cr_assert_not(object_exists(lone));
	cr_assert_not(object_exists(mine));
	cr_assert_not(object_exists(mine_diff));
	cr_assert(object_exists(theirs));
	objgc_get_stats(gc, &st);
	cr_assert_eq(st.bundles_held, 1);
	cr_assert_eq(st.deleted, 3);

	/* held across a restart (the garbage file) */
	objgc_deinit(&gc);
	gc = objgc_init(store, mc, garbage_path);
	cr_assert_not_null(gc);
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert(object_exists(held));

	/* the other writer rebased: its diff is gone, so is the base */
	cr_assert_eq(objstore_delete(store, theirs), 0);
	cr_assert_eq(objgc_flush(gc), 0);
	cr_assert_not(object_exists(held));
	cr_assert_not(objgc_is_garbage(gc, held));
}
