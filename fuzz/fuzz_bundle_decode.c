/* fuzz_bundle_decode: bundle_decode() of a bundle read back from the store
 * (plain, or zstd-packed as writers store them), then what the engine does
 * with a decoded one: its stub keys (deferred deletes, gccheck), a base's
 * disk estimate (metacache accounting), and a base re-encoded must decode
 * to the same tree.  A plain input's SHA-256 trailer is recomputed first
 * (fuzz_bundles.h); packed inputs are taken as they are. */
#include "fuzz_bundles.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf = malloc(size == 0 ? 1 : size);
	struct bundle *bundle;
	const char *error;
	size_t keys = 0;

	memcpy(buf, data, size);
	fuzz_bundle_fix_trailer(buf, size);
	if (bundle_decode(buf, size, FUZZ_BUNDLE_MAX, &bundle, &error) < 0) {
		free(buf);
		return 0;
	}
	bundle_foreach_stub_key(bundle, fuzz_bundle_key_cb, &keys);
	if (bundle->info.kind == BUNDLE_KIND_BASE) {
		(void)bundle_tree_disk_bytes(bundle->tree, 4096);
		fuzz_bundle_check_reencode(bundle->tree, &bundle->info);
	} else {
		(void)bundle_diff_entry_count(bundle->diff);
		(void)bundle_diff_delete_count(bundle->diff);
	}
	bundle_free(&bundle);
	free(buf);
	return 0;
}
