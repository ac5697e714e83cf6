/* pack.c: the stored form of a bundle.  What goes to the store is the
 * encoding (docs/bundle-format.md) compressed as one zstd frame that
 * records its content size: stubs repeat their key prefix and names, index files
 * compress well, and every byte of a bundle is sent at every rebase.
 * bundle_decode() takes a packed or a plain encoding (older writers, the
 * tests' hand-made bundles) and unpacks within its size limit. */
#include "bundle-private.h"

#include <stdlib.h>
#include <zstd.h>

/* fast, and most of what higher levels get on bundles */
#define PACK_LEVEL 3

static const unsigned char zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

bool bundle_is_packed(const unsigned char *data, size_t size)
{
	return size >= sizeof(zstd_magic) &&
		memcmp(data, zstd_magic, sizeof(zstd_magic)) == 0;
}

void bundle_pack(unsigned char **data, size_t *size)
{
	size_t bound = ZSTD_compressBound(*size), packed_size;
	unsigned char *packed = bundle_xmalloc(bound);

	packed_size = ZSTD_compress(packed, bound, *data, *size, PACK_LEVEL);
	if (ZSTD_isError(packed_size))
		abort();	/* only with a too small bound: a bug */
	free(*data);
	*data = packed;
	*size = packed_size;
}

int bundle_unpack(const unsigned char *data, size_t size, size_t max_size,
		  unsigned char **raw_r, size_t *raw_size_r,
		  const char **error_r)
{
	unsigned long long content = ZSTD_getFrameContentSize(data, size);
	size_t frame = ZSTD_findFrameCompressedSize(data, size), got;
	unsigned char *raw;

	if (content == ZSTD_CONTENTSIZE_ERROR || ZSTD_isError(frame)) {
		*error_r = bundle_error("packed bundle: not a valid zstd "
					"frame");
		return -1;
	}
	if (content == ZSTD_CONTENTSIZE_UNKNOWN) {
		*error_r = bundle_error("packed bundle: no content size");
		return -1;
	}
	if (frame != size) {
		*error_r = bundle_error("packed bundle: %zu bytes after the "
					"frame", size - frame);
		return -1;
	}
	if (content > max_size) {
		*error_r = bundle_error("packed bundle unpacks to %llu bytes, "
					"above the limit of %zu", content,
					max_size);
		return -1;
	}
	raw = bundle_xmalloc(content == 0 ? 1 : (size_t)content);
	got = ZSTD_decompress(raw, (size_t)content, data, size);
	if (ZSTD_isError(got) || got != content) {
		*error_r = bundle_error("packed bundle: %s",
					ZSTD_isError(got) ?
					ZSTD_getErrorName(got) :
					"shorter than its content size");
		free(raw);
		return -1;
	}
	*raw_r = raw;
	*raw_size_r = got;
	return 0;
}
