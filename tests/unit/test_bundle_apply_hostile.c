/* test_bundle_apply_hostile.c: diffs that decode fine but must not apply:
 * deletes of missing paths, orphaned children, appends to the wrong thing,
 * entries under files; and every flipped byte of a real diff applied to its
 * base.  A refused diff leaves the base tree unchanged. */
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define KEY "b5/899/u/mailboxes/00d7d12ea08a3153175e0000dfbea952/" \
	"d88ff1001d4bf753a1b800001accfe22"
#define HDR 128
#define REC 56

static struct bundle_tree *base;
static unsigned char *base_data, *diff_data;
static size_t base_size, diff_size;

static void add(enum bundle_entry_type type, const char *path, size_t size)
{
	static unsigned char content[64] = "0123456789abcdefghij";
	struct bundle_entry e = { .path = (char *)path, .type = type,
		.mode = 0600, .size = size };
	const char *error;

	if (type == BUNDLE_ENTRY_FILE || type == BUNDLE_ENTRY_SYMLINK)
		e.data = content;
	if (type == BUNDLE_ENTRY_STUB)
		e.key = KEY;
	cr_assert_eq(bundle_tree_add(base, &e, &error), 0, "%s", error);
}

static void init(void)
{
	struct bundle_info info = { .secs = 10, .usecs = 20, .id = { 1 } };
	struct bundle_info dinfo = { .secs = 11, .usecs = 0, .seq = 1,
		.id = { 2 } };
	struct bundle_tree *new_tree;
	struct bundle *bundle;
	const char *error;

	base = bundle_tree_new();
	add(BUNDLE_ENTRY_DIR, "d", 0);
	add(BUNDLE_ENTRY_FILE, "d/f", 10);
	add(BUNDLE_ENTRY_STUB, "d/s", 500);
	add(BUNDLE_ENTRY_DIR, "e", 0);
	add(BUNDLE_ENTRY_FILE, "g", 10);
	add(BUNDLE_ENTRY_SYMLINK, "k", 4);
	cr_assert_eq(bundle_encode_base(base, &info, &base_data, &base_size,
					&error), 0, "%s", error);
	/* a real diff: g grows, d/s goes away, e/n is new */
	cr_assert_eq(bundle_decode(base_data, base_size, base_size, &bundle,
				   &error), 0);
	new_tree = bundle->tree;
	struct bundle_entry *g =
		(struct bundle_entry *)bundle_tree_find(new_tree, "g");
	g->data = realloc(g->data, 15);
	memcpy(g->data + 10, "ABCDE", 5);
	g->size = 15;
	struct bundle_entry n = { .path = "e/n", .type = BUNDLE_ENTRY_STUB,
		.key = KEY, .size = 3 };
	cr_assert_eq(bundle_tree_add(new_tree, &n, &error), 0);
	struct bundle_tree *pruned = bundle_tree_new();
	for (size_t i = 0; i < new_tree->count; i++) {
		if (strcmp(new_tree->entries[i].path, "d/s") != 0)
			cr_assert_eq(bundle_tree_add(pruned,
				&new_tree->entries[i], &error), 0);
	}
	cr_assert_eq(bundle_diff(base, pruned, &dinfo, &diff_data, &diff_size,
				 &error), 0, "%s", error);
	bundle_tree_free(&pruned);
	bundle_free(&bundle);
}

static void fini(void)
{
	bundle_tree_free(&base);
	free(base_data);
	free(diff_data);
}

TestSuite(bundle_apply_hostile, .init = init, .fini = fini);

struct rec_spec {
	uint8_t kind;		/* 1 dir 2 file 3 stub 5 append 7 symlink 8 fifo */
	char path[8];
	uint64_t size, old_size;
};

struct apply_case {
	char name[40];
	struct rec_spec recs[2];
	unsigned int nrecs;
	char dels[3][8];
	unsigned int ndels;
	char expect[40];	/* "": must apply */
};

static void put(unsigned char **d, size_t *len, const void *p, size_t n)
{
	*d = realloc(*d, *len + n);
	cr_assert_not_null(*d);
	memcpy(*d + *len, p, n);
	*len += n;
}

