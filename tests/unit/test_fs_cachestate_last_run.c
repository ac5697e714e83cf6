/* test_fs_cachestate_last_run.c: how the cache directory's state tells the
 * way the last run ended (first run, clean unmount, killed, machine crash or
 * a torn marker) and which user trees are discarded because of it. */
#include "cachestate.h"
#include "helper-objstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const test_users[] = {
	"alice@example.com", "bob@example.com", "carol@example.com",
};
#define USER_COUNT (sizeof(test_users) / sizeof(test_users[0]))

static char *dir;		/* the cache directory */
static int meta_fd = -1;	/* dir/meta */
static struct cachestate *cs;

static void init(void)
{
	dir = objtest_mkdtemp("cachestate");
	cr_assert_not_null(dir);
	meta_fd = objtest_mkdir_open(dir, "meta");
}

static void fini(void)
{
	cachestate_close(&cs, false);
	if (meta_fd >= 0)
		close(meta_fd);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(fs_cachestate_last_run, .init = init, .fini = fini);

/* meta/<user>/Maildir/cur/mail and meta/<user>/Maildir/dovecot.index */
static void make_user_tree(const char *user)
{
	char path[4096];
	int fd;

	cr_assert_eq(mkdirat(meta_fd, user, 0700), 0);
	snprintf(path, sizeof(path), "%s/Maildir", user);
	cr_assert_eq(mkdirat(meta_fd, path, 0700), 0);
	snprintf(path, sizeof(path), "%s/Maildir/cur", user);
	cr_assert_eq(mkdirat(meta_fd, path, 0700), 0);
	snprintf(path, sizeof(path), "%s/Maildir/cur/mail", user);
	fd = openat(meta_fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/Maildir/dovecot.index", user);
	fd = openat(meta_fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "index", 5), 5);
	close(fd);
}

static void make_all_users(void)
{
	for (unsigned int i = 0; i < USER_COUNT; i++)
		make_user_tree(test_users[i]);
}

static bool user_tree_exists(const char *user)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/Maildir/dovecot.index", user);
	return fstatat(meta_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void open_state(void)
{
	const char *error = NULL;

	cr_assert_eq(cachestate_open(dir, meta_fd, &cs, &error), 0,
		     "cachestate_open() failed: %s", error);
	cr_assert_not_null(cs);
}

static void write_marker(const void *data, size_t size)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/state", dir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/state/mounted", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	close(fd);
}

static void read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t len;

	cr_assert_geq(fd, 0, "open(%s) failed: %s", path, strerror(errno));
	len = read(fd, buf, size - 1);
	close(fd);
	cr_assert_geq(len, 0);
	buf[len] = '\0';
}

static void boot_id(char *buf, size_t size)
{
	read_file("/proc/sys/kernel/random/boot_id", buf, size);
	buf[strcspn(buf, "\n")] = '\0';
	cr_assert_gt(strlen(buf), 0);
}

static unsigned int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	unsigned int count = 0;

	cr_assert_not_null(d, "opendir(%s) failed", path);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			count++;
	}
	closedir(d);
	return count;
}

#define MAX_DIRTY 16
struct dirty_list {
	char names[MAX_DIRTY][128];
	unsigned int count;
};

static void collect_dirty(const char *user, void *context)
{
	struct dirty_list *list = context;

	cr_assert_lt(list->count, MAX_DIRTY);
	snprintf(list->names[list->count++], sizeof(list->names[0]), "%s",
		 user);
}

static bool dirty_has(const struct dirty_list *list, const char *user)
{
	for (unsigned int i = 0; i < list->count; i++) {
		if (strcmp(list->names[i], user) == 0)
			return true;
	}
	return false;
}

Test(fs_cachestate_last_run, new_cache_dir_is_first_run)
{
	char path[4096], buf[256], expected[256], id[128], state[4096];

	make_all_users();
	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_FIRST);
	cr_assert_eq(cachestate_discarded(cs), 0);
	for (unsigned int i = 0; i < USER_COUNT; i++)
		cr_assert(user_tree_exists(test_users[i]));

	/* the marker says this boot's daemon is running */
	boot_id(id, sizeof(id));
	snprintf(path, sizeof(path), "%s/state/mounted", dir);
	read_file(path, buf, sizeof(buf));
	snprintf(expected, sizeof(expected), "mounted %s\n", id);
	cr_assert_str_eq(buf, expected);
	cr_assert_str_eq(cachestate_path(cs, "mounted", state, sizeof(state)), path);
}

