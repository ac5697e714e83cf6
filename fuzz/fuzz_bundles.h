/* fuzz_bundles.h: what the two bundle harnesses share: fixing up a
 * mutated bundle's SHA-256 trailer (so that mutations reach the body
 * instead of stopping at the checksum) and checking that a decoded base
 * tree encodes again to a bundle that decodes to the same tree. */
#ifndef OBOXFS_FUZZ_BUNDLES_H
#define OBOXFS_FUZZ_BUNDLES_H

#include "bundle-private.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>

/* what the harnesses accept at most (bundle_decode()'s max_size) */
#define FUZZ_BUNDLE_MAX (4U * 1024 * 1024)

/* A plain (not zstd-packed) bundle gets the trailer its bytes need. */
static inline void fuzz_bundle_fix_trailer(unsigned char *buf, size_t size)
{
	if (!bundle_is_packed(buf, size) &&
	    size >= BUNDLE_HEADER_SIZE + BUNDLE_TRAILER_SIZE)
		SHA256(buf, size - BUNDLE_TRAILER_SIZE,
		       buf + size - BUNDLE_TRAILER_SIZE);
}

/* A valid tree re-encodes as a base that decodes to the same tree: what
   the engine relies on when it uploads a tree it loaded.  Aborts (a crash
   for libFuzzer) if not. */
static inline void fuzz_bundle_check_reencode(struct bundle_tree *tree,
					      const struct bundle_info *info)
{
	struct bundle_info new_info = *info;
	struct bundle *again;
	unsigned char *data;
	size_t size;
	const char *error, *why;

	new_info.kind = BUNDLE_KIND_BASE;
	new_info.seq = 0;
	if (bundle_encode_base(tree, &new_info, &data, &size, &error) < 0) {
		fprintf(stderr, "a valid tree does not encode: %s\n", error);
		abort();
	}
	if (bundle_decode(data, size, SIZE_MAX, &again, &error) < 0) {
		fprintf(stderr, "a re-encoded tree does not decode: %s\n",
			error);
		abort();
	}
	if (!bundle_tree_equal(tree, again->tree, &why)) {
		fprintf(stderr, "a re-encoded tree differs: %s\n", why);
		abort();
	}
	bundle_free(&again);
	free(data);
}

static inline void fuzz_bundle_key_cb(const char *key, void *context)
{
	size_t *total = context;

	*total += strlen(key);
}

#endif