static void le(unsigned char *p, uint64_t v, unsigned int width)
{
	for (unsigned int i = 0; i < width; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* a diff with the real diff's header (so it names the right base) and the
   case's records and deletes */
static void build(const struct apply_case *c, unsigned char **d_r,
		  size_t *len_r)
{
	unsigned char *d = NULL, digest[32], fill[32];
	size_t len = 0;
	uint64_t data_bytes = 0;

	memset(fill, 'x', sizeof(fill));
	put(&d, &len, diff_data, HDR);
	le(d + 96, c->nrecs, 4);
	le(d + 100, c->ndels, 4);
	for (unsigned int i = 0; i < c->nrecs; i++) {
		const struct rec_spec *s = &c->recs[i];
		unsigned char rec[REC] = { 0 };
		uint64_t data = s->kind == 2 || s->kind == 7 ? s->size :
			s->kind == 5 ? s->size - s->old_size : 0;

		rec[0] = s->kind;
		le(rec + 2, strlen(s->path), 2);
		le(rec + 4, s->kind == 3 ? strlen(KEY) : 0, 2);
		le(rec + 8, 0600, 4);
		le(rec + 40, s->size, 8);
		le(rec + 48, s->old_size, 8);
		put(&d, &len, rec, REC);
		put(&d, &len, s->path, strlen(s->path));
		if (s->kind == 3)
			put(&d, &len, KEY, strlen(KEY));
		cr_assert_leq(data, sizeof(fill));
		put(&d, &len, fill, data);
		data_bytes += data;
	}
	for (unsigned int i = 0; i < c->ndels; i++) {
		unsigned char l[2];

		le(l, strlen(c->dels[i]), 2);
		put(&d, &len, l, 2);
		put(&d, &len, c->dels[i], strlen(c->dels[i]));
	}
	le(d + 104, data_bytes, 8);
	SHA256(d, len, digest);
	put(&d, &len, digest, 32);
	*d_r = d;
	*len_r = len;
}

ParameterizedTestParameters(bundle_apply_hostile, table)
{
	static struct apply_case cases[] = {
		{ "valid append", { { 5, "g", 15, 10 } }, 1, { "" }, 0, "" },
		{ "valid delete", { { 0 } }, 0, { "d/f" }, 1, "" },
		{ "valid delete of a directory", { { 0 } }, 0,
		  { "d", "d/f", "d/s" }, 3, "" },
		{ "valid dir replaced by file", { { 2, "d", 1, 0 } }, 1,
		  { "d/f", "d/s" }, 2, "" },
		{ "delete not in base", { { 0 } }, 0, { "zz" }, 1,
		  "not in the base" },
		{ "delete before base paths", { { 0 } }, 0, { "a" }, 1,
		  "not in the base" },
		{ "delete keeps children", { { 0 } }, 0, { "d" }, 1,
		  "parent is not a directory" },
		{ "append to missing file", { { 5, "h", 8, 4 } }, 1, { "" }, 0,
		  "appended-to" },
		{ "append to a directory", { { 5, "e", 8, 0 } }, 1, { "" }, 0,
		  "appended-to" },
		{ "append to a stub", { { 5, "d/s", 520, 500 } }, 1, { "" },
		  0, "appended-to" },
		{ "append with wrong old size", { { 5, "g", 15, 9 } }, 1,
		  { "" }, 0, "appended-to" },
		{ "file under a file", { { 2, "g/x", 1, 0 } }, 1, { "" }, 0,
		  "parent is not a directory" },
		{ "new file in missing dir", { { 3, "q/x", 1, 0 } }, 1, { "" },
		  0, "parent is not a directory" },
		{ "dir replaced keeping children", { { 2, "d", 1, 0 } }, 1,
		  { "" }, 0, "parent is not a directory" },
		{ "valid file replaced by symlink", { { 7, "g", 4, 0 } }, 1,
		  { "" }, 0, "" },
		{ "valid new fifo", { { 8, "e/p", 0, 0 } }, 1, { "" }, 0, "" },
		{ "symlink replacing a dir keeping children",
		  { { 7, "d", 4, 0 } }, 1, { "" }, 0,
		  "parent is not a directory" },
		{ "file under a new symlink", { { 7, "h", 4, 0 },
		  { 2, "h/x", 1, 0 } }, 2, { "" }, 0,
		  "parent is not a directory" },
		{ "append to a symlink", { { 5, "k", 8, 4 } }, 1, { "" }, 0,
		  "appended-to" },
		{ "fifo under a file", { { 8, "g/p", 0, 0 } }, 1, { "" }, 0,
		  "parent is not a directory" },
	};

	return cr_make_param_array(struct apply_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct apply_case *c, bundle_apply_hostile, table)
{
	struct bundle *diff, *copy;
	struct bundle_tree *tree;
	unsigned char *d;
	size_t len;
	const char *error, *why;
	int ret;

	build(c, &d, &len);
	cr_assert_eq(bundle_decode(d, len, len, &diff, &error), 0, "%s: %s",
		     c->name, error);
	cr_assert_eq(bundle_decode(base_data, base_size, base_size, &copy,
				   &error), 0);
	tree = copy->tree;
	ret = bundle_apply_diff(tree, diff->diff, &error);
	if (c->expect[0] == '\0') {
		cr_assert_eq(ret, 0, "%s: %s", c->name, error);
		cr_assert_eq(bundle_tree_check(tree, &error), 0);
	} else {
		cr_assert_eq(ret, -1, "%s: applied", c->name);
		cr_assert_not_null(strstr(error, c->expect), "%s: '%s'",
				   c->name, error);
		cr_assert(bundle_tree_equal(tree, base, &why),
			  "%s: base changed at %s", c->name, why);
		cr_assert(tree->is_base);
	}
	bundle_free(&diff);
	bundle_free(&copy);
	free(d);
}

Test(bundle_apply_hostile, real_diff_applies)
{
	struct bundle *diff, *copy;
	const char *error;

	cr_assert_eq(bundle_decode(diff_data, diff_size, diff_size, &diff,
				   &error), 0, "%s", error);
	cr_assert_eq(bundle_decode(base_data, base_size, base_size, &copy,
				   &error), 0);
	cr_assert_eq(bundle_apply_diff(copy->tree, diff->diff, &error), 0,
		     "%s", error);
	cr_assert_null(bundle_tree_find(copy->tree, "d/s"));
	cr_assert_not_null(bundle_tree_find(copy->tree, "e/n"));
	cr_assert_eq(bundle_tree_find(copy->tree, "g")->size, 15);
	bundle_free(&diff);
	bundle_free(&copy);
}

Test(bundle_apply_hostile, every_flipped_byte_of_a_diff)
{
	unsigned char *copy = malloc(diff_size);
	struct bundle *diff, *tree_copy;
	const char *error;

	for (size_t i = 0; i < diff_size - 32; i++) {
		memcpy(copy, diff_data, diff_size);
		copy[i] ^= 0x41;
		SHA256(copy, diff_size - 32, copy + diff_size - 32);
		if (bundle_decode(copy, diff_size, diff_size, &diff,
				  &error) < 0)
			continue;
		cr_assert_eq(bundle_decode(base_data, base_size, base_size,
					   &tree_copy, &error), 0);
		if (bundle_apply_diff(tree_copy->tree, diff->diff,
				      &error) == 0)
			cr_assert_eq(bundle_tree_check(tree_copy->tree,
						       &error), 0);
		bundle_free(&tree_copy);
		bundle_free(&diff);
	}
	free(copy);
}

/* A diff with one patch record of base file g (10 bytes) growing it to
   size, with one range of len bytes 'P' at offset. */
static void build_patch(uint64_t size, uint64_t offset, uint32_t len,
			unsigned char **d_r, size_t *len_r)
{
	unsigned char *d = NULL, rec[REC] = { 0 }, range[12], digest[32];
	unsigned char fill[16];
	size_t n = 0;

	cr_assert_leq(len, sizeof(fill));
	memset(fill, 'P', sizeof(fill));
	put(&d, &n, diff_data, HDR);
	le(d + 96, 1, 4);
	le(d + 100, 0, 4);
	rec[0] = 6;
	le(rec + 2, 1, 2);
	le(rec + 8, 0600, 4);
	le(rec + 36, 1, 4);		/* one range */
	le(rec + 40, size, 8);
	le(rec + 48, 10, 8);		/* the base's g */
	put(&d, &n, rec, REC);
	put(&d, &n, "g", 1);
	le(range, offset, 8);
	le(range + 8, len, 4);
	put(&d, &n, range, sizeof(range));
	put(&d, &n, fill, len);
	le(d + 104, sizeof(range) + len, 8);
	SHA256(d, n, digest);
	put(&d, &n, digest, 32);
	*d_r = d;
	*len_r = n;
}

/* fuzz/ (fuzz_bundle_apply) found: a patch record of a few bytes could
   give its file any size up to 2^63 (the base's content zero-extended), so
   applying a tiny hostile diff allocated terabytes and the daemon aborted
   (the reproducer: 0xfffd0003e8 bytes).  A patch now carries its growth
   in its ranges; decoding refuses more. */
Test(bundle_apply_hostile, patch_cannot_grow_past_its_ranges)
{
	static const struct {
		uint64_t size, offset;
		uint32_t len;
	} bad[] = {
		{ 0xfffd0003e8ULL, 0, 4 },	/* the fuzzer's size */
		{ 1ULL << 62, 10, 4 },
		{ 15, 10, 4 },			/* 5 more bytes, 4 given */
		{ 15, 0, 4 },			/* ranges not in the tail */
	};
	struct bundle *diff, *copy;
	unsigned char *d;
	size_t len;
	const char *error;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		build_patch(bad[i].size, bad[i].offset, bad[i].len, &d, &len);
		cr_assert_eq(bundle_decode(d, len, len, &diff, &error), -1,
			     "size %llu decoded",
			     (unsigned long long)bad[i].size);
		cr_assert_not_null(strstr(error, "patch grows the file"),
				   "%s", error);
		free(d);
	}

	/* growing by exactly what the ranges hold, or shrinking, applies */
	build_patch(14, 10, 4, &d, &len);
	cr_assert_eq(bundle_decode(d, len, len, &diff, &error), 0, "%s",
		     error);
	cr_assert_eq(bundle_decode(base_data, base_size, base_size, &copy,
				   &error), 0);
	cr_assert_eq(bundle_apply_diff(copy->tree, diff->diff, &error), 0,
		     "%s", error);
	cr_assert_eq(bundle_tree_find(copy->tree, "g")->size, 14);
	cr_assert_eq(memcmp(bundle_tree_find(copy->tree, "g")->data,
			    "0123456789PPPP", 14), 0);
	bundle_free(&diff);
	bundle_free(&copy);
	free(d);
	build_patch(6, 2, 4, &d, &len);
	cr_assert_eq(bundle_decode(d, len, len, &diff, &error), 0, "%s",
		     error);
	bundle_free(&diff);
	free(d);
}