Test(fs_cachestate_last_run, clean_close_discards_nothing)
{
	struct dirty_list dirty = { .count = 0 };
	char path[4096], buf[256], expected[256], id[128];

	make_all_users();
	open_state();
	cr_assert_eq(cachestate_mark_dirty(cs, test_users[1]), 0);
	cachestate_close(&cs, true);
	cr_assert_null(cs);

	boot_id(id, sizeof(id));
	snprintf(path, sizeof(path), "%s/state/mounted", dir);
	read_file(path, buf, sizeof(buf));
	snprintf(expected, sizeof(expected), "clean %s\n", id);
	cr_assert_str_eq(buf, expected);

	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_CLEAN);
	cr_assert_eq(cachestate_discarded(cs), 0);
	for (unsigned int i = 0; i < USER_COUNT; i++)
		cr_assert(user_tree_exists(test_users[i]), "%s discarded",
			  test_users[i]);
	/* the last run's changes it could not upload are still known */
	cachestate_foreach_dirty(cs, collect_dirty, &dirty);
	cr_assert_eq(dirty.count, 1);
	cr_assert(dirty_has(&dirty, test_users[1]));
}

Test(fs_cachestate_last_run, killed_discards_only_dirty_users)
{
	struct dirty_list dirty = { .count = 0 };
	char path[4096];

	make_all_users();
	open_state();
	cr_assert_eq(cachestate_mark_dirty(cs, test_users[0]), 0);
	cr_assert_eq(cachestate_mark_dirty(cs, test_users[2]), 0);
	/* marked dirty, then uploaded: not distrusted */
	cr_assert_eq(cachestate_mark_dirty(cs, test_users[1]), 0);
	cr_assert_eq(cachestate_clear_dirty(cs, test_users[1]), 0);
	cr_assert_eq(cachestate_clear_dirty(cs, test_users[1]), 0,
		     "clearing a missing marker must succeed");
	/* a marker of a user whose tree is not in the cache */
	cr_assert_eq(cachestate_mark_dirty(cs, "ghost@example.com"), 0);
	/* killed: no clean marker, same boot */
	cachestate_close(&cs, false);

	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_KILLED);
	cr_assert_eq(cachestate_discarded(cs), 2);
	cr_assert_not(user_tree_exists(test_users[0]));
	cr_assert(user_tree_exists(test_users[1]));
	cr_assert_not(user_tree_exists(test_users[2]));
	/* the whole user directory went, not just its contents */
	struct stat st;

	cr_assert_eq(fstatat(meta_fd, test_users[0], &st, 0), -1);
	cr_assert_eq(errno, ENOENT);
	/* markers of discarded users are gone: their trees come from the
	   store again */
	cachestate_foreach_dirty(cs, collect_dirty, &dirty);
	cr_assert_eq(dirty.count, 0, "%u markers left", dirty.count);
	snprintf(path, sizeof(path), "%s/trash", dir);
	cr_assert_eq(count_entries(path), 0, "the trash is not emptied");

	/* this run ends cleanly: the next one trusts everything left */
	cachestate_close(&cs, true);
	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_CLEAN);
	cr_assert(user_tree_exists(test_users[1]));
}

Test(fs_cachestate_last_run, killed_twice_in_a_row)
{
	make_all_users();
	open_state();
	cr_assert_eq(cachestate_mark_dirty(cs, test_users[0]), 0);
	cachestate_close(&cs, false);
	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_KILLED);
	cr_assert_eq(cachestate_discarded(cs), 1);
	cachestate_close(&cs, false);
	/* still killed (the marker says mounted), nothing more dirty */
	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_KILLED);
	cr_assert_eq(cachestate_discarded(cs), 0);
	cr_assert(user_tree_exists(test_users[1]));
	cr_assert(user_tree_exists(test_users[2]));
}

/* arrays, not pointers: criterion runs each case in a new process */
struct marker_case {
	char content[96];
	size_t len;
	enum cachestate_last_run expected;
};

#define MARKER(s, e) { s, sizeof(s) - 1, e }

