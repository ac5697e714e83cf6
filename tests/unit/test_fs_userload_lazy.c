/* test_fs_userload_lazy.c: a load with lazy directories (userload_load_lazy())
 * writes a big cur/ as a table: nothing of it on disk, every stub counted
 * and its object referenced (not put back); a mail
 * the rescan puts back into it lands on disk beside the table, and one
 * whose name the table already has is not put back (the name is taken);
 * a scan with the table gives every mail. */
#include "test_fs_userload.h"
#include "lazydir.h"

#include <dirent.h>

TestSuite(fs_userload_lazy, .init = ul_init, .fini = ul_fini);

#define T0 1600000000
#define STUBS 300

static void stub_name(char *buf, size_t size, unsigned int i)
{
	snprintf(buf, size, "%u.M%u:2,S", T0 + i, i);
}

static void oid(char *buf, size_t size, unsigned int i)
{
	snprintf(buf, size, "%032x", i + 1);
}

static unsigned int on_disk(const char *path)
{
	int fd = openat(ul_dst_fd, path, O_RDONLY | O_DIRECTORY);
	DIR *dir = fdopendir(fd);
	struct dirent *d;
	unsigned int n = 0;

	cr_assert_not_null(dir);
	while ((d = readdir(dir)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

Test(fs_userload_lazy, big_cur_is_a_table_put_backs_beside_it)
{
	struct userload_stats stats;
	struct lazydir *lz;
	const char *error = "";
	char name[64], id[40], path[128], key[OBJSTORE_KEY_MAX + 1];
	int fd;

	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_mkdir(ul_src_fd, "Maildir/cur", NULL);
	ul_mkdir(ul_src_fd, "Maildir/new", NULL);
	ul_mkdir(ul_src_fd, "Maildir/tmp", NULL);
	for (unsigned int i = 0; i < STUBS; i++) {
		stub_name(name, sizeof(name), i);
		oid(id, sizeof(id), i);
		snprintf(path, sizeof(path), "Maildir/cur/%s", name);
		ul_stub(ul_src_fd, path, GUID_INBOX, id, "mail", T0 + i);
	}
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { T0, 777 } };
	cr_assert_eq(utimensat(ul_src_fd, "Maildir/cur", ts, 0), 0);
	ul_bundle_root("", NULL);
	ul_bundle_root("Maildir", GUID_INBOX);
	/* delivered since: a new name, and one the table has (another mail
	   under a taken name) */
	oid(id, sizeof(id), 1000);
	ul_put_mail(GUID_INBOX, id, "newmail", "Maildir/cur", "new.M1:2,",
		    "1700000000");
	stub_name(name, sizeof(name), 5);
	oid(id, sizeof(id), 1001);
	ul_put_mail(GUID_INBOX, id, "taken", "Maildir/cur", name,
		    "1700000000");
	ul_setup_store(NULL);

	lz = lazydir_init(ul_tmp, &error);
	cr_assert_not_null(lz, "%s", error);
	cr_assert_eq(userload_load_lazy(ul_store, UL_USER, ul_dst_fd, NULL,
					NULL, lz, &stats, NULL, &error), 1,
		     "%s", error);
	cr_assert_eq(stats.lazy_dirs, 1);
	cr_assert_eq(stats.lazy_stubs, STUBS);
	cr_assert_eq(stats.stubs, STUBS + 1);
	cr_assert_eq(stats.mails_put_back, 1);
	cr_assert_eq(stats.mails_skipped, 1);
	ul_assert_log("exists");
	/* on disk: the put-back only */
	cr_assert_eq(on_disk("Maildir/cur"), 1);
	ul_assert_stub("Maildir/cur/new.M1:2,", GUID_INBOX,
		       "000000000000000000000000000003e9", 7, 1700000000);
	/* the taken name is the table's mail */
	fd = openat(ul_dst_fd, "Maildir/cur", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert(lazydir_is_lazy(fd));
	cr_assert_eq(lazydir_lookup(lz, fd, name), 1);
	close(fd);
	oid(id, sizeof(id), 5);
	snprintf(path, sizeof(path), "Maildir/cur/%s", name);
	ul_mail_key(key, sizeof(key), GUID_INBOX, id);
	ul_assert_stub(path, GUID_INBOX, id, 4, T0 + 5);
	/* the scan has every mail */
	struct bundle_scan_prev prev = {
		.lazy = lazydir_foreach, .lazy_context = lz,
	};
	struct bundle_tree *tree;
	int mfd = openat(ul_dst_fd, "Maildir", O_RDONLY | O_DIRECTORY);

	cr_assert_eq(bundle_tree_scan_incremental(mfd, NULL, NULL, &prev,
						  &tree, &error), 0,
		     "%s", error);
	close(mfd);
	unsigned int stubs = 0;
	for (size_t i = 0; i < tree->count; i++)
		stubs += tree->entries[i].type == BUNDLE_ENTRY_STUB;
	cr_assert_eq(stubs, STUBS + 1);
	const struct bundle_entry *e = bundle_tree_find(tree, path + 8);
	cr_assert_not_null(e);
	cr_assert_str_eq(e->key, key);
	bundle_tree_free(&tree);
	lazydir_deinit(&lz);
}
