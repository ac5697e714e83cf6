/* test_bundle_diff.c: diff bundles: append-only changes send only the tail,
 * content changes, deletes, renames, hard link changes, cumulative diffs,
 * and refusing a diff for another base. */
#include "helper-objstore.h"
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_A "b5/899/u/mailboxes/00d7d12ea08a3153175e0000dfbea952/" \
	"d88ff1001d4bf753a1b800001accfe22"
#define KEY_B "b5/899/u/mailboxes/00d7d12ea08a3153175e0000dfbea952/" \
	"c96d802b5d4df75307bb00001accfe22"
#define CACHE_SIZE (1024 * 1024)

static struct bundle_tree *base;	/* decoded from its base bundle */
static unsigned char *base_data;
static size_t base_size;

static void add(struct bundle_tree *tree, enum bundle_entry_type type,
		const char *path, size_t size, unsigned int seed,
		const char *key, uint32_t link_id)
{
	struct bundle_entry e = {
		.path = (char *)path, .type = type, .mode = 0600,
		.mtime_sec = 1400000000, .size = size, .key = (char *)key,
		.link_id = link_id,
	};
	const char *error;

	if (type == BUNDLE_ENTRY_FILE && size > 0) {
		e.data = malloc(size);
		objtest_random_bytes(e.data, size, seed);
	}
	if (type == BUNDLE_ENTRY_DIR)
		e.mode = 0700;
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	free(e.data);
}

static struct bundle_tree *clone(const struct bundle_tree *tree)
{
	struct bundle_tree *copy = bundle_tree_new();
	const char *error;

	for (size_t i = 0; i < tree->count; i++)
		cr_assert_eq(bundle_tree_add(copy, &tree->entries[i], &error),
			     0);
	return copy;
}

static struct bundle_entry *entry(struct bundle_tree *tree, const char *path)
{
	struct bundle_entry *e = (struct bundle_entry *)
		bundle_tree_find(tree, path);

	cr_assert_not_null(e, "%s missing", path);
	return e;
}

static void append(struct bundle_tree *tree, const char *path, size_t n)
{
	struct bundle_entry *e = entry(tree, path);

	e->data = realloc(e->data, e->size + n);
	objtest_random_bytes(e->data + e->size, n, 99);
	e->size += n;
}

static void init(void)
{
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_info info = { .secs = 1000, .usecs = 5 };
	struct bundle *bundle;
	const char *error;

	add(tree, BUNDLE_ENTRY_FILE, "dovecot.index", 4096, 1, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "dovecot.index.cache", CACHE_SIZE, 2,
	    NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "dovecot.index.log", 20000, 3, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "dovecot-uidlist", 100, 4, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "old.file", 10, 5, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "f", 10, 6, NULL, 7);
	add(tree, BUNDLE_ENTRY_FILE, "g", 10, 6, NULL, 7);
	add(tree, BUNDLE_ENTRY_DIR, "cur", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_STUB, "cur/a", 1234, 0, KEY_A, 0);
	add(tree, BUNDLE_ENTRY_STUB, "cur/b", 99, 0, KEY_B, 0);
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &base_data, &base_size,
					&error), 0, "%s", error);
	cr_assert_eq(bundle_decode(base_data, base_size, 1 << 30, &bundle,
				   &error), 0, "%s", error);
	base = bundle->tree;
	bundle->tree = NULL;
	bundle_free(&bundle);
	bundle_tree_free(&tree);
}

static void fini(void)
{
	bundle_tree_free(&base);
	free(base_data);
}

TestSuite(bundle_diff, .init = init, .fini = fini);

/* diff base -> new_tree, decode it, apply it to a copy of the base bundle
   and check the result equals new_tree; returns the diff's size */
