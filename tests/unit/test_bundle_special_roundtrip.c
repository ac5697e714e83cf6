/* test_bundle_special_roundtrip.c: each special file kind (symlink, fifo,
 * socket, char and block device) on disk survives scan -> encode -> decode
 * -> write -> scan with its type, target or rdev, owner, mode and mtime;
 * writing a tree never follows one of its symlinks.  Runs as root
 * (mknodat() of devices, chown). */
#include "helper-objstore.h"
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define UID 1234
#define GID 5678
#define MTIME 1400000000

static char *tmp;
static int src_fd = -1, dst_fd = -1;

static void init(void)
{
	objtest_src_dst_init("bundle-special", &tmp, &src_fd, &dst_fd);
}

static void fini(void)
{
	objtest_src_dst_fini(&tmp, &src_fd, &dst_fd);
}

TestSuite(bundle_special_roundtrip, .init = init, .fini = fini);

struct kind_case {
	char name[24];
	enum bundle_entry_type type;
	mode_t fmt;
	unsigned int major, minor;
	char target[64];	/* symlinks */
};

ParameterizedTestParameters(bundle_special_roundtrip, kinds)
{
	static struct kind_case cases[] = {
		{ "symlink", BUNDLE_ENTRY_SYMLINK, S_IFLNK, 0, 0,
		  "sieve/vacation.sieve" },
		{ "dangling abs symlink", BUNDLE_ENTRY_SYMLINK, S_IFLNK, 0, 0,
		  "/nonexistent/../x y" },
		{ "fifo", BUNDLE_ENTRY_FIFO, S_IFIFO, 0, 0, "" },
		{ "socket", BUNDLE_ENTRY_SOCKET, S_IFSOCK, 0, 0, "" },
		{ "char device", BUNDLE_ENTRY_CHARDEV, S_IFCHR, 1, 3, "" },
		{ "block device", BUNDLE_ENTRY_BLOCKDEV, S_IFBLK, 259, 65537,
		  "" },
	};

	return cr_make_param_array(struct kind_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

/* dir/node as the case says, owned by UID:GID, mode 0640, mtime MTIME.5 */
static void make_node(int fd, const struct kind_case *c)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { MTIME, 5 } };

	cr_assert_eq(mkdirat(fd, "dir", 0700), 0);
	if (c->type == BUNDLE_ENTRY_SYMLINK)
		cr_assert_eq(symlinkat(c->target, fd, "dir/node"), 0);
	else
		cr_assert_eq(mknodat(fd, "dir/node", c->fmt | 0640,
				     makedev(c->major, c->minor)), 0,
			     "mknodat: %s", strerror(errno));
	cr_assert_eq(fchownat(fd, "dir/node", UID, GID,
			      AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(utimensat(fd, "dir/node", ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void check_node(int fd, const struct kind_case *c)
{
	char target[128];
	struct stat st;
	ssize_t len;

	cr_assert_eq(fstatat(fd, "dir/node", &st, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(st.st_mode & S_IFMT, c->fmt, "%s: type", c->name);
	cr_assert_eq(st.st_uid, UID);
	cr_assert_eq(st.st_gid, GID);
	cr_assert_eq(st.st_mtim.tv_sec, MTIME);
	cr_assert_eq(st.st_mtim.tv_nsec, 5);
	if (c->type == BUNDLE_ENTRY_SYMLINK) {
		len = readlinkat(fd, "dir/node", target, sizeof(target));
		cr_assert_eq(len, (ssize_t)strlen(c->target));
		cr_assert_eq(memcmp(target, c->target, (size_t)len), 0);
		return;
	}
	cr_assert_eq(st.st_mode & 07777, 0640, "%s: mode", c->name);
	cr_assert_eq(st.st_rdev, makedev(c->major, c->minor), "%s: rdev",
		     c->name);
}

ParameterizedTest(struct kind_case *c, bundle_special_roundtrip, kinds)
{
	struct bundle_info info = { .secs = 0x53f74dc2, .usecs = 1 };
	struct bundle_tree *tree, *tree2;
	const struct bundle_entry *e;
	struct bundle *bundle;
	unsigned char *data;
	size_t size;
	const char *error, *why;

	make_node(src_fd, c);
	cr_assert_eq(bundle_tree_scan(src_fd, &tree, &error), 0, "%s: %s",
		     c->name, error);
	e = bundle_tree_find(tree, "dir/node");
	cr_assert_not_null(e);
	cr_assert_eq(e->type, c->type, "%s", c->name);
	cr_assert_eq(e->link_id, 0);
	cr_assert_eq(e->rdev, c->type == BUNDLE_ENTRY_CHARDEV ||
		     c->type == BUNDLE_ENTRY_BLOCKDEV ?
		     makedev(c->major, c->minor) : 0);
	cr_assert_eq(e->size, strlen(c->target));

	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0,
		     "%s: %s", c->name, error);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0,
		     "%s: %s", c->name, error);
	cr_assert(bundle_tree_equal(tree, bundle->tree, &why), "%s: %s",
		  c->name, why);
	cr_assert_eq(bundle_tree_write(bundle->tree, dst_fd, &error), 0,
		     "%s: %s", c->name, error);
	check_node(dst_fd, c);
	cr_assert_eq(bundle_tree_scan(dst_fd, &tree2, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(tree, tree2, &why), "%s: differs at %s",
		  c->name, why);
	free(data);
	bundle_free(&bundle);
	bundle_tree_free(&tree);
	bundle_tree_free(&tree2);
}

/* every kind at once, hard-linked names included: each name of a special
   file is an entry of its own */
Test(bundle_special_roundtrip, hard_links_of_special_files_are_separate)
{
	struct bundle_tree *tree;
	const char *error;

	cr_assert_eq(mkfifoat(src_fd, "p", 0600), 0);
	cr_assert_eq(linkat(src_fd, "p", src_fd, "p2", 0), 0);
	cr_assert_eq(symlinkat("t", src_fd, "l"), 0);
	cr_assert_eq(linkat(src_fd, "l", src_fd, "l2", 0), 0);
	cr_assert_eq(bundle_tree_scan(src_fd, &tree, &error), 0, "%s", error);
	cr_assert_eq(tree->count, 4);
	for (size_t i = 0; i < tree->count; i++)
		cr_assert_eq(tree->entries[i].link_id, 0);
	cr_assert_eq(bundle_tree_write(tree, dst_fd, &error), 0, "%s", error);
	bundle_tree_free(&tree);
}

/* a bundle's symlink (mode, owner and mtime of its own) pointing at a
   file outside the tree: writing it changes nothing of that file */
Test(bundle_special_roundtrip, write_never_follows_a_symlink)
{
	struct bundle_tree *tree = bundle_tree_new();
	char target[4096];
	struct stat before, after, st;
	const char *error;
	int fd;

	snprintf(target, sizeof(target), "%s/outside", tmp);
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(stat(target, &before), 0);
	struct bundle_entry e = {
		.path = "evil", .type = BUNDLE_ENTRY_SYMLINK, .mode = 06777,
		.uid = UID, .gid = GID, .mtime_sec = 1, .size = strlen(target),
		.data = (unsigned char *)target,
	};
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	cr_assert_eq(bundle_tree_write(tree, dst_fd, &error), 0, "%s", error);
	cr_assert_eq(stat(target, &after), 0);
	cr_assert_eq(after.st_mode, before.st_mode);
	cr_assert_eq(after.st_uid, before.st_uid);
	cr_assert_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	cr_assert_eq(fstatat(dst_fd, "evil", &st, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert(S_ISLNK(st.st_mode));
	cr_assert_eq(st.st_uid, UID);
	cr_assert_eq(st.st_mtim.tv_sec, 1);
	bundle_tree_free(&tree);
}
