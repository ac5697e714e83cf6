/* test_bundle_roundtrip.c: a real directory tree (dirs with folder guids,
 * binary and empty files, mail stubs, hard links, modes, mtimes) survives
 * scan -> encode -> decode -> write -> scan unchanged; what scan and write
 * refuse. */
#include "helper-objstore.h"
#include "bundle.h"
#include "stubattr.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define GUID "00d7d12ea08a3153175e0000dfbea952"
#define KEY1 "b5/899/user@example.com/mailboxes/" GUID \
	"/d88ff1001d4bf753a1b800001accfe22"
#define KEY2 "b5/899/user@example.com/mailboxes/" GUID \
	"/c96d802b5d4df75307bb00001accfe22"

static char *tmp;
static int src_fd = -1, dst_fd = -1;

static void init(void)
{
	objtest_src_dst_init("bundle-rt", &tmp, &src_fd, &dst_fd);
}

static void fini(void)
{
	objtest_src_dst_fini(&tmp, &src_fd, &dst_fd);
}

TestSuite(bundle_roundtrip, .init = init, .fini = fini);

static void put_file(int dirfd, const char *path, const void *data,
		     size_t size, mode_t mode, time_t mtime)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { mtime, 123456789 } };
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	cr_assert_eq(fchmod(fd, mode), 0);
	cr_assert_eq(futimens(fd, ts), 0);
	close(fd);
}

static void put_stub(int dirfd, const char *path, const char *key,
		     const char *size)
{
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_KEY, key, strlen(key), 0), 0);
	cr_assert_eq(fsetxattr(fd, BUNDLE_XATTR_SIZE, size, strlen(size), 0),
		     0);
	close(fd);
}

static void make_tree(int fd)
{
	static unsigned char bin[70000];

	objtest_random_bytes(bin, sizeof(bin), 7);
	bin[10] = '\0';
	cr_assert_eq(mkdirat(fd, "Maildir", 0700), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/.Sent", 0750), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/.Sent/cur", 0700), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/.Sent/new", 0700), 0);
	cr_assert_eq(mkdirat(fd, "Maildir/cur", 0700), 0);
	int dfd = openat(fd, "Maildir/.Sent", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dfd, 0);
	cr_assert_eq(fsetxattr(dfd, BUNDLE_XATTR_GUID, GUID, 32, 0), 0);
	close(dfd);
	put_file(fd, "Maildir/.Sent/dovecot.index", bin, sizeof(bin), 0600,
		 1400000000);
	put_file(fd, "Maildir/.Sent/dovecot.index.log", bin, 1000, 0640,
		 1400000001);
	put_file(fd, "Maildir/.Sent/dovecot-keywords", "", 0, 0600,
		 1400000002);
	put_file(fd, "Maildir/dovecot-uidlist", "3 V1 N2\n", 8, 0600,
		 1400000003);
	put_stub(fd, "Maildir/.Sent/cur/1400000000.M1P1.host,S=1234:2,S",
		 KEY1, "1234");
	put_stub(fd, "Maildir/.Sent/cur/1400000001.M2P1.host,S=99:2,", KEY2,
		 "99");
	/* hard links: a copied mail and a lock file */
	cr_assert_eq(linkat(fd, "Maildir/.Sent/cur/1400000001.M2P1.host,S=99:2,",
			    fd, "Maildir/cur/1400000001.M2P1.host,S=99:2,", 0),
		     0);
	cr_assert_eq(linkat(fd, "Maildir/.Sent/dovecot.index.log", fd,
			    "Maildir/.Sent/dovecot.index.log.lock", 0), 0);
}

static struct bundle_tree *scan(int fd)
{
	struct bundle_tree *tree;
	const char *error;

	cr_assert_eq(bundle_tree_scan(fd, &tree, &error), 0, "scan: %s",
		     error);
	return tree;
}

static void assert_same_inode(int fd, const char *a, const char *b)
{
	struct stat sa, sb;

	cr_assert_eq(fstatat(fd, a, &sa, 0), 0);
	cr_assert_eq(fstatat(fd, b, &sb, 0), 0);
	cr_assert_eq(sa.st_ino, sb.st_ino, "%s and %s are not linked", a, b);
	cr_assert_eq(sa.st_nlink, 2);
}

