/* test_fs_metacache_evict.c: the metacache cap (fs/metacache.c): above
 * the cap, idle users whose changes are stored are evicted least recently
 * accessed first (a user with changes is uploaded first); users with open
 * files or a recent access are never evicted; the kernel's entry of an
 * evicted user is invalidated. */
#include "test_fs_upload.h"
#include "metacache.h"
#include "stub.h"

#include <time.h>

#define IDLE 15
#define TREE_BYTES (96 * 1024)

static struct metacache *mc;
static char evicted[8][64];
static unsigned int evicted_count;
static char trash[4096];

static void on_evicted(const char *user, void *context)
{
	(void)context;
	/* called before and after the move: count each user once */
	for (unsigned int i = 0; i < evicted_count; i++) {
		if (strcmp(evicted[i], user) == 0)
			return;
	}
	cr_assert_lt(evicted_count, 8);
	snprintf(evicted[evicted_count++], sizeof(evicted[0]), "%s", user);
}

static void setup(void)
{
	up_init();
	snprintf(trash, sizeof(trash), "%s/trash", up_cache);
	cr_assert(mkdir(trash, 0700) == 0 || errno == EEXIST);
	evicted_count = 0;
}

static void teardown(void)
{
	metacache_deinit(&mc);
	up_fini();
}

TestSuite(fs_metacache_evict, .init = setup, .fini = teardown);

static int64_t now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* user name with a tree of TREE_BYTES in one index file, stored, last
   accessed age seconds ago */
static struct ouser *make_user(const char *name, int64_t age)
{
	struct ouser *user = users_get(up_users, name);
	char path[512];
	int fd;

	cr_assert_not_null(user);
	cr_assert_eq(mkdirat(up_meta_fd, name, 0700), 0);
	snprintf(path, sizeof(path), "%s/dovecot.list.index", name);
	fd = openat(up_meta_fd, path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 0), 0);
	for (unsigned int i = 0; i < TREE_BYTES / 4096; i++) {
		char block[4096];

		memset(block, 'a' + (int)i % 26, sizeof(block));
		cr_assert_eq(write(fd, block, sizeof(block)),
			     (ssize_t)sizeof(block));
	}
	close(fd);
	users_change_begin(up_users, user);
	users_change_end(user);
	cr_assert_eq(upload_user(up_ctx, user, NULL), 0);
	atomic_store(&user->last_access, now_secs() - age);
	return user;
}

static bool present(const char *name)
{
	return faccessat(up_meta_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static struct metacache_stats stats(void)
{
	struct metacache_stats st;

	metacache_get_stats(mc, up_users, &st);
	return st;
}

Test(fs_metacache_evict, least_recently_used_idle_users_go_first)
{
	make_user("old@x", 300);
	make_user("older@x", 400);
	make_user("new@x", 100);
	/* room for about two of the three trees */
	mc = metacache_init(up_meta_fd, trash, 2 * TREE_BYTES + TREE_BYTES / 2,
			    IDLE, on_evicted, NULL);
	cr_assert_not_null(mc);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(evicted_count, 1);
	cr_assert_str_eq(evicted[0], "older@x");
	cr_assert(!present("older@x"));
	cr_assert(present("old@x") && present("new@x"));
	struct metacache_stats st = stats();

	cr_assert_eq(st.evictions, 1);
	cr_assert_leq(st.used, st.cap, "%llu > %llu",
		      (unsigned long long)st.used, (unsigned long long)st.cap);
	/* the tree is deleted, not kept in the trash */
	cr_assert_eq(rmdir(trash), 0, "trash not empty: %s", strerror(errno));
}

Test(fs_metacache_evict, busy_users_are_never_evicted)
{
	struct ouser *open_user = make_user("open@x", 500);

	make_user("recent@x", 1);
	make_user("idle@x", 100);
	atomic_store(&open_user->open_count, 1);
	/* a cap none of them fits in */
	mc = metacache_init(up_meta_fd, trash, 1024, IDLE, on_evicted, NULL);
	metacache_enforce(mc, up_users, up_ctx);
	/* only the idle one goes: open files and a fresh access keep the
	   others, above the cap */
	cr_assert_eq(evicted_count, 1);
	cr_assert_str_eq(evicted[0], "idle@x");
	cr_assert(present("open@x") && present("recent@x"));
	struct metacache_stats st = stats();

	cr_assert_gt(st.used, st.cap);
	cr_assert_eq(st.over_cap_busy, 1);
	atomic_store(&open_user->open_count, 0);
}

Test(fs_metacache_evict, changes_are_uploaded_before_eviction)
{
	struct ouser *user = make_user("dirty@x", 500);
	struct upload_stats before, after;
	char path[512];
	int fd;

	/* a change after the last upload */
	snprintf(path, sizeof(path), "%s/subscriptions", "dirty@x");
	users_change_begin(up_users, user);
	fd = openat(up_meta_fd, path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "INBOX\n", 6), 6);
	close(fd);
	users_change_end(user);
	atomic_store(&user->last_access, now_secs() - 500);
	cr_assert(users_is_dirty(user));
	upload_get_stats(up_ctx, &before);

	mc = metacache_init(up_meta_fd, trash, 1024, IDLE, on_evicted, NULL);
	metacache_enforce(mc, up_users, up_ctx);
	upload_get_stats(up_ctx, &after);
	cr_assert_eq(evicted_count, 1);
	cr_assert(!present("dirty@x"));
	cr_assert_gt(after.bases + after.diffs, before.bases + before.diffs,
		     "evicted without uploading its change");
	cr_assert(!users_is_dirty(user));
}

Test(fs_metacache_evict, a_failing_upload_keeps_the_user)
{
	struct ouser *user = make_user("kept@x", 500);

	/* a change, and a store that refuses it */
	users_change_begin(up_users, user);
	users_change_end(user);
	atomic_store(&user->last_access, now_secs() - 500);
	objstore_deinit(&up_store);
	up_stop(true);
	{
		struct objstore_settings set = { .no_fsync = true,
			.fault = "ops=put;error=permanent;rate=1" };
		char url[4200];
		const char *error;

		snprintf(url, sizeof(url), "file://%s/store", up_dir);
		cr_assert_eq(objstore_init(url, &set, &up_store, &error), 0,
			     "%s", error);
		/* the engine's own store refuses them too */
		up_store_fault = set.fault;
	}
	up_start();
	user = users_get(up_users, "kept@x");
	users_change_begin(up_users, user);
	users_change_end(user);
	atomic_store(&user->last_access, now_secs() - 500);
	mc = metacache_init(up_meta_fd, trash, 1024, IDLE, on_evicted, NULL);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(evicted_count, 0);
	cr_assert(present("kept@x"), "a tree with unstored changes was "
		  "evicted");
}

/* du of a user's tree, as the metacache measured it before */
static uint64_t du_bytes(const char *name)
{
	char cmd[4200], out[64] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "du -s -B1 '%s/meta/%s'", up_cache, name);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(out, sizeof(out), p));
	pclose(p);
	return strtoull(out, NULL, 10);
}

