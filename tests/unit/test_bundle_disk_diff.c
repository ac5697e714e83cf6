/* test_bundle_disk_diff.c: the whole upload/download cycle on real
 * directories: scan a folder's index tree, store a base, let it change on
 * disk (appends to the cache and log, a renamed stub, a deleted file, a new
 * dot-lock link), scan again, diff, then rebuild the tree elsewhere from base +
 * diff and compare. */
#include "helper-objstore.h"
#include "bundle.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define KEY "b5/899/u@example.com/mailboxes/" \
	"00d7d12ea08a3153175e0000dfbea952/d88ff1001d4bf753a1b800001accfe22"
#define MB (1024 * 1024)

static char *tmp;
static int src_fd = -1, dst_fd = -1;

static void init(void)
{
	objtest_src_dst_init("bundle-disk", &tmp, &src_fd, &dst_fd);
}

static void fini(void)
{
	objtest_src_dst_fini(&tmp, &src_fd, &dst_fd);
}

TestSuite(bundle_disk_diff, .init = init, .fini = fini);

static void write_file(const char *path, size_t size, unsigned int seed,
		       bool append)
{
	unsigned char *buf = malloc(size + 1);
	int fd = openat(src_fd, path, O_WRONLY | O_CREAT |
			(append ? O_APPEND : O_EXCL), 0600);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	objtest_random_bytes(buf, size, seed);
	cr_assert_eq(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

static void stub(const char *path)
{
	int fd = openat(src_fd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_KEY, KEY, strlen(KEY), 0), 0);
	cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_SIZE, "42", 2, 0), 0);
	close(fd);
}

static struct bundle_tree *scan(int fd)
{
	struct bundle_tree *tree;
	const char *error;

	cr_assert_eq(bundle_tree_scan(fd, &tree, &error), 0, "%s", error);
	return tree;
}

Test(bundle_disk_diff, base_plus_diff_rebuilds_the_changed_tree)
{
	struct bundle_info info = { .secs = 0x53f74dc2, .usecs = 1 };
	struct bundle_info dinfo = { .secs = 0x53f74dc3, .usecs = 2,
				     .seq = 1 };
	struct bundle_tree *tree, *changed, *rebuilt;
	struct bundle *stored_base, *stored_diff;
	unsigned char *base_data, *diff_data;
	size_t base_size, diff_size;
	const char *error, *why;

	cr_assert_eq(mkdirat(src_fd, "cur", 0700), 0);
	cr_assert_eq(mkdirat(src_fd, "new", 0700), 0);
	write_file("dovecot.index", 8192, 1, false);
	write_file("dovecot.index.cache", MB, 2, false);
	write_file("dovecot.index.log", 32768, 3, false);
	write_file("dovecot-uidlist", 300, 4, false);
	stub("cur/1.M1.host,S=42:2,");
	stub("new/2.M2.host,S=42");

	tree = scan(src_fd);
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &base_data, &base_size,
					&error), 0, "%s", error);

	/* Dovecot at work */
	write_file("dovecot.index.cache", 500, 5, true);
	write_file("dovecot.index.log", 120, 6, true);
	cr_assert_eq(renameat(src_fd, "new/2.M2.host,S=42", src_fd,
			      "cur/2.M2.host,S=42:2,S"), 0);
	cr_assert_eq(unlinkat(src_fd, "dovecot-uidlist", 0), 0);
	/* a dot-lock: a temporary file link()ed to the lock name */
	write_file("dovecot.index.lock.host.123", 12, 7, false);
	cr_assert_eq(linkat(src_fd, "dovecot.index.lock.host.123", src_fd,
			    "dovecot.index.lock", 0), 0);
	changed = scan(src_fd);

	cr_assert_eq(bundle_id_generate(dinfo.id), 0);
	cr_assert_eq(bundle_diff(tree, changed, &dinfo, &diff_data, &diff_size,
				 &error), 0, "%s", error);
	/* the 1 MB cache is not sent again */
	cr_assert_lt(diff_size, 2000, "diff of %zu bytes", diff_size);
	fprintf(stderr, "on disk: base %zu bytes (1 MB cache, 32 KB log, "
		"8 KB index), diff %zu bytes (cache +500, log +120, a rename, "
		"a delete, a dot-lock hard link)\n",
		base_size, diff_size);

	/* another machine: base + diff -> an empty directory */
	cr_assert_eq(bundle_decode(base_data, base_size, 16 * MB,
				   &stored_base, &error), 0, "%s", error);
	cr_assert_eq(bundle_decode(diff_data, diff_size, 16 * MB,
				   &stored_diff, &error), 0, "%s", error);
	cr_assert_eq(bundle_apply_diff(stored_base->tree, stored_diff->diff,
				       &error), 0, "%s", error);
	cr_assert_eq(bundle_tree_write(stored_base->tree, dst_fd, &error), 0,
		     "%s", error);
	rebuilt = scan(dst_fd);
	cr_assert(bundle_tree_equal(changed, rebuilt, &why), "differs at %s",
		  why);

	struct stat a, b;
	cr_assert_eq(fstatat(dst_fd, "dovecot.index.lock.host.123", &a, 0), 0);
	cr_assert_eq(fstatat(dst_fd, "dovecot.index.lock", &b, 0), 0);
	cr_assert_eq(a.st_ino, b.st_ino);
	cr_assert_eq(fstatat(dst_fd, "dovecot.index.cache", &a, 0), 0);
	cr_assert_eq(a.st_size, MB + 500);

	free(base_data);
	free(diff_data);
	bundle_free(&stored_base);
	bundle_free(&stored_diff);
	bundle_tree_free(&tree);
	bundle_tree_free(&changed);
	bundle_tree_free(&rebuilt);
}