Test(bundle_roundtrip, disk_tree_survives_encode_decode_write)
{
	struct bundle_info info = { .secs = 0x53f74dc2, .usecs = 0x0fbcf,
				    .mails_secs = 0x53f74000,
				    .mails_usecs = 999999 };
	struct bundle_tree *tree, *tree2;
	struct bundle *bundle;
	unsigned char *data;
	size_t size;
	const char *error, *why;
	char value[BUNDLE_KEY_MAX + 1];

	make_tree(src_fd);
	tree = scan(src_fd);
	cr_assert_eq(tree->count, 13);
	const struct bundle_entry *e = bundle_tree_find(tree,
		"Maildir/.Sent/cur/1400000000.M1P1.host,S=1234:2,S");
	cr_assert_not_null(e);
	cr_assert_eq(e->type, BUNDLE_ENTRY_STUB);
	cr_assert_eq(e->size, 1234);
	cr_assert_str_eq(e->key, KEY1);
	cr_assert_str_eq(bundle_tree_find(tree, "Maildir/.Sent")->guid, GUID);

	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0,
		     "%s", error);
	cr_assert(tree->is_base);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0,
		     "decode: %s", error);
	cr_assert_eq(bundle->info.kind, BUNDLE_KIND_BASE);
	cr_assert_eq(bundle->info.secs, info.secs);
	cr_assert_eq(bundle->info.mails_secs, info.mails_secs);
	cr_assert_eq(bundle->info.mails_usecs, info.mails_usecs);
	cr_assert_eq(memcmp(bundle->info.id, info.id, BUNDLE_ID_SIZE), 0);
	cr_assert_eq(memcmp(bundle->info.digest, tree->base_info.digest,
			    BUNDLE_DIGEST_SIZE), 0);
	cr_assert(bundle_tree_equal(tree, bundle->tree, &why), "%s", why);

	cr_assert_eq(bundle_tree_write(bundle->tree, dst_fd, &error), 0, "%s",
		     error);
	tree2 = scan(dst_fd);
	cr_assert(bundle_tree_equal(tree, tree2, &why), "differs at %s", why);

	/* on disk: links, xattrs, modes are real */
	assert_same_inode(dst_fd, "Maildir/.Sent/dovecot.index.log",
			  "Maildir/.Sent/dovecot.index.log.lock");
	assert_same_inode(dst_fd,
			  "Maildir/.Sent/cur/1400000001.M2P1.host,S=99:2,",
			  "Maildir/cur/1400000001.M2P1.host,S=99:2,");
	int fd = openat(dst_fd, "Maildir/.Sent/cur/1400000000.M1P1.host,"
			"S=1234:2,S", O_RDONLY);
	cr_assert_geq(fd, 0);
	uint64_t stub_size;
	cr_assert_eq(bundle_stub_attr_read(fd, value, &stub_size, &error), 1);
	cr_assert_str_eq(value, KEY1);
	close(fd);
	struct stat st;
	cr_assert_eq(fstatat(dst_fd, "Maildir/.Sent", &st, 0), 0);
	cr_assert_eq(st.st_mode & 07777, 0750);
	cr_assert_eq(fstatat(dst_fd, "Maildir/.Sent/dovecot.index", &st, 0), 0);
	cr_assert_eq(st.st_size, 70000);
	cr_assert_eq(st.st_mtim.tv_sec, 1400000000);
	cr_assert_eq(st.st_mtim.tv_nsec, 123456789);

	free(data);
	bundle_free(&bundle);
	cr_assert_null(bundle);
	bundle_tree_free(&tree);
	bundle_tree_free(&tree2);
	cr_assert_null(tree);
}

Test(bundle_roundtrip, empty_tree)
{
	struct bundle_info info = { .secs = 1, .usecs = 2 };
	struct bundle_tree *tree = scan(src_fd), *empty;
	struct bundle *bundle;
	unsigned char *data;
	size_t size;
	const char *error;

	cr_assert_eq(tree->count, 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0);
	cr_assert_eq(size, 128 + 32, "header + trailer only");
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0,
		     "%s", error);
	cr_assert_eq(bundle->tree->count, 0);
	cr_assert_eq(bundle_tree_write(bundle->tree, dst_fd, &error), 0);
	empty = scan(dst_fd);
	cr_assert_eq(empty->count, 0);
	free(data);
	bundle_free(&bundle);
	bundle_tree_free(&tree);
	bundle_tree_free(&empty);
}

Test(bundle_roundtrip, scan_refuses_damaged_stub_xattrs)
{
	struct bundle_tree *tree = NULL;
	const char *error;

	put_stub(src_fd, "bad", KEY1, "12x");
	cr_assert_eq(bundle_tree_scan(src_fd, &tree, &error), -1);
	cr_assert_not_null(strstr(error, "stub"), "%s", error);
	cr_assert_eq(unlinkat(src_fd, "bad", 0), 0);
	put_stub(src_fd, "bad2", "../../etc/passwd", "1");
	cr_assert_eq(bundle_tree_scan(src_fd, &tree, &error), -1);
	cr_assert_null(tree);
}