static size_t diff_roundtrip(struct bundle_tree *new_tree, uint32_t seq,
			     size_t *records_r, size_t *deletes_r)
{
	struct bundle_info info = { .secs = 2000, .usecs = 7, .seq = seq,
				    .mails_secs = 1400 + seq,
				    .mails_usecs = 5 };
	struct bundle *diff, *copy;
	unsigned char *data;
	size_t size;
	const char *error, *why;

	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_diff(base, new_tree, &info, &data, &size, &error),
		     0, "%s", error);
	cr_assert_eq(bundle_decode(data, size, 1 << 30, &diff, &error), 0,
		     "%s", error);
	cr_assert_eq(diff->info.kind, BUNDLE_KIND_DIFF);
	cr_assert_eq(diff->info.seq, seq);
	cr_assert_eq(diff->info.mails_secs, 1400 + seq);
	cr_assert_eq(diff->info.mails_usecs, 5);
	cr_assert_eq(memcmp(diff->info.base_id, base->base_info.id,
			    BUNDLE_ID_SIZE), 0);
	cr_assert_eq(bundle_decode(base_data, base_size, 1 << 30, &copy,
				   &error), 0);
	cr_assert_eq(bundle_apply_diff(copy->tree, diff->diff, &error), 0,
		     "%s", error);
	cr_assert(!copy->tree->is_base);
	cr_assert(bundle_tree_equal(copy->tree, new_tree, &why),
		  "differs at %s", why);
	*records_r = bundle_diff_entry_count(diff->diff);
	*deletes_r = bundle_diff_delete_count(diff->diff);
	bundle_free(&diff);
	bundle_free(&copy);
	free(data);
	return size;
}

Test(bundle_diff, unchanged_tree_gives_empty_diff)
{
	struct bundle_tree *new_tree = clone(base);
	size_t recs, dels;

	cr_assert_eq(diff_roundtrip(new_tree, 1, &recs, &dels), 128 + 32);
	cr_assert_eq(recs, 0);
	cr_assert_eq(dels, 0);
	bundle_tree_free(&new_tree);
}

Test(bundle_diff, appended_files_send_only_the_tail)
{
	struct bundle_tree *new_tree = clone(base);
	size_t size, recs, dels;

	append(new_tree, "dovecot.index.cache", 500);
	append(new_tree, "dovecot.index.log", 100);
	size = diff_roundtrip(new_tree, 1, &recs, &dels);
	cr_assert_eq(recs, 2);
	cr_assert_eq(dels, 0);
	/* header + 2 records + paths + 600 bytes of tail + trailer */
	cr_assert_eq(size, 128 + 2 * 56 + strlen("dovecot.index.cache") +
		     strlen("dovecot.index.log") + 600 + 32);
	fprintf(stderr, "base bundle with a 1 MB dovecot.index.cache: %zu "
		"bytes; diff after appending 500+100 bytes: %zu bytes\n",
		base_size, size);
	bundle_tree_free(&new_tree);
}

Test(bundle_diff, changes_deletes_renames_and_new_entries)
{
	struct bundle_tree *new_tree = clone(base);
	struct bundle_entry moved, *e;
	const char *error;
	size_t recs, dels;

	/* rewritten in place (not an append) */
	e = entry(new_tree, "dovecot.index");
	e->data[100] ^= 0xff;
	/* rotated log: smaller */
	entry(new_tree, "dovecot.index.log")->size = 50;
	entry(new_tree, "dovecot-uidlist")->mode = 0640;
	entry(new_tree, "cur")->mtime_sec++;
	/* rename cur/a -> cur/c (a flag change) */
	moved = *entry(new_tree, "cur/a");
	moved.path = "cur/c";
	cr_assert_eq(bundle_tree_add(new_tree, &moved, &error), 0);
	add(new_tree, BUNDLE_ENTRY_DIR, "new", 0, 0, NULL, 0);
	add(new_tree, BUNDLE_ENTRY_STUB, "new/x", 5, 0, KEY_A, 0);
	struct bundle_tree *pruned = bundle_tree_new();
	for (size_t i = 0; i < new_tree->count; i++) {
		const char *p = new_tree->entries[i].path;

		if (strcmp(p, "cur/a") != 0 && strcmp(p, "old.file") != 0)
			cr_assert_eq(bundle_tree_add(pruned,
						     &new_tree->entries[i],
						     &error), 0);
	}
	diff_roundtrip(pruned, 1, &recs, &dels);
	cr_assert_eq(dels, 2, "cur/a and old.file");
	cr_assert_eq(recs, 7);
	bundle_tree_free(&new_tree);
	bundle_tree_free(&pruned);
}

