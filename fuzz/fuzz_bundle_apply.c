/* fuzz_bundle_apply: decode a base and a diff bundle and apply the diff
 * (bundle_apply_diff()), as a load from the store does.  Input: a 4-byte
 * little-endian length of the base, the base, then the diff.  Both get
 * their SHA-256 trailer recomputed, and the diff's header is pointed at
 * the decoded base (id, time, digest) so that mutations reach the applier
 * instead of stopping at "not this base".  A result must re-encode to the
 * same tree. */
#include "fuzz_bundles.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle *base = NULL, *diff = NULL;
	unsigned char *bbuf, *dbuf;
	size_t bsize, dsize, keys = 0;
	const char *error;

	if (size < 4)
		return 0;
	bsize = (size_t)data[0] | (size_t)data[1] << 8 |
		(size_t)data[2] << 16 | (size_t)data[3] << 24;
	if (bsize > size - 4)
		return 0;
	dsize = size - 4 - bsize;
	bbuf = malloc(bsize == 0 ? 1 : bsize);
	dbuf = malloc(dsize == 0 ? 1 : dsize);
	memcpy(bbuf, data + 4, bsize);
	memcpy(dbuf, data + 4 + bsize, dsize);

	fuzz_bundle_fix_trailer(bbuf, bsize);
	if (bundle_decode(bbuf, bsize, FUZZ_BUNDLE_MAX, &base, &error) < 0 ||
	    base->info.kind != BUNDLE_KIND_BASE)
		goto out;
	if (!bundle_is_packed(dbuf, dsize) && dsize >= BUNDLE_HEADER_SIZE) {
		const struct bundle_info *bi = &base->info;

		memcpy(dbuf + HDR_BASE_ID, bi->id, BUNDLE_ID_SIZE);
		put_le32(dbuf + HDR_BASE_SECS, bi->secs);
		put_le32(dbuf + HDR_BASE_USECS, bi->usecs);
		memcpy(dbuf + HDR_BASE_DIGEST, bi->digest, BUNDLE_DIGEST_SIZE);
	}
	fuzz_bundle_fix_trailer(dbuf, dsize);
	if (bundle_decode(dbuf, dsize, FUZZ_BUNDLE_MAX, &diff, &error) < 0 ||
	    diff->info.kind != BUNDLE_KIND_DIFF)
		goto out;
	bundle_foreach_stub_key(diff, fuzz_bundle_key_cb, &keys);
	if (bundle_apply_diff(base->tree, diff->diff, &error) == 0) {
		if (bundle_tree_check(base->tree, &error) < 0) {
			fprintf(stderr, "an applied diff gave an invalid "
				"tree: %s\n", error);
			abort();
		}
		fuzz_bundle_check_reencode(base->tree, &diff->info);
	}
out:
	bundle_free(&base);
	bundle_free(&diff);
	free(bbuf);
	free(dbuf);
	return 0;
}
