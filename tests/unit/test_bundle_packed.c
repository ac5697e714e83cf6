/* test_bundle_packed.c: the stored form of bundles (bundles/pack.c): a
 * packed (zstd) base or diff decodes to what was encoded and is several
 * times smaller for a folder's stubs; plain encodings still decode; a
 * hostile packed bundle (damaged, truncated, trailing bytes, no content
 * size, unpacking past the limit, packed twice) is refused with a clear
 * error. */
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define GUID "0123456789abcdef0123456789abcdef"

/* a folder tree: cur/ with n stubs named like maildir files */
static struct bundle_tree *folder_tree(unsigned int n)
{
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_entry dir = { .path = "cur", .type = BUNDLE_ENTRY_DIR,
				    .mode = 0700 };
	const char *error;
	char path[128], key[200];

	cr_assert_eq(bundle_tree_add(tree, &dir, &error), 0, "%s", error);
	for (unsigned int i = 0; i < n; i++) {
		struct bundle_entry e = { .path = path,
			.type = BUNDLE_ENTRY_STUB, .mode = 0600,
			.mtime_sec = 1765000000 + i, .key = key,
			.size = 2000 + i % 2000 };

		snprintf(path, sizeof(path), "cur/%u.M%uP%u.mx1,S=%u,W=%u:2,S",
			 1765000000 + i, i * 7919 % 1000000, 4000 + i % 97,
			 2000 + i % 2000, 2040 + i % 2000);
		snprintf(key, sizeof(key), "b5/899/user1@example.com/mailboxes/"
			 GUID "/%08x%05x%019u", 1765000000 + i, i % 1000000,
			 i * 2654435761u);
		cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s",
			     error);
	}
	return tree;
}

Test(bundle_packed, packed_base_and_diff_decode_and_are_smaller)
{
	struct bundle_tree *tree = folder_tree(2000), *more;
	struct bundle_info info = { .secs = 1765000000, .usecs = 1 };
	unsigned char *data, *diff;
	size_t size, raw_size, diff_size;
	struct bundle *b, *d;
	const char *error, *why;

	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0,
		     "%s", error);
	raw_size = size;
	bundle_pack(&data, &size);
	cr_assert_lt(size * 3, raw_size, "packed %zu of %zu bytes", size,
		     raw_size);
	cr_assert_eq(bundle_decode(data, size, 1 << 24, &b, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(b->tree, tree, &why), "%s", why);
	cr_assert_eq(memcmp(b->info.digest, tree->base_info.digest,
			    BUNDLE_DIGEST_SIZE), 0,
		     "the digest is the plain encoding's");

	/* a packed diff applies to the base it was made against */
	more = folder_tree(2010);
	info.seq = 1;
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_diff(tree, more, &info, &diff, &diff_size,
				 &error), 0, "%s", error);
	bundle_pack(&diff, &diff_size);
	cr_assert_eq(bundle_decode(diff, diff_size, 1 << 24, &d, &error), 0,
		     "%s", error);
	cr_assert_eq(bundle_apply_diff(b->tree, d->diff, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(b->tree, more, &why), "%s", why);
	bundle_free(&d);
	bundle_free(&b);
	free(diff);
	free(data);
	bundle_tree_free(&more);
	bundle_tree_free(&tree);
}

enum damage {
	DAMAGE_NONE,
	DAMAGE_TRUNCATE,	/* the last 5 bytes cut */
	DAMAGE_TRAILING,	/* bytes after the frame */
	DAMAGE_FLIP,		/* one byte in the middle flipped */
	DAMAGE_NO_SIZE,		/* a frame that does not say its size */
	DAMAGE_BOMB,		/* unpacks past the limit */
	DAMAGE_TWICE,		/* packed, then packed again */
	DAMAGE_NOT_BUNDLE,	/* a valid frame of something else */
};

struct pcase {
	char name[32];
	enum damage damage;
	char expect[48];	/* "" = decodes */
};