/* a rewritten file (dovecot.index: a header and a few records changed,
   records appended) sends the changed blocks and the new tail, not the
   file; a file rewritten through and through is sent whole */
Test(bundle_diff, rewritten_files_send_the_changed_blocks)
{
	struct bundle_tree *new_tree = clone(base);
	struct bundle_entry *e;
	size_t size, recs, dels, cache_size = CACHE_SIZE;

	e = entry(new_tree, "dovecot.index.cache");
	e->data[0] ^= 1;			/* a header field */
	e->data[300000] ^= 0x80;		/* a record's flags */
	memset(e->data + 700000, 0, 200);	/* a few records */
	append(new_tree, "dovecot.index.cache", 3000);
	/* the log: rewritten whole (rotated) */
	e = entry(new_tree, "dovecot.index.log");
	objtest_random_bytes(e->data, e->size, 77);
	size = diff_roundtrip(new_tree, 1, &recs, &dels);
	cr_assert_eq(recs, 2);
	/* the log whole (20,000 bytes); the cache: 3 blocks of 64, the 200
	   bytes over at most 5 blocks, 3000 bytes of tail, range headers */
	cr_assert_lt(size, 20000 + 3 * 64 + 5 * 64 + 3000 + 10 * 12 + 600,
		     "diff of %zu bytes", size);
	cr_assert_gt(size, 20000 + 3000);
	fprintf(stderr, "a %zu-byte file with 4 changes and 3000 bytes "
		"appended, and a 20000-byte file rewritten: a diff of %zu "
		"bytes\n", cache_size, size);

	/* shorter than its base, with a change: a patch on the kept part */
	bundle_tree_free(&new_tree);
	new_tree = clone(base);
	e = entry(new_tree, "dovecot.index.cache");
	e->size = CACHE_SIZE / 2;
	e->data[1000] ^= 1;
	size = diff_roundtrip(new_tree, 1, &recs, &dels);
	cr_assert_eq(recs, 1);
	cr_assert_lt(size, 1000, "diff of %zu bytes", size);
	bundle_tree_free(&new_tree);
}

Test(bundle_diff, hard_link_changes)
{
	struct bundle_tree *new_tree = clone(base);
	size_t recs, dels;

	/* a new name linked to the existing cur/b (a hard-link mail copy) */
	add(new_tree, BUNDLE_ENTRY_STUB, "cur/b2", 99, 0, KEY_B, 0);
	entry(new_tree, "cur/b")->link_id = 50;
	entry(new_tree, "cur/b2")->link_id = 50;
	/* g stops being a link of f (same content, own inode) */
	entry(new_tree, "g")->link_id = 0;
	diff_roundtrip(new_tree, 1, &recs, &dels);
	cr_assert_eq(recs, 4, "cur/b, cur/b2, f, g");
	cr_assert_eq(dels, 0);
	bundle_tree_free(&new_tree);
}

Test(bundle_diff, later_diff_holds_all_changes_since_the_base)
{
	struct bundle_tree *new_tree = clone(base);
	size_t recs, dels;

	append(new_tree, "dovecot.index.cache", 10);
	diff_roundtrip(new_tree, 1, &recs, &dels);
	append(new_tree, "dovecot.index.cache", 20);
	entry(new_tree, "dovecot-uidlist")->mtime_sec = 1;
	diff_roundtrip(new_tree, 2, &recs, &dels);
	cr_assert_eq(recs, 2);
	bundle_tree_free(&new_tree);
}

