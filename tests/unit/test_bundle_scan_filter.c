/* test_bundle_scan_filter.c: scanning part of a tree: the user's own tree
 * keeps folder directories but not their contents, a folder's tree leaves
 * out tmp/ (mails being written), and skipped entries are never read (a
 * damaged stub there is no error). */
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

static void put(const char *path, const char *content)
{
	int f = openat(fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	cr_assert_geq(f, 0, "%s", path);
	cr_assert_eq(write(f, content, strlen(content)),
		     (ssize_t)strlen(content));
	close(f);
}

/* path below tmp, in a static buffer */
static const char *tmp_path(const char *path)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", tmp, path);
	return buf;
}

static void init(void)
{
	tmp = objtest_mkdtemp("bundle-filter");
	cr_assert_not_null(tmp);
	fd = open(tmp, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(mkdirat(fd, "Maildir", 0700), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/.Sent", 0700), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/.Sent/tmp", 0700), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/.Sent/cur", 0700), 0);
	put("Maildir/dovecot.list.index", "list");
	put("Maildir/subscriptions", "Sent\n");
	put("Maildir/.Sent/dovecot.index", "index");
	put("Maildir/.Sent/tmp/1.M1.host", "From: a mail being written\n");
	/* an empty file with a key xattr that is no store key: a scan that
	   reads it fails */
	put("Maildir/.Sent/tmp/odd", "");
	cr_assert_eq(lsetxattr(tmp_path("Maildir/.Sent/tmp/odd"),
			       BUNDLE_XATTR_KEY, "../x", 4, 0), 0);
}

static void fini(void)
{
	if (fd >= 0)
		close(fd);
	objtest_rm_rf(tmp);
	free(tmp);
}

TestSuite(bundle_scan_filter, .init = init, .fini = fini);

static enum bundle_scan_action user_filter(const char *path, bool is_dir,
					   void *context)
{
	const char *slash = strrchr(path, '/');

	(*(unsigned int *)context)++;
	if (is_dir && slash != NULL && slash[1] == '.')
		return BUNDLE_SCAN_NO_CHILDREN;
	return BUNDLE_SCAN_INCLUDE;
}

static enum bundle_scan_action folder_filter(const char *path, bool is_dir,
					     void *context)
{
	(void)context;
	if (is_dir && strcmp(path, "tmp") == 0)
		return BUNDLE_SCAN_SKIP;
	return BUNDLE_SCAN_INCLUDE;
}

Test(bundle_scan_filter, user_tree_keeps_folder_dirs_only)
{
	struct bundle_tree *tree;
	const char *error;
	unsigned int calls = 0;

	cr_assert_eq(bundle_tree_scan_filtered(fd, user_filter, &calls, &tree,
					       &error), 0, "%s", error);
	cr_assert_eq(tree->count, 4);
	cr_assert_not_null(bundle_tree_find(tree, "Maildir/.Sent"));
	cr_assert_null(bundle_tree_find(tree, "Maildir/.Sent/dovecot.index"));
	cr_assert_not_null(bundle_tree_find(tree, "Maildir/subscriptions"));
	cr_assert_eq(calls, 4, "folder contents never visited");
	bundle_tree_free(&tree);
}

Test(bundle_scan_filter, folder_tree_leaves_out_tmp)
{
	struct bundle_tree *tree;
	const char *error;
	int folder = openat(fd, "Maildir/.Sent", O_RDONLY | O_DIRECTORY);

	cr_assert_geq(folder, 0);
	cr_assert_eq(bundle_tree_scan(folder, &tree, &error), -1,
		     "unfiltered: the damaged stub in tmp/ is refused");
	cr_assert_eq(bundle_tree_scan_filtered(folder, folder_filter, NULL,
					       &tree, &error), 0, "%s", error);
	cr_assert_eq(tree->count, 2, "cur and dovecot.index");
	cr_assert_not_null(bundle_tree_find(tree, "cur"));
	cr_assert_not_null(bundle_tree_find(tree, "dovecot.index"));
	bundle_tree_free(&tree);
	close(folder);
}
