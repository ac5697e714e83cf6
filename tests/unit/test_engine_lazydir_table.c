/* test_engine_lazydir_table.c: a load's big maildir directory becomes a
 * lazy table (engine/lazydir.c): nothing of it on disk, the directory
 * marked and its mtime as restored, the table read back after a restart
 * exactly as written; directories at or below the threshold are not. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_table, .init = lz_init, .fini = lz_fini);

static void collect(const struct bundle_entry *e, void *context)
{
	struct bundle_tree *tree = context;
	const char *error;

	cr_assert_eq(bundle_tree_add(tree, e, &error), 0, "%s", error);
}

Test(engine_lazydir_table, big_cur_is_lazy_small_new_is_not)
{
	cr_assert_eq(lz_load(LZ_STUBS), 1);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 0);
	cr_assert_eq(lz_dir_count("Maildir/new"), LZ_NEW);
	lz_mtime_check("Maildir/cur");
	lz_mtime_check("Maildir/new");
	int cur = lz_open("Maildir/cur"), new = lz_open("Maildir/new");
	cr_assert(lazydir_is_lazy(cur));
	cr_assert_not(lazydir_is_lazy(new));
	cr_assert(lazydir_any(lz));
	cr_assert_eq(lz_table_count(), 1);
	close(cur);
	close(new);
}

Test(engine_lazydir_table, threshold)
{
	struct bundle_tree *tree = lz_tree(LAZYDIR_THRESHOLD), *rest;
	struct lazydir_split *splits;
	size_t count;

	lazydir_split(tree, LAZYDIR_THRESHOLD, &splits, &count, &rest);
	cr_assert_eq(count, 0);
	cr_assert_null(rest);
	cr_assert_eq(tree->count, 4 + LAZYDIR_THRESHOLD + LZ_NEW);
	bundle_tree_free(&tree);
	tree = lz_tree(LAZYDIR_THRESHOLD + 1);
	lazydir_split(tree, LAZYDIR_THRESHOLD, &splits, &count, &rest);
	cr_assert_eq(count, 1);
	cr_assert_str_eq(splits[0].path, "Maildir/cur");
	cr_assert_eq(splits[0].tree->count, LAZYDIR_THRESHOLD + 1);
	cr_assert_eq(rest->count, 4 + LZ_NEW);
	cr_assert_eq(tree->count, 4 + LAZYDIR_THRESHOLD + 1 + LZ_NEW);
	lazydir_splits_free(&splits, count);
	lazydir_split_rest_free(&rest);
	bundle_tree_free(&tree);
}

Test(engine_lazydir_table, round_trip_after_restart)
{
	struct bundle_tree *got = bundle_tree_new();
	const char *error;
	int fd;

	lz_load(LZ_STUBS);
	lz_restart(NULL, NULL);
	cr_assert(lazydir_any(lz));
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_foreach(fd, collect, got, lz, &error), 1);
	cr_assert_eq(got->count, LZ_STUBS);
	for (size_t i = 0; i < got->count; i++) {
		const struct bundle_entry *e = &got->entries[i];
		char path[512];

		snprintf(path, sizeof(path), "Maildir/cur/%s", e->path);
		const struct bundle_entry *o = bundle_tree_find(lz_orig, path);

		cr_assert_not_null(o, "%s", path);
		cr_assert_str_eq(e->key, o->key);
		cr_assert_eq(e->size, o->size);
		cr_assert_eq(e->mode, o->mode);
		cr_assert_eq(e->mtime_sec, o->mtime_sec);
		cr_assert_eq(e->mtime_nsec, o->mtime_nsec);
		cr_assert_eq(e->type, BUNDLE_ENTRY_STUB);
	}
	close(fd);
	bundle_tree_free(&got);
}

Test(engine_lazydir_table, orphans_and_tmp_removed_at_start)
{
	char path[4300];
	int fd;

	lz_load(LZ_STUBS);
	snprintf(path, sizeof(path), "%s/lazy/other@example.com."
		 "0123456789abcdef0123456789abcdef", lz_cache);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/lazy/" LZ_USER "."
		 "0123456789abcdef0123456789abcdef.tmp", lz_cache);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(lz_table_count(), 3);
	lz_restart(NULL, NULL);
	cr_assert_eq(lz_table_count(), 1);
	lazydir_user_drop(lz, LZ_USER);
	cr_assert_eq(lz_table_count(), 0);
	cr_assert_not(lazydir_any(lz));
}
