/* test_fs_userload_special_files.c: special files of a user's tree (the
 * Pigeonhole ~/.dovecot.sieve symlink, fifos, sockets, device nodes, in the
 * user root and in a folder) are uploaded in its bundles and loaded back
 * with their type, target or rdev, owner, mode and mtime; a symlink in a
 * mail location stays a symlink (never a mail).  Runs as root. */
#include "test_fs_userload.h"

#include <sys/sysmacros.h>

TestSuite(fs_userload_special_files, .init = ul_init, .fini = ul_fini);

#define T0 1600000000

struct node {
	const char *path;
	mode_t fmt;
	dev_t rdev;
	const char *target;	/* symlinks */
};

static const struct node nodes[] = {
	{ ".dovecot.sieve", S_IFLNK, 0, "sieve/main.sieve" },
	{ "fifo", S_IFIFO, 0, NULL },
	{ "Maildir/socket", S_IFSOCK, 0, NULL },
	{ "Maildir/null", S_IFCHR, 0x103, NULL },
	{ "Maildir/disk", S_IFBLK, 0x801, NULL },
	{ "Maildir/cur/link", S_IFLNK, 0, "../../sieve/main.sieve" },
};
#define NODE_COUNT (sizeof(nodes) / sizeof(nodes[0]))

static void make_node(const struct node *n, unsigned int i)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { T0 + i, 7 } };

	if (n->fmt == S_IFLNK)
		cr_assert_eq(symlinkat(n->target, ul_src_fd, n->path), 0);
	else
		cr_assert_eq(mknodat(ul_src_fd, n->path, n->fmt | 0640,
				     n->rdev), 0, "%s: %s", n->path,
			     strerror(errno));
	cr_assert_eq(fchownat(ul_src_fd, n->path, 1234 + i, 1235,
			      AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(utimensat(ul_src_fd, n->path, ts, AT_SYMLINK_NOFOLLOW),
		     0);
}

static void check_node(const struct node *n, unsigned int i)
{
	char target[256];
	struct stat st;
	ssize_t len;

	cr_assert_eq(fstatat(ul_dst_fd, n->path, &st, AT_SYMLINK_NOFOLLOW), 0,
		     "%s: %s", n->path, strerror(errno));
	cr_assert_eq(st.st_mode & S_IFMT, n->fmt, "%s: type", n->path);
	cr_assert_eq(st.st_uid, 1234 + i, "%s: owner", n->path);
	cr_assert_eq(st.st_mtim.tv_sec, T0 + i, "%s: mtime", n->path);
	cr_assert_eq(st.st_mtim.tv_nsec, 7);
	if (n->fmt == S_IFLNK) {
		len = readlinkat(ul_dst_fd, n->path, target, sizeof(target));
		cr_assert_eq(len, (ssize_t)strlen(n->target));
		cr_assert_eq(memcmp(target, n->target, (size_t)len), 0);
		return;
	}
	cr_assert_eq(st.st_mode & 07777, 0640, "%s: mode", n->path);
	cr_assert_eq(st.st_rdev, n->rdev, "%s: rdev", n->path);
}

Test(fs_userload_special_files, loaded_back_with_type_target_rdev_owner)
{
	struct bundle_tree *expected, *got;
	struct userload_stats stats;
	const char *error, *why;

	ul_mkdir(ul_src_fd, "sieve", NULL);
	ul_file(ul_src_fd, "sieve/main.sieve", "keep;\n", T0);
	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_mkdir(ul_src_fd, "Maildir/cur", NULL);
	for (unsigned int i = 0; i < NODE_COUNT; i++)
		make_node(&nodes[i], i);
	ul_bundle_root("", NULL);
	ul_bundle_root("Maildir", GUID_INBOX);

	cr_assert_eq(ul_load(&stats), 1);
	cr_assert_eq(stats.roots_loaded, 2);
	cr_assert_eq(stats.bundles_rejected, 0);
	cr_assert_eq(stats.mails_put_back, 0);
	cr_assert_eq(stats.stubs, 0);
	for (unsigned int i = 0; i < NODE_COUNT; i++)
		check_node(&nodes[i], i);
	cr_assert_eq(bundle_tree_scan(ul_src_fd, &expected, &error), 0, "%s",
		     error);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &got, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(expected, got, &why), "differ: %s", why);
	bundle_tree_free(&expected);
	bundle_tree_free(&got);
}