/* a diff appending to dovecot.index.cache, or (patch) changing a byte of
   it too */
static void make_diff_of(struct bundle **diff_r, bool patch)
{
	struct bundle_info info = { .secs = 3, .usecs = 4, .seq = 1 };
	struct bundle_tree *new_tree = clone(base);
	unsigned char *data;
	size_t size;
	const char *error;

	append(new_tree, "dovecot.index.cache", 500);
	if (patch)
		entry(new_tree, "dovecot.index.cache")->data[5] ^= 1;
	cr_assert_eq(bundle_diff(base, new_tree, &info, &data, &size, &error),
		     0);
	cr_assert_eq(bundle_decode(data, size, size, diff_r, &error), 0);
	free(data);
	bundle_tree_free(&new_tree);
}

static void make_diff(struct bundle **diff_r)
{
	make_diff_of(diff_r, false);
}

Test(bundle_diff, diff_for_another_base_is_refused)
{
	struct bundle_info info = base->base_info;
	struct bundle_tree *other = clone(base);
	struct bundle *diff;
	unsigned char *data;
	size_t size;
	const char *error;

	make_diff(&diff);
	/* same tree, another id */
	info.id[0] ^= 1;
	cr_assert_eq(bundle_encode_base(other, &info, &data, &size, &error), 0);
	free(data);
	cr_assert_eq(bundle_apply_diff(other, diff->diff, &error), -1);
	cr_assert_not_null(strstr(error, "does not apply"), "%s", error);
	/* same id and time, other content */
	info.id[0] ^= 1;
	entry(other, "dovecot.index")->data[0] ^= 1;
	cr_assert_eq(bundle_encode_base(other, &info, &data, &size, &error), 0);
	free(data);
	cr_assert_eq(bundle_apply_diff(other, diff->diff, &error), -1);
	/* not a stored base at all */
	other->is_base = false;
	cr_assert_eq(bundle_apply_diff(other, diff->diff, &error), -1);
	bundle_tree_free(&other);
	bundle_free(&diff);
}

ParameterizedTestParameters(bundle_diff, change_to_a_file_of_another_size_is_refused)
{
	static bool patch[] = { false, true };

	return cr_make_param_array(bool, patch, 2);
}

/* an append or a patch record for a base file of another size */
ParameterizedTest(bool *patch, bundle_diff,
		  change_to_a_file_of_another_size_is_refused)
{
	struct bundle *diff, *copy;
	const char *error, *why;
	struct bundle_tree *before;

	make_diff_of(&diff, *patch);
	cr_assert_eq(bundle_decode(base_data, base_size, base_size, &copy,
				   &error), 0);
	/* a base tree that claims to be the base but whose cache differs */
	entry(copy->tree, "dovecot.index.cache")->size -= 1;
	before = clone(copy->tree);
	cr_assert_eq(bundle_apply_diff(copy->tree, diff->diff, &error), -1);
	cr_assert_not_null(strstr(error, *patch ? "patched" : "appended-to"),
			   "%s", error);
	cr_assert(copy->tree->is_base, "tree unchanged on failure");
	cr_assert(bundle_tree_equal(copy->tree, before, &why), "%s", why);
	bundle_tree_free(&before);
	bundle_free(&copy);
	bundle_free(&diff);
}

Test(bundle_diff, invalid_arguments)
{
	struct bundle_info info = { .secs = 3, .usecs = 4, .seq = 0 };
	struct bundle_tree *not_base = clone(base);
	unsigned char *data;
	size_t size;
	const char *error;

	cr_assert_eq(bundle_diff(base, not_base, &info, &data, &size, &error),
		     -1, "seq 0");
	info.seq = 1;
	cr_assert_eq(bundle_diff(not_base, base, &info, &data, &size, &error),
		     -1, "base not stored");
	bundle_tree_free(&not_base);
}
