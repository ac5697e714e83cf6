/* test_engine_lazydir_hostile.c: a lazy table that cannot be trusted
 * (truncated, entries that are no stubs of the directory, a mark naming
 * no table) is a clear error, never a directory silently emptied: at
 * mount its user's tree is given to be discarded (loaded again from the
 * store) and its tables removed; in use, the lookup fails with EIO. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_hostile, .init = lz_init, .fini = lz_fini);

static char discarded[256];

static void discard(const char *user, void *context)
{
	(void)context;
	snprintf(discarded, sizeof(discarded), "%s", user);
}

/* replace the table's bytes with tree's encoding */
static void table_replace(struct bundle_tree *tree)
{
	struct bundle_info info = { .secs = 1, .id = { 1 } };
	unsigned char *data;
	const char *error;
	char path[4300];
	size_t size;
	FILE *f;

	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error),
		     0, "%s", error);
	lz_table_path(path, sizeof(path));
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, size, f), size);
	fclose(f);
	free(data);
}

static void assert_discarded_and_eio(void)
{
	int fd;

	discarded[0] = '\0';
	lz_restart(discard, NULL);
	cr_assert_str_eq(discarded, LZ_USER);
	cr_assert_eq(lz_table_count(), 0);
	cr_assert(strstr(lz_log, "is discarded") != NULL, "log: %s", lz_log);
	/* (the test's discard() left the tree: a lookup tells) */
	fd = lz_open("Maildir/cur");
	errno = 0;
	cr_assert_eq(lazydir_lookup(lz, fd, "1600000001.M1P1.host:2,S"), -1);
	cr_assert_eq(errno, EIO);
	errno = 0;
	cr_assert_eq(lazydir_expand(lz, fd), -1);
	cr_assert_eq(errno, EIO);
	close(fd);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 0);
}

Test(engine_lazydir_hostile, truncated)
{
	char path[4300];

	lz_load(LZ_STUBS);
	lz_table_path(path, sizeof(path));
	cr_assert_eq(truncate(path, 1000), 0);
	assert_discarded_and_eio();
}

Test(engine_lazydir_hostile, empty)
{
	char path[4300];

	lz_load(LZ_STUBS);
	lz_table_path(path, sizeof(path));
	cr_assert_eq(truncate(path, 0), 0);
	assert_discarded_and_eio();
}

Test(engine_lazydir_hostile, entry_below_a_subdirectory)
{
	struct bundle_tree *tree = bundle_tree_new();

	lz_load(LZ_STUBS);
	lz_add(tree, "sub", BUNDLE_ENTRY_DIR, 0);
	lz_add(tree, "sub/x", BUNDLE_ENTRY_STUB, 1);
	table_replace(tree);
	bundle_tree_free(&tree);
	assert_discarded_and_eio();
}

Test(engine_lazydir_hostile, entry_not_a_stub)
{
	struct bundle_tree *tree = bundle_tree_new();

	lz_load(LZ_STUBS);
	lz_add(tree, "a", BUNDLE_ENTRY_STUB, 1);
	lz_add(tree, "b", BUNDLE_ENTRY_DIR, 0);
	table_replace(tree);
	bundle_tree_free(&tree);
	assert_discarded_and_eio();
}

Test(engine_lazydir_hostile, mark_without_table)
{
	const char *bad = LZ_USER ".ffffffffffffffffffffffffffffffff";
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/new");
	cr_assert_eq(bundle_fd_setxattr(fd, LAZYDIR_XATTR, bad, strlen(bad),
					0), 0);
	errno = 0;
	cr_assert_eq(lazydir_lookup(lz, fd, "x"), -1);
	cr_assert_eq(errno, EIO);
	cr_assert(strstr(lz_log, "ffffffff") != NULL, "log: %s", lz_log);
	cr_assert_eq(bundle_fd_setxattr(fd, LAZYDIR_XATTR, "../../etc", 9, 0),
		     0);
	errno = 0;
	cr_assert_eq(lazydir_lookup(lz, fd, "x"), -1);
	cr_assert_eq(errno, EIO);
	close(fd);
	cr_assert_eq(lz_dir_count("Maildir/new"), LZ_NEW);
}
