/* test_bundle_special_diff.c: diffs of special files (symlinks, fifos,
 * sockets, device nodes): a changed symlink target, type changes between
 * file, symlink and nodes, a changed rdev, deletions; each diff decoded
 * and applied to its base gives the new tree, and holds only what
 * changed. */
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

static struct bundle_tree *base;	/* decoded from its base bundle */
static unsigned char *base_data;
static size_t base_size;

/* replace (or add) path in tree as an entry of type: a symlink to target,
   a file with target as content, a node with rdev */
static void put(struct bundle_tree *tree, enum bundle_entry_type type,
		const char *path, const char *target, uint64_t rdev)
{
	struct bundle_entry e = {
		.path = (char *)path, .type = type, .mode = 0640,
		.uid = 1000, .gid = 100, .mtime_sec = 1400000000,
		.mtime_nsec = 5, .rdev = rdev,
	};
	struct bundle_tree *out = bundle_tree_new();
	const char *error;

	if (type == BUNDLE_ENTRY_SYMLINK || type == BUNDLE_ENTRY_FILE) {
		e.data = (unsigned char *)target;
		e.size = strlen(target);
	}
	if (type == BUNDLE_ENTRY_SYMLINK)
		e.mode = 0777;
	for (size_t i = 0; i < tree->count; i++) {
		if (strcmp(tree->entries[i].path, path) != 0)
			cr_assert_eq(bundle_tree_add(out, &tree->entries[i],
						     &error), 0);
	}
	cr_assert_eq(bundle_tree_add(out, &e, &error), 0, "%s: %s", path,
		     error);
	/* swap the contents: callers keep their pointer */
	struct bundle_tree tmp = *tree;
	*tree = *out;
	*out = tmp;
	bundle_tree_free(&out);
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

static void init(void)
{
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_info info = { .secs = 1000, .usecs = 5 };
	struct bundle *bundle;
	const char *error;

	put(tree, BUNDLE_ENTRY_SYMLINK, ".dovecot.sieve", "sieve/one.sieve",
	    0);
	put(tree, BUNDLE_ENTRY_FILE, "f", "file content", 0);
	put(tree, BUNDLE_ENTRY_FIFO, "p", NULL, 0);
	put(tree, BUNDLE_ENTRY_SOCKET, "s", NULL, 0);
	put(tree, BUNDLE_ENTRY_CHARDEV, "c", NULL, makedev(1, 3));
	put(tree, BUNDLE_ENTRY_BLOCKDEV, "b", NULL, makedev(8, 1));
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &base_data, &base_size,
					&error), 0, "%s", error);
	cr_assert_eq(bundle_decode(base_data, base_size, 1 << 20, &bundle,
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

TestSuite(bundle_special_diff, .init = init, .fini = fini);

/* a change to the base: path becomes type (with target or rdev), or is
   deleted (type 0); expected records and deletes of the diff */
struct change_case {
	char name[48];
	char path[16];
	enum bundle_entry_type type;
	char target[32];
	unsigned int major, minor;
	size_t records, deletes;
};

ParameterizedTestParameters(bundle_special_diff, changes)
{
	static struct change_case cases[] = {
		{ "symlink target, same length", ".dovecot.sieve",
		  BUNDLE_ENTRY_SYMLINK, "sieve/two.sieve", 0, 0, 1, 0 },
		{ "symlink target, other length", ".dovecot.sieve",
		  BUNDLE_ENTRY_SYMLINK, "x.sieve", 0, 0, 1, 0 },
		{ "file becomes symlink", "f", BUNDLE_ENTRY_SYMLINK,
		  "file content", 0, 0, 1, 0 },
		{ "symlink becomes file", ".dovecot.sieve", BUNDLE_ENTRY_FILE,
		  "sieve/one.sieve", 0, 0, 1, 0 },
		{ "fifo becomes char device", "p", BUNDLE_ENTRY_CHARDEV, "",
		  4, 5, 1, 0 },
		{ "char device rdev", "c", BUNDLE_ENTRY_CHARDEV, "", 1, 5, 1,
		  0 },
		{ "char becomes block device", "c", BUNDLE_ENTRY_BLOCKDEV, "",
		  1, 3, 1, 0 },
		{ "socket becomes fifo", "s", BUNDLE_ENTRY_FIFO, "", 0, 0, 1,
		  0 },
		{ "new symlink", "n", BUNDLE_ENTRY_SYMLINK, "/abs/target", 0,
		  0, 1, 0 },
		{ "symlink deleted", ".dovecot.sieve", 0, "", 0, 0, 0, 1 },
		{ "fifo deleted", "p", 0, "", 0, 0, 0, 1 },
		{ "socket deleted", "s", 0, "", 0, 0, 0, 1 },
		{ "block device deleted", "b", 0, "", 0, 0, 0, 1 },
		{ "unchanged", "", 0, "", 0, 0, 0, 0 },
	};

	return cr_make_param_array(struct change_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

static struct bundle_tree *without(const struct bundle_tree *tree,
				   const char *path)
{
	struct bundle_tree *out = bundle_tree_new();
	const char *error;

	for (size_t i = 0; i < tree->count; i++) {
		if (strcmp(tree->entries[i].path, path) != 0)
			cr_assert_eq(bundle_tree_add(out, &tree->entries[i],
						     &error), 0);
	}
	return out;
}

ParameterizedTest(struct change_case *c, bundle_special_diff, changes)
{
	struct bundle_info info = { .secs = 2000, .usecs = 7, .seq = 1 };
	struct bundle_tree *new_tree;
	struct bundle *diff, *copy;
	unsigned char *data;
	size_t size;
	const char *error, *why;

	if (c->type != 0) {
		new_tree = clone(base);
		put(new_tree, c->type, c->path, c->target,
		    makedev(c->major, c->minor));
	} else {
		new_tree = without(base, c->path);
	}
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_diff(base, new_tree, &info, &data, &size, &error),
		     0, "%s: %s", c->name, error);
	cr_assert_eq(bundle_decode(data, size, 1 << 20, &diff, &error), 0,
		     "%s: %s", c->name, error);
	cr_assert_eq(bundle_diff_entry_count(diff->diff), c->records, "%s",
		     c->name);
	cr_assert_eq(bundle_diff_delete_count(diff->diff), c->deletes, "%s",
		     c->name);
	cr_assert_eq(bundle_decode(base_data, base_size, 1 << 20, &copy,
				   &error), 0);
	cr_assert_eq(bundle_apply_diff(copy->tree, diff->diff, &error), 0,
		     "%s: %s", c->name, error);
	cr_assert(bundle_tree_equal(copy->tree, new_tree, &why),
		  "%s: differs at %s", c->name, why);
	if (c->type == BUNDLE_ENTRY_SYMLINK) {
		const struct bundle_entry *e =
			bundle_tree_find(copy->tree, c->path);

		cr_assert_eq(e->size, strlen(c->target));
		cr_assert_eq(memcmp(e->data, c->target, e->size), 0);
	}
	if (c->type == BUNDLE_ENTRY_CHARDEV)
		cr_assert_eq(bundle_tree_find(copy->tree, c->path)->rdev,
			     makedev(c->major, c->minor));
	bundle_free(&diff);
	bundle_free(&copy);
	bundle_tree_free(&new_tree);
	free(data);
}

/* an append record never applies to a symlink, even one whose target is
   a prefix of the new file */
Test(bundle_special_diff, symlink_becoming_a_longer_file_is_sent_whole)
{
	struct bundle_info info = { .secs = 2000, .usecs = 7, .seq = 1 };
	struct bundle_tree *new_tree = clone(base);
	struct bundle *diff;
	unsigned char *data;
	size_t size;
	const char *error;

	put(new_tree, BUNDLE_ENTRY_FILE, ".dovecot.sieve",
	    "sieve/one.sieve and more", 0);
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_diff(base, new_tree, &info, &data, &size, &error),
		     0, "%s", error);
	cr_assert_eq(bundle_decode(data, size, 1 << 20, &diff, &error), 0,
		     "%s", error);
	cr_assert_eq(bundle_diff_entry_count(diff->diff), 1);
	/* the whole content travels: 24 bytes, not a 9-byte tail */
	cr_assert_not_null(memmem(data, size, "sieve/one.sieve and more", 24));
	bundle_free(&diff);
	bundle_tree_free(&new_tree);
	free(data);
}