Test(bundle_roundtrip, write_refuses_nonempty_directory)
{
	struct bundle_tree *tree;
	const char *error;

	make_tree(src_fd);
	tree = scan(src_fd);
	put_file(dst_fd, "junk", "x", 1, 0600, 1);
	cr_assert_eq(bundle_tree_write(tree, dst_fd, &error), -1);
	cr_assert_not_null(strstr(error, "not empty"), "%s", error);
	bundle_tree_free(&tree);
}

Test(bundle_roundtrip, tree_add_and_check_refuse_bad_trees)
{
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_entry dir = { .path = "d", .type = BUNDLE_ENTRY_DIR,
				    .mode = 0700 };
	struct bundle_entry file = { .path = "d/f", .type = BUNDLE_ENTRY_FILE,
				     .mode = 0600 };
	struct bundle_entry orphan = { .path = "x/f",
				       .type = BUNDLE_ENTRY_FILE };
	const char *error;

	cr_assert_eq(bundle_tree_add(tree, &file, &error), 0);
	cr_assert_eq(bundle_tree_check(tree, &error), -1, "parent missing");
	cr_assert_eq(bundle_tree_add(tree, &dir, &error), 0);
	cr_assert_eq(bundle_tree_check(tree, &error), 0, "%s", error);
	cr_assert_eq(bundle_tree_add(tree, &dir, &error), -1, "duplicate");
	cr_assert_eq(bundle_tree_add(tree, &orphan, &error), 0);
	cr_assert_eq(bundle_tree_check(tree, &error), -1);
	cr_assert_not_null(strstr(error, "parent"), "%s", error);
	orphan.path = "../f";
	cr_assert_eq(bundle_tree_add(tree, &orphan, &error), -1);
	orphan.path = "/f";
	cr_assert_eq(bundle_tree_add(tree, &orphan, &error), -1);
	orphan.path = "d//f";
	cr_assert_eq(bundle_tree_add(tree, &orphan, &error), -1);
	orphan.path = "d/./f";
	cr_assert_eq(bundle_tree_add(tree, &orphan, &error), -1);
	orphan.path = "d/";
	cr_assert_eq(bundle_tree_add(tree, &orphan, &error), -1);
	bundle_tree_free(&tree);
}

Test(bundle_roundtrip, a_base_names_its_parent)
{
	struct bundle_info info = { .secs = 0x53f74dc2, .usecs = 0x0fbcf };
	struct bundle_name parent = { .is_diff = true, .secs = 0x53f70000,
				      .usecs = 999999 }, got;
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_entry dir = { .path = "d", .type = BUNDLE_ENTRY_DIR,
				    .mode = 0700 };
	struct bundle *bundle;
	unsigned char *data;
	const char *error;
	size_t size;

	memset(parent.base_id, 0xab, BUNDLE_ID_SIZE);
	memset(parent.diff_id, 0xcd, BUNDLE_ID_SIZE);
	cr_assert_eq(bundle_tree_add(tree, &dir, &error), 0);
	cr_assert_eq(bundle_id_generate(info.id), 0);
	bundle_info_set_parent(&info, &parent);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0,
		     "%s", error);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0,
		     "decode: %s", error);
	cr_assert(bundle_name_parent(&bundle->info, &got));
	cr_assert_eq(bundle_name_cmp(&got, &parent), 0);
	cr_assert(got.is_diff);
	cr_assert_eq(memcmp(got.diff_id, parent.diff_id, BUNDLE_ID_SIZE), 0);
	/* the base's own name is not touched by it */
	bundle_name_from_info(&bundle->info, &got);
	cr_assert_eq(memcmp(got.base_id, info.id, BUNDLE_ID_SIZE), 0);
	cr_assert_not(got.is_diff);
	bundle_free(&bundle);
	free(data);

	/* a parent with a zero id is refused (it would not read back) */
	memset(parent.diff_id, 0, BUNDLE_ID_SIZE);
	bundle_info_set_parent(&info, &parent);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error),
		     -1);
	cr_assert_not_null(strstr(error, "zero id"), "%s", error);

	/* without one: none, and the header is version 2 (what readers of
	   version 2 read) */
	info.has_parent = false;
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0);
	cr_assert_eq(data[8] | (data[9] << 8), 2);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0);
	cr_assert_not(bundle_name_parent(&bundle->info, &got));
	bundle_free(&bundle);
	free(data);
	bundle_tree_free(&tree);
}
