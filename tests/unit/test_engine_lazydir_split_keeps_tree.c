/* test_engine_lazydir_split_keeps_tree.c: a load's split of a big maildir
 * directory (lazydir_split()) copies its stubs into the table's tree and
 * leaves the loaded tree whole, so that the load keeps that tree as the
 * chain it hands to the uploader without a copy of every stub (the copy
 * was a tenth of a 20,000-mail cold load); what is written to disk is the
 * rest: the tree's own other entries, not copies.  A hard-linked stub and
 * a deeper path stay in the rest. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_split_keeps_tree, .init = lz_init, .fini = lz_fini);

Test(engine_lazydir_split_keeps_tree, tree_whole_rest_shares_entries)
{
	struct bundle_tree *tree = lz_tree(LZ_STUBS), *before, *rest;
	struct lazydir_split *splits;
	struct bundle_entry e = { .type = BUNDLE_ENTRY_DIR, .mode = 0700 };
	const char *error, *why;
	size_t count;

	/* a directory below cur/ (not a candidate, nor its content) */
	e.path = "Maildir/cur/x";
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	e.path = "Maildir/cur/x/deep";
	e.type = BUNDLE_ENTRY_STUB;
	e.key = LZ_KEY_PREFIX "ffffffffffffffffffffffffffffffff";
	e.mode = 0600;
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	/* two hard-linked stubs (not candidates) */
	e.link_id = 1;
	e.path = "Maildir/cur/y1";
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	e.path = "Maildir/cur/y2";
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	tree->is_base = true;
	tree->checked = true;
	before = bundle_tree_copy(tree);

	lazydir_split(tree, LAZYDIR_THRESHOLD, &splits, &count, &rest);
	cr_assert_eq(count, 1);
	cr_assert_str_eq(splits[0].path, "Maildir/cur");
	cr_assert_eq(splits[0].tree->count, LZ_STUBS);
	/* the tree is as loaded: every entry, is_base */
	cr_assert(bundle_tree_equal(tree, before, &why), "changed: %s", why);
	cr_assert(tree->is_base);
	cr_assert_eq(tree->count, before->count);
	for (size_t i = 0; i < tree->count; i++)
		cr_assert_str_eq(tree->entries[i].path,
				 before->entries[i].path);
	/* the table's entries are copies named by their names */
	for (size_t i = 0; i < splits[0].tree->count; i++) {
		const struct bundle_entry *t = &splits[0].tree->entries[i];
		char path[512];

		cr_assert_null(strchr(t->path, '/'));
		snprintf(path, sizeof(path), "Maildir/cur/%s", t->path);
		const struct bundle_entry *o = bundle_tree_find(tree, path);

		cr_assert_not_null(o, "%s", path);
		cr_assert_str_eq(t->key, o->key);
		cr_assert_neq(t->key, o->key);	/* not shared */
		cr_assert_eq(t->size, o->size);
		cr_assert_eq(t->mtime_sec, o->mtime_sec);
	}
	/* the rest: the tree's own entries minus the table's */
	cr_assert_eq(rest->count, tree->count - LZ_STUBS);
	cr_assert_not(rest->is_base);
	for (size_t i = 0; i < rest->count; i++) {
		const struct bundle_entry *r = &rest->entries[i];
		const struct bundle_entry *o = bundle_tree_find(tree, r->path);

		cr_assert_eq(r->path, o->path, "%s is a copy", r->path);
		cr_assert_null(bundle_tree_find(splits[0].tree, r->path));
	}
	cr_assert_not_null(bundle_tree_find(rest, "Maildir/cur/x/deep"));
	cr_assert_not_null(bundle_tree_find(rest, "Maildir/cur/y1"));
	cr_assert_not_null(bundle_tree_find(rest, "Maildir/cur/y2"));
	cr_assert_eq(bundle_tree_check(rest, &error), 0, "%s", error);
	lazydir_splits_free(&splits, count);
	lazydir_split_rest_free(&rest);
	cr_assert_null(rest);
	bundle_tree_free(&tree);	/* nothing freed twice (ASan) */
	bundle_tree_free(&before);
}

Test(engine_lazydir_split_keeps_tree, nothing_split_no_rest)
{
	struct bundle_tree *tree = lz_tree(LAZYDIR_THRESHOLD), *rest;
	struct lazydir_split *splits;
	size_t count;

	lazydir_split(tree, LAZYDIR_THRESHOLD, &splits, &count, &rest);
	cr_assert_eq(count, 0);
	cr_assert_null(rest);
	cr_assert_eq(tree->count, 4 + LAZYDIR_THRESHOLD + LZ_NEW);
	lazydir_split_rest_free(&rest);
	bundle_tree_free(&tree);
}