static void assert_near(uint64_t estimate, uint64_t du, const char *what)
{
	uint64_t diff = estimate > du ? estimate - du : du - estimate;

	cr_assert_leq(diff, du / 10 + 16384, "%s: estimated %llu, du %llu",
		      what, (unsigned long long)estimate,
		      (unsigned long long)du);
}

/* Users' sizes come from their upload scans: enforcing the cap walks no
   tree, and the figure is du's within 10%; a user that never uploaded is
   walked (once per change) */
Test(fs_metacache_evict, sizes_come_from_upload_scans_not_walks)
{
	struct ouser *a = make_user("a@x", 1), *b = make_user("b@x", 1);
	uint64_t walks;
	char path[512];
	int fd;

	mc = metacache_init(up_meta_fd, trash, 1ULL << 30, IDLE, on_evicted,
			    NULL);
	/* (the fixture's own user, never uploaded, is walked) */
	walks = stats().walks;
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_leq(stats().walks, walks + 1);
	walks = stats().walks;
	assert_near(atomic_load(&a->disk_bytes), du_bytes("a@x"), "a");
	assert_near(atomic_load(&b->disk_bytes), du_bytes("b@x"), "b");

	/* a grows by 400 KiB: the next upload's scan says so */
	snprintf(path, sizeof(path), "a@x/dovecot.index.cache");
	users_change_begin(up_users, a);
	fd = openat(up_meta_fd, path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	for (unsigned int i = 0; i < 100; i++) {
		char block[4096];

		memset(block, 'c', sizeof(block));
		cr_assert_eq(write(fd, block, sizeof(block)),
			     (ssize_t)sizeof(block));
	}
	close(fd);
	users_change_end(a);
	cr_assert_eq(upload_user(up_ctx, a, NULL), 0);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks, "a changed user was walked");
	assert_near(atomic_load(&a->disk_bytes), du_bytes("a@x"),
		    "a after growing");
	cr_assert_geq(atomic_load(&a->disk_bytes), TREE_BYTES + 400 * 1024);

	/* 200 stubs (mails): their xattrs take a block each on some file
	   systems, as the engine measured on this one */
	struct ouser *m = users_get(up_users, "mails@x");

	cr_assert_eq(mkdirat(up_meta_fd, "mails@x", 0700), 0);
	cr_assert_eq(mkdirat(up_meta_fd, "mails@x/cur", 0700), 0);
	users_change_begin(up_users, m);
	for (unsigned int i = 0; i < 200; i++) {
		struct stub stub = { .size = 3000 + i };

		snprintf(stub.key, sizeof(stub.key), "aa/bbb/mails@x/mailboxes/"
			 "0123456789abcdef0123456789abcdef/%032x", i);
		snprintf(path, sizeof(path), "mails@x/cur/%u.M%uP1.host:2,", i,
			 i);
		fd = openat(up_meta_fd, path, O_WRONLY | O_CREAT, 0600);
		cr_assert_geq(fd, 0);
		cr_assert_eq(stub_write(fd, &stub), 0);
		close(fd);
	}
	users_change_end(m);
	cr_assert_eq(upload_user(up_ctx, m, NULL), 0);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks);
	assert_near(atomic_load(&m->disk_bytes), du_bytes("mails@x"),
		    "200 stubs");

	/* never uploaded: measured by a walk, once (below 90% of the cap;
	   its first upload sizes it from then on) */
	struct ouser *c = users_get(up_users, "c@x");

	cr_assert_eq(mkdirat(up_meta_fd, "c@x", 0700), 0);
	users_change_begin(up_users, c);
	users_change_end(c);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks + 1);
	users_change_begin(up_users, c);
	users_change_end(c);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks + 1, "walked again far from the "
		     "cap");

	/* near the cap (above 90%), a user that changed since its last
	   scan is walked: what it wrote since counts */
	uint64_t used = stats().used;

	metacache_deinit(&mc);
	mc = metacache_init(up_meta_fd, trash, used + used / 20, IDLE,
			    on_evicted, NULL);
	/* (c changed after its walk: walked now) */
	metacache_enforce(mc, up_users, up_ctx);
	walks = stats().walks;
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks, "nothing changed: no walk");
	users_change_begin(up_users, b);
	users_change_end(b);
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks + 1, "the changed user is walked");
	metacache_enforce(mc, up_users, up_ctx);
	cr_assert_eq(stats().walks, walks + 1, "and only once");
}