ParameterizedTestParameters(fs_cachestate_last_run, marker_content)
{
	static struct marker_case cases[] = {
		/* another boot: the machine went down while mounted */
		MARKER("mounted 00000000-0000-0000-0000-000000000000\n",
		       CACHESTATE_CRASHED),
		/* torn or damaged markers distrust everything */
		MARKER("\x01\x02\xff\xfe garbage\x7f", CACHESTATE_CRASHED),
		MARKER("\xde\xad\xbe\xef", CACHESTATE_CRASHED),
		MARKER("", CACHESTATE_CRASHED),
		MARKER("mount", CACHESTATE_CRASHED),
		MARKER("clean", CACHESTATE_CRASHED),
		MARKER("clean\n", CACHESTATE_CRASHED),
		MARKER("\0\0\0\0\0\0\0\0", CACHESTATE_CRASHED),
		MARKER("mounted unknown\n", CACHESTATE_CRASHED),
		/* a clean unmount on another boot: everything was synced */
		MARKER("clean 00000000-0000-0000-0000-000000000000\n",
		       CACHESTATE_CLEAN),
	};
	return cr_make_param_array(struct marker_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct marker_case *c, fs_cachestate_last_run,
		  marker_content)
{
	struct dirty_list dirty = { .count = 0 };
	bool crashed = c->expected == CACHESTATE_CRASHED;
	char path[4096];
	int fd;

	make_all_users();
	/* a dirty marker left by the previous run */
	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/state/dirty", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/state/dirty/%s", dir, test_users[0]);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	write_marker(c->content, c->len);

	open_state();
	cr_assert_eq(cachestate_last_run(cs), c->expected,
		     "marker '%.*s': last run %d, expected %d", (int)c->len,
		     c->content, cachestate_last_run(cs), c->expected);
	cr_assert_eq(cachestate_discarded(cs), crashed ? USER_COUNT : 0);
	for (unsigned int i = 0; i < USER_COUNT; i++) {
		cr_assert_eq(user_tree_exists(test_users[i]), !crashed,
			     "tree of %s", test_users[i]);
	}
	cachestate_foreach_dirty(cs, collect_dirty, &dirty);
	cr_assert_eq(dirty.count, crashed ? 0 : 1);
	snprintf(path, sizeof(path), "%s/trash", dir);
	cr_assert_eq(count_entries(path), 0, "the trash is not emptied");

	/* whatever was there, the marker now says "mounted" */
	char buf[256], expected[256], id[128];

	boot_id(id, sizeof(id));
	snprintf(path, sizeof(path), "%s/state/mounted", dir);
	read_file(path, buf, sizeof(buf));
	snprintf(expected, sizeof(expected), "mounted %s\n", id);
	cr_assert_str_eq(buf, expected);
}

Test(fs_cachestate_last_run, crash_with_no_user_trees)
{
	/* an empty meta dir and a crash: nothing to discard, no error */
	write_marker("mounted 00000000-0000-0000-0000-000000000000\n", 45);
	open_state();
	cr_assert_eq(cachestate_last_run(cs), CACHESTATE_CRASHED);
	cr_assert_eq(cachestate_discarded(cs), 0);
}

Test(fs_cachestate_last_run, open_fails_cleanly_on_unusable_dir)
{
	const char *error = NULL;
	char path[4096];
	int fd;

	/* CACHE_DIR/state is a file: no state directory can exist */
	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(cachestate_open(dir, meta_fd, &cs, &error), -1);
	cr_assert_not_null(error);
	cr_assert_not_null(strstr(error, "state"), "error: %s", error);
}

/* the ids' clock a run leaves is what the next reads; none, or garbage,
   reads as 0 */
Test(fs_cachestate_last_run, ids_clock_survives_a_restart)
{
	char path[4200];
	int fd;

	open_state();
	cr_assert_eq(cachestate_clock_read(cs), 0);
	cachestate_clock_save(cs, 1765000000123456ULL);
	cachestate_close(&cs, true);
	open_state();
	cr_assert_eq(cachestate_clock_read(cs), 1765000000123456ULL);
	cachestate_path(cs, "ids-clock", path, sizeof(path));
	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "12x\n", 4), 4);
	close(fd);
	cr_assert_eq(cachestate_clock_read(cs), 0);
}
