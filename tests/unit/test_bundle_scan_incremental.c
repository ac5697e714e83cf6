/* test_bundle_scan_incremental.c: an incremental scan takes the files that
 * did not change from the last scan (no open, no read) and reads the
 * changed and new ones: a file rewritten in place with the same size and
 * mtime is read again when reported, a renamed file keeps its content under
 * its new path, hard links stay a group, the filter still applies, and the
 * result always equals a full scan of the same tree; the walk
 * (bundle_tree_scan_begin()) is all that sees the directory: finish gives
 * what it walked, whatever changed since. */
#include "helper-objstore.h"
#include "bundle.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static char *tmp;
static int fd = -1;
/* the inodes reported as changed */
static uint64_t changed_inos[8];
static unsigned int changed_count;

static void put(const char *path, const char *content)
{
	int f = openat(fd, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(f, 0, "%s", path);
	cr_assert_eq(write(f, content, strlen(content)),
		     (ssize_t)strlen(content));
	close(f);
}

static uint64_t ino_of(const char *path)
{
	struct stat st;

	cr_assert_eq(fstatat(fd, path, &st, AT_SYMLINK_NOFOLLOW), 0, "%s", path);
	return (uint64_t)st.st_ino;
}

static void report(const char *path)
{
	cr_assert_lt(changed_count, 8);
	changed_inos[changed_count++] = ino_of(path);
}

static bool changed(uint64_t ino, void *context)
{
	(void)context;
	for (unsigned int i = 0; i < changed_count; i++) {
		if (changed_inos[i] == ino)
			return true;
	}
	return false;
}

static void init(void)
{
	tmp = objtest_mkdtemp("bundle-incremental");
	cr_assert_not_null(tmp);
	fd = open(tmp, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(mkdirat(fd, "cur", 0700), 0);
	put("dovecot.index", "index v1");
	put("dovecot.index.log", "log");
	put("cur/1.M1.host:2,S", "");
	static const char key[] = "aa/bbb/u/mailboxes/"
		"00000000000000000000000000000001/"
		"00000000000000000000000000000002";
	int f = openat(fd, "cur/1.M1.host:2,S", O_RDONLY);

	cr_assert_geq(f, 0);
	cr_assert_eq(fsetxattr(f, BUNDLE_XATTR_KEY, key, strlen(key), 0), 0);
	cr_assert_eq(fsetxattr(f, BUNDLE_XATTR_SIZE, "42", 2, 0), 0);
	close(f);
	changed_count = 0;
}

static void fini(void)
{
	if (fd >= 0)
		close(fd);
	objtest_rm_rf(tmp);
	free(tmp);
}

TestSuite(bundle_scan_incremental, .init = init, .fini = fini);

static struct bundle_tree *scan(const struct bundle_tree *prev_tree,
				size_t *reused_r, size_t *read_r)
{
	struct bundle_scan_prev prev = {
		.tree = prev_tree, .changed = changed,
	};
	struct bundle_tree *tree, *full;
	const char *error;

	cr_assert_eq(bundle_tree_scan_incremental(fd, NULL, NULL, &prev, &tree,
						  &error), 0, "%s", error);
	*reused_r = prev.reused;
	*read_r = prev.read;
	/* whatever was taken from prev, it is what a full scan sees */
	cr_assert_eq(bundle_tree_scan(fd, &full, &error), 0, "%s", error);
	cr_assert(bundle_tree_equal(tree, full, &error),
		  "incremental and full scans differ: %s", error);
	bundle_tree_free(&full);
	return tree;
}

static const char *content_of(const struct bundle_tree *tree,
			      const char *path)
{
	const struct bundle_entry *e = bundle_tree_find(tree, path);
	static char buf[256];

	cr_assert_not_null(e, "%s is missing", path);
	snprintf(buf, sizeof(buf), "%.*s", (int)e->size, (char *)e->data);
	return buf;
}

Test(bundle_scan_incremental, unchanged_files_are_taken_from_the_last_scan)
{
	struct bundle_tree *first, *second;
	size_t reused, read;

	first = scan(NULL, &reused, &read);
	cr_assert_eq(reused, 0);
	cr_assert_eq(read, 3);
	second = scan(first, &reused, &read);
	cr_assert_eq(reused, 3, "%zu reused", reused);
	cr_assert_eq(read, 0, "%zu read", read);
	cr_assert_str_eq(bundle_tree_find(second, "cur/1.M1.host:2,S")->key,
			 bundle_tree_find(first, "cur/1.M1.host:2,S")->key);
	bundle_tree_free(&first);
	bundle_tree_free(&second);
}

Test(bundle_scan_incremental, a_reported_change_is_read_even_with_equal_stat)
{
	struct bundle_tree *first, *second;
	struct timespec times[2];
	size_t reused, read;
	struct stat st;
	int f;

	first = scan(NULL, &reused, &read);
	cr_assert_eq(fstatat(fd, "dovecot.index", &st, 0), 0);
	/* same size, same mtime: only the report tells */
	f = openat(fd, "dovecot.index", O_WRONLY);
	cr_assert_eq(pwrite(f, "index v2", 8, 0), 8);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	cr_assert_eq(futimens(f, times), 0);
	close(f);
	report("dovecot.index");
	second = scan(first, &reused, &read);
	cr_assert_eq(read, 1);
	cr_assert_eq(reused, 2);
	cr_assert_str_eq(content_of(second, "dovecot.index"), "index v2");
	bundle_tree_free(&first);
	bundle_tree_free(&second);
}

Test(bundle_scan_incremental, renamed_and_new_files)
{
	struct bundle_tree *first, *second;
	size_t reused, read;

	first = scan(NULL, &reused, &read);
	/* a rename keeps the inode: taken from the last scan, new path */
	cr_assert_eq(renameat(fd, "cur/1.M1.host:2,S", fd,
			      "cur/1.M1.host:2,RS"), 0);
	put("dovecot.index.cache", "new");
	second = scan(first, &reused, &read);
	cr_assert_eq(read, 1, "only the new file is read (%zu)", read);
	cr_assert_eq(reused, 3);
	cr_assert_null(bundle_tree_find(second, "cur/1.M1.host:2,S"));
	cr_assert_not_null(bundle_tree_find(second, "cur/1.M1.host:2,RS"));
	cr_assert_str_eq(content_of(second, "dovecot.index.cache"), "new");
	bundle_tree_free(&first);
	bundle_tree_free(&second);
}

Test(bundle_scan_incremental, hard_links_stay_a_group)
{
	struct bundle_tree *first, *second;
	const struct bundle_entry *a, *b;
	size_t reused, read;

	cr_assert_eq(linkat(fd, "dovecot.index.log", fd, "log.lock", 0), 0);
	first = scan(NULL, &reused, &read);
	second = scan(first, &reused, &read);
	cr_assert_eq(read, 0);
	a = bundle_tree_find(second, "dovecot.index.log");
	b = bundle_tree_find(second, "log.lock");
	cr_assert_neq(a->link_id, 0);
	cr_assert_eq(a->link_id, b->link_id);
	bundle_tree_free(&first);
	bundle_tree_free(&second);
}

static enum bundle_scan_action no_logs(const char *path, bool is_dir,
				       void *context)
{
	(void)context;
	return !is_dir && strstr(path, ".log") != NULL ?
		BUNDLE_SCAN_SKIP : BUNDLE_SCAN_INCLUDE;
}

Test(bundle_scan_incremental, the_filter_applies_to_reused_files)
{
	struct bundle_scan_prev prev = { .changed = changed };
	struct bundle_tree *first, *second;
	const char *error;
	size_t reused, read;

	first = scan(NULL, &reused, &read);
	prev.tree = first;
	cr_assert_eq(bundle_tree_scan_incremental(fd, no_logs, NULL, &prev,
						  &second, &error), 0);
	cr_assert_null(bundle_tree_find(second, "dovecot.index.log"));
	cr_assert_not_null(bundle_tree_find(second, "dovecot.index"));
	cr_assert_eq(prev.read, 0);
	bundle_tree_free(&first);
	bundle_tree_free(&second);
}

/* bundle_tree_scan_begin() is all that must see the directory: what it
   walked is the tree, whatever changes before bundle_tree_scan_finish()
   (the upload releases the user's tree lock in between) */
Test(bundle_scan_incremental, finish_gives_the_tree_the_walk_saw)
{
	struct bundle_scan_prev prev = { .changed = changed };
	struct bundle_tree *first, *second;
	struct bundle_scan *walk;
	const char *error;
	size_t reused, read;

	first = scan(NULL, &reused, &read);
	prev.tree = first;
	cr_assert_eq(renameat(fd, "cur/1.M1.host:2,S", fd,
			      "cur/1.M1.host:2,RS"), 0);
	cr_assert_eq(bundle_tree_scan_begin(fd, NULL, NULL, &prev, &walk,
					    &error), 0, "%s", error);
	cr_assert_eq(prev.reused, 3);
	/* after the walk: a mail expunged, an index rewritten, a new file */
	cr_assert_eq(unlinkat(fd, "cur/1.M1.host:2,RS", 0), 0);
	put("dovecot.index", "index v3, longer");
	put("dovecot.index.cache", "new");
	cr_assert_eq(bundle_tree_scan_finish(&walk, &second, &error), 0,
		     "%s", error);
	cr_assert_null(walk);
	cr_assert(second->checked);
	cr_assert_eq(second->count, 4, "%zu entries", second->count);
	cr_assert_str_eq(bundle_tree_find(second, "cur/1.M1.host:2,RS")->key,
			 bundle_tree_find(first, "cur/1.M1.host:2,S")->key);
	cr_assert_str_eq(content_of(second, "dovecot.index"), "index v1");
	cr_assert_null(bundle_tree_find(second, "dovecot.index.cache"));
	bundle_tree_free(&first);
	bundle_tree_free(&second);
}

Test(bundle_scan_incremental, a_walk_not_finished_is_freed)
{
	struct bundle_scan_prev prev = { .changed = changed };
	struct bundle_tree *first;
	struct bundle_scan *walk;
	const char *error;
	size_t reused, read;

	first = scan(NULL, &reused, &read);
	prev.tree = first;
	cr_assert_eq(bundle_tree_scan_begin(fd, NULL, NULL, &prev, &walk,
					    &error), 0, "%s", error);
	bundle_scan_free(&walk);
	cr_assert_null(walk);
	bundle_scan_free(&walk);	/* twice: nothing */
	bundle_tree_free(&first);
}