ParameterizedTestParameters(bundle_packed, hostile)
{
	static struct pcase cases[] = {
		{ "intact", DAMAGE_NONE, "" },
		{ "truncated", DAMAGE_TRUNCATE, "packed bundle" },
		{ "trailing bytes", DAMAGE_TRAILING, "after the frame" },
		{ "flipped byte", DAMAGE_FLIP, "" /* set below */ },
		{ "no content size", DAMAGE_NO_SIZE, "no content size" },
		{ "bomb", DAMAGE_BOMB, "above the limit" },
		{ "packed twice", DAMAGE_TWICE, "packed twice" },
		{ "not a bundle", DAMAGE_NOT_BUNDLE, "magic" },
	};

	return cr_make_param_array(struct pcase, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct pcase *c, bundle_packed, hostile)
{
	struct bundle_tree *tree = folder_tree(300);
	struct bundle_info info = { .secs = 1765000000, .usecs = 1 };
	unsigned char *data;
	size_t size, limit = 1 << 20;
	struct bundle *b = NULL;
	const char *error = "";
	int ret;

	cr_assert_eq(bundle_encode_base(tree, &info, &data, &size, &error), 0);
	switch (c->damage) {
	case DAMAGE_NONE:
	case DAMAGE_TWICE:
		bundle_pack(&data, &size);
		if (c->damage == DAMAGE_TWICE)
			bundle_pack(&data, &size);
		break;
	case DAMAGE_TRUNCATE:
		bundle_pack(&data, &size);
		size -= 5;
		break;
	case DAMAGE_TRAILING:
		bundle_pack(&data, &size);
		data = realloc(data, size + 3);
		memcpy(data + size, "xyz", 3);
		size += 3;
		break;
	case DAMAGE_FLIP:
		bundle_pack(&data, &size);
		data[size / 2] ^= 0x5a;
		break;
	case DAMAGE_NO_SIZE: {
		ZSTD_CCtx *cctx = ZSTD_createCCtx();
		ZSTD_outBuffer out = { malloc(ZSTD_compressBound(size)),
				       ZSTD_compressBound(size), 0 };
		ZSTD_inBuffer in = { data, size, 0 }, none = { NULL, 0, 0 };

		/* streamed: the size is not known when the header is made */
		cr_assert(!ZSTD_isError(ZSTD_compressStream2(cctx, &out, &in,
							     ZSTD_e_continue)));
		cr_assert_eq(ZSTD_compressStream2(cctx, &out, &none, ZSTD_e_end),
			     0);
		ZSTD_freeCCtx(cctx);
		free(data);
		data = out.dst;
		size = out.pos;
		break;
	}
	case DAMAGE_BOMB:
		free(data);
		size = 8 * limit;
		data = calloc(1, size);
		memcpy(data, "OBOXBNDL", 8);
		bundle_pack(&data, &size);
		cr_assert_lt(size, limit / 100);
		break;
	case DAMAGE_NOT_BUNDLE:
		free(data);
		size = 4000;
		data = malloc(size);
		memset(data, 'q', size);
		bundle_pack(&data, &size);
		break;
	}
	ret = bundle_decode(data, size, limit, &b, &error);
	if (c->damage == DAMAGE_FLIP) {
		/* zstd's own checks or the bundle's checksum, whichever
		   notices first: refused either way */
		cr_assert_eq(ret, -1, "a damaged bundle decoded");
	} else if (c->expect[0] == '\0') {
		cr_assert_eq(ret, 0, "%s: %s", c->name, error);
	} else {
		cr_assert_eq(ret, -1, "%s: decoded", c->name);
		cr_assert_not_null(strstr(error, c->expect),
				   "%s: error '%s' does not say '%s'", c->name,
				   error, c->expect);
	}
	bundle_free(&b);
	free(data);
	bundle_tree_free(&tree);
}
