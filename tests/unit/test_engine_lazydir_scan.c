/* test_engine_lazydir_scan.c: the upload's scan of a root with a lazy
 * directory (bundle_scan_prev.lazy = lazydir_foreach) gives the tree the
 * load had, the same as the scan after materializing it, with or without
 * stubs made by lookups in between; nothing is materialized by it. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_scan, .init = lz_init, .fini = lz_fini);

static struct bundle_tree *scan(bool lazy)
{
	struct bundle_scan_prev prev = {
		.lazy = lazy ? lazydir_foreach : NULL, .lazy_context = lz,
	};
	struct bundle_tree *tree;
	const char *error;

	cr_assert_eq(bundle_tree_scan_incremental(lz_user_fd, NULL, NULL,
						  &prev, &tree, &error), 0,
		     "%s", error);
	return tree;
}

static void assert_equal(const struct bundle_tree *a,
			 const struct bundle_tree *b)
{
	const char *why;

	cr_assert(bundle_tree_equal(a, b, &why), "trees differ: %s", why);
}

Test(engine_lazydir_scan, lazy_scan_is_the_loaded_tree)
{
	struct bundle_tree *lazy, *plain;
	int fd;

	lz_load(LZ_STUBS);
	lazy = scan(true);
	assert_equal(lazy, lz_orig);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 0);
	/* without the hook the stubs are missing: the test tells */
	plain = scan(false);
	cr_assert_eq(plain->count, lz_orig->count - LZ_STUBS);
	bundle_tree_free(&plain);

	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, "1600000100.M100P1.host:2,S"), 1);
	bundle_tree_free(&lazy);
	lazy = scan(true);
	assert_equal(lazy, lz_orig);

	cr_assert_eq(lazydir_expand(lz, fd), 1);
	close(fd);
	plain = scan(false);
	assert_equal(plain, lz_orig);
	assert_equal(plain, lazy);
	bundle_tree_free(&plain);
	bundle_tree_free(&lazy);
}

Test(engine_lazydir_scan, unreadable_table_fails_the_scan)
{
	struct bundle_scan_prev prev = { .lazy = lazydir_foreach };
	struct bundle_tree *tree;
	const char *error;
	char path[4300];

	lz_load(LZ_STUBS);
	lz_table_path(path, sizeof(path));
	cr_assert_eq(truncate(path, 100), 0);
	lz_restart(NULL, NULL);
	prev.lazy_context = lz;
	/* (restart discarded nothing: no callback; the table is bad) */
	cr_assert_eq(bundle_tree_scan_incremental(lz_user_fd, NULL, NULL,
						  &prev, &tree, &error), -1);
}
