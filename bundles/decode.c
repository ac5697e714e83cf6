/* decode.c: parsing and strict validation of untrusted bundles (every
 * header and record field, bounds, ordering, link ids, checksum). */
#include "bundle-private.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

struct cursor {
	const unsigned char *p, *end;
};

static const unsigned char *take(struct cursor *c, uint64_t n)
{
	const unsigned char *p = c->p;

	if (n > (uint64_t)(c->end - c->p))
		return NULL;
	c->p += n;
	return p;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

static int decode_header(const unsigned char *h, struct bundle_info *info,
			 const char **error_r)
{
	memset(info, 0, sizeof(*info));
	if (memcmp(h + HDR_MAGIC, BUNDLE_MAGIC, BUNDLE_MAGIC_SIZE) != 0) {
		*error_r = bundle_error("not a bundle (bad magic)");
		return -1;
	}
	uint16_t version = get_le16(h + HDR_VERSION);
	size_t reserved = version == 1 ? HDR_RESERVED_V1 : HDR_RESERVED;

	if (version < 1 || version > BUNDLE_FORMAT_VERSION) {
		*error_r = bundle_error("unsupported bundle version %u",
					version);
		return -1;
	}
	info->kind = (enum bundle_kind)h[HDR_KIND];
	if (info->kind != BUNDLE_KIND_BASE && info->kind != BUNDLE_KIND_DIFF) {
		*error_r = bundle_error("invalid bundle kind %u", h[HDR_KIND]);
		return -1;
	}
	if (h[HDR_FLAGS] != 0 ||
	    !all_zero(h + reserved, BUNDLE_HEADER_SIZE - reserved)) {
		*error_r = bundle_error("unknown header flags or reserved "
					"bytes set");
		return -1;
	}
	info->seq = get_le32(h + HDR_SEQ);
	info->secs = get_le32(h + HDR_SECS);
	info->usecs = get_le32(h + HDR_USECS);
	memcpy(info->id, h + HDR_ID, BUNDLE_ID_SIZE);
	info->base_secs = get_le32(h + HDR_BASE_SECS);
	info->base_usecs = get_le32(h + HDR_BASE_USECS);
	memcpy(info->base_id, h + HDR_BASE_ID, BUNDLE_ID_SIZE);
	memcpy(info->base_digest, h + HDR_BASE_DIGEST, BUNDLE_DIGEST_SIZE);
	if (version >= 2) {
		info->mails_secs = get_le32(h + HDR_MAILS_SECS);
		info->mails_usecs = get_le32(h + HDR_MAILS_USECS);
	}
	if (info->base_usecs >= 1000000) {
		*error_r = bundle_error("invalid usecs in header");
		return -1;
	}
	if (bundle_info_times_check(info, error_r) < 0)
		return -1;
	if (info->kind == BUNDLE_KIND_BASE && version >= 3 &&
	    !all_zero(h + HDR_PARENT_BASE_ID, BUNDLE_ID_SIZE)) {
		/* a parent: where a diff has its base */
		info->has_parent = true;
		info->parent_secs = info->base_secs;
		info->parent_usecs = info->base_usecs;
		memcpy(info->parent_base_id, info->base_id, BUNDLE_ID_SIZE);
		memcpy(info->parent_diff_id, h + HDR_PARENT_DIFF_ID,
		       BUNDLE_ID_SIZE);
		info->parent_is_diff = !all_zero(h + HDR_PARENT_DIFF_ID,
						 BUNDLE_ID_SIZE);
		info->base_secs = info->base_usecs = 0;
		memset(info->base_id, 0, BUNDLE_ID_SIZE);
		memset(info->base_digest, 0, BUNDLE_DIGEST_SIZE);
		if (!all_zero(h + HDR_PARENT_END,
			      HDR_ENTRY_COUNT - HDR_PARENT_END)) {
			*error_r = bundle_error("base bundle with diff header "
						"fields");
			return -1;
		}
	} else if (info->kind == BUNDLE_KIND_BASE &&
	    (info->seq != 0 || !all_zero(h + HDR_BASE_ID, HDR_ENTRY_COUNT -
					 HDR_BASE_ID))) {
		*error_r = bundle_error("base bundle with diff header fields");
		return -1;
	}
	if (info->kind == BUNDLE_KIND_BASE && info->seq != 0) {
		*error_r = bundle_error("base bundle with a sequence");
		return -1;
	}
	if (info->kind == BUNDLE_KIND_DIFF && info->seq == 0) {
		*error_r = bundle_error("diff bundle with sequence 0");
		return -1;
	}
	return 0;
}

struct decode_ctx {
	struct cursor c;
	enum bundle_kind kind;
	struct bundle_record *recs;
	size_t rec_count;
	/* record index defining link id i + 1, and its member count */
	size_t *link_rec;
	uint32_t *link_members;
	uint32_t link_count;
	uint64_t data_bytes;
};

/* The ranges of a patch record at c (not consumed): each inside the new
   size, after the previous one, not empty; what the file grows by past
   its old size is in them (a small diff cannot make a huge file).
   *len_r = their bytes. */
static int patch_ranges_check(const struct cursor *c,
			      const struct bundle_record *rec,
			      uint64_t *len_r, const char **error_r)
{
	const unsigned char *p = c->p;
	uint64_t prev_end = 0, content = 0;

	for (uint32_t i = 0; i < rec->range_count; i++) {
		uint64_t offset, len;

		if ((size_t)(c->end - p) < BUNDLE_PATCH_RANGE_SIZE) {
			*error_r = bundle_error("%s: patch range %u truncated",
						rec->e.path, i);
			return -1;
		}
		offset = get_le64(p);
		len = get_le32(p + 8);
		p += BUNDLE_PATCH_RANGE_SIZE;
		if (len == 0 || offset < prev_end || offset > rec->e.size ||
		    len > rec->e.size - offset ||
		    len > (uint64_t)(c->end - p)) {
			*error_r = bundle_error("%s: invalid patch range %u "
						"(offset %llu, %llu bytes)",
						rec->e.path, i,
						(unsigned long long)offset,
						(unsigned long long)len);
			return -1;
		}
		p += len;
		prev_end = offset + len;
		content += len;
	}
	if (rec->e.size > rec->old_size &&
	    rec->e.size - rec->old_size > content) {
		*error_r = bundle_error("%s: patch grows the file by %llu "
					"bytes, more than its ranges hold",
					rec->e.path, (unsigned long long)
					(rec->e.size - rec->old_size));
		return -1;
	}
	*len_r = (uint64_t)(p - c->p);
	return 0;
}

static int decode_fields(struct decode_ctx *ctx, const unsigned char *r,
			 struct bundle_record *rec, const char **error_r)
{
	struct bundle_entry *e = &rec->e;
	uint16_t key_len = get_le16(r + REC_KEY_LEN);
	const unsigned char *key;
	uint64_t data_len = 0;

	e->mode = get_le32(r + REC_MODE);
	e->uid = get_le32(r + REC_UID);
	e->gid = get_le32(r + REC_GID);
	e->mtime_nsec = get_le32(r + REC_MTIME_NSEC);
	e->mtime_sec = (int64_t)get_le64(r + REC_MTIME_SEC);
	if (bundle_type_is_device((enum bundle_entry_type)rec->kind))
		e->rdev = (uint64_t)makedev(get_le32(r + REC_RDEV_MAJOR),
					    get_le32(r + REC_RDEV_MINOR));
	else
		e->size = get_le64(r + REC_SIZE);
	rec->old_size = get_le64(r + REC_OLD_SIZE);
	if ((e->mode & ~07777U) != 0 || e->mtime_nsec >= 1000000000U ||
	    e->uid == UINT32_MAX || e->gid == UINT32_MAX ||
	    e->size > INT64_MAX) {
		*error_r = bundle_error("%s: invalid mode, owner, mtime or "
					"size", e->path);
		return -1;
	}
	if ((rec->kind != BUNDLE_REC_APPEND && rec->kind != BUNDLE_REC_PATCH &&
	     rec->old_size != 0) ||
	    (rec->kind == BUNDLE_REC_APPEND && rec->old_size >= e->size) ||
	    (rec->kind == BUNDLE_REC_PATCH && rec->old_size == 0)) {
		*error_r = bundle_error("%s: invalid old size", e->path);
		return -1;
	}
	if ((rec->kind == BUNDLE_REC_DIR && key_len != 0 &&
	     key_len != BUNDLE_GUID_HEX_LEN) ||
	    (rec->kind == BUNDLE_REC_STUB && key_len == 0) ||
	    ((rec->kind == BUNDLE_REC_FILE || rec->kind == BUNDLE_REC_APPEND ||
	      rec->kind == BUNDLE_REC_PATCH ||
	      bundle_type_is_special((enum bundle_entry_type)rec->kind)) &&
	     key_len != 0) || (key = take(&ctx->c, key_len)) == NULL) {
		*error_r = bundle_error("%s: invalid key length %u", e->path,
					key_len);
		return -1;
	}
	switch (rec->kind) {
	case BUNDLE_REC_DIR:
		e->type = BUNDLE_ENTRY_DIR;
		if (e->size != 0 || key_len != 0) {
			if (e->size != 0 ||
			    !bundle_is_hex_id((const char *)key, key_len)) {
				*error_r = bundle_error("%s: invalid directory "
							"guid or size", e->path);
				return -1;
			}
			memcpy(e->guid, key, key_len);
		}
		return 0;
	case BUNDLE_REC_STUB:
		e->type = BUNDLE_ENTRY_STUB;
		if (bundle_key_check((const char *)key, key_len, error_r) < 0)
			return -1;
		e->key = bundle_xstrndup((const char *)key, key_len);
		return 0;
	case BUNDLE_REC_FILE:
		data_len = e->size;
		break;
	case BUNDLE_REC_APPEND:
		data_len = e->size - rec->old_size;
		break;
	case BUNDLE_REC_PATCH:
		if (patch_ranges_check(&ctx->c, rec, &data_len, error_r) < 0)
			return -1;
		rec->patch_len = data_len;
		break;
	case BUNDLE_REC_SYMLINK:
		/* bounded before it is taken; the target checked below */
		if (e->size > BUNDLE_SYMLINK_MAX) {
			*error_r = bundle_error("%s: symlink target of %llu "
						"bytes", e->path,
						(unsigned long long)e->size);
			return -1;
		}
		data_len = e->size;
		break;
	case BUNDLE_REC_FIFO:
	case BUNDLE_REC_SOCKET:
	case BUNDLE_REC_CHARDEV:
	case BUNDLE_REC_BLOCKDEV:
	case BUNDLE_REC_LINK:
		break;
	}
	e->type = bundle_type_is_special((enum bundle_entry_type)rec->kind) ?
		(enum bundle_entry_type)rec->kind : BUNDLE_ENTRY_FILE;
	const unsigned char *data = take(&ctx->c, data_len);
	if (data == NULL) {
		*error_r = bundle_error("%s: content of %llu bytes truncated",
					e->path, (unsigned long long)data_len);
		return -1;
	}
	if (data_len > 0) {
		e->data = bundle_xmalloc(data_len);
		memcpy(e->data, data, data_len);
	}
	ctx->data_bytes += data_len;
	if (bundle_type_is_special(e->type))
		return bundle_special_check(e, error_r);
	return 0;
}

static int decode_record(struct decode_ctx *ctx, const char *prev_path,
			 const char **error_r)
{
	struct bundle_record *rec = &ctx->recs[ctx->rec_count];
	const unsigned char *r = take(&ctx->c, BUNDLE_RECORD_SIZE), *path;
	uint16_t path_len;
	uint32_t link_id;

	if (r == NULL) {
		*error_r = bundle_error("entry record %zu truncated",
					ctx->rec_count);
		return -1;
	}
	rec->kind = (enum bundle_record_kind)r[REC_KIND];
	if (rec->kind < BUNDLE_REC_DIR || rec->kind > BUNDLE_REC_LAST ||
	    ((rec->kind == BUNDLE_REC_APPEND || rec->kind == BUNDLE_REC_PATCH) &&
	     ctx->kind != BUNDLE_KIND_DIFF)) {
		*error_r = bundle_error("entry record %zu: invalid kind %u",
					ctx->rec_count, r[REC_KIND]);
		return -1;
	}
	/* a patch's range count is where other records have 0 */
	rec->range_count = get_le32(r + REC_RESERVED2);
	if (r[REC_FLAGS] != 0 || get_le16(r + REC_RESERVED1) != 0 ||
	    (rec->kind != BUNDLE_REC_PATCH && rec->range_count != 0) ||
	    (rec->kind == BUNDLE_REC_PATCH &&
	     (rec->range_count == 0 || rec->range_count > BUNDLE_MAX_ENTRIES))) {
		*error_r = bundle_error("entry record %zu: reserved bytes set "
					"or an invalid patch range count",
					ctx->rec_count);
		return -1;
	}
	path_len = get_le16(r + REC_PATH_LEN);
	path = take(&ctx->c, path_len);
	if (path == NULL ||
	    bundle_path_check((const char *)path, path_len, error_r) < 0) {
		if (path == NULL)
			*error_r = bundle_error("entry record %zu: path "
						"truncated", ctx->rec_count);
		return -1;
	}
	rec->e.path = bundle_xstrndup((const char *)path, path_len);
	ctx->rec_count++;
	if (prev_path != NULL && strcmp(prev_path, rec->e.path) >= 0) {
		*error_r = bundle_error("%s: paths not sorted or duplicate",
					rec->e.path);
		return -1;
	}
	link_id = get_le32(r + REC_LINK_ID);
	if (rec->kind == BUNDLE_REC_LINK) {
		if (!all_zero(r + REC_KEY_LEN, 2) ||
		    !all_zero(r + REC_MODE, REC_LINK_ID - REC_MODE) ||
		    !all_zero(r + REC_SIZE, 16) ||
		    link_id == 0 || link_id > ctx->link_count) {
			*error_r = bundle_error("%s: invalid hard link record "
						"(link id %u)", rec->e.path,
						link_id);
			return -1;
		}
		rec->e.link_id = link_id;
		ctx->link_members[link_id - 1]++;
		return 0;
	}
	if (link_id != 0) {
		if (rec->kind == BUNDLE_REC_DIR ||
		    bundle_type_is_special((enum bundle_entry_type)rec->kind) ||
		    link_id != ctx->link_count + 1) {
			*error_r = bundle_error("%s: invalid link id %u",
						rec->e.path, link_id);
			return -1;
		}
		ctx->link_rec[ctx->link_count] = ctx->rec_count - 1;
		ctx->link_members[ctx->link_count++] = 1;
		rec->e.link_id = link_id;
	}
	return decode_fields(ctx, r, rec, error_r);
}

static int record_path_cmp(const void *key, const void *elem)
{
	const struct bundle_record *rec = elem;

	return strcmp(key, rec->e.path);
}

static int decode_deletes(struct cursor *c, struct bundle_diff *diff,
			  const struct decode_ctx *ctx, const char **error_r)
{
	for (size_t i = 0; i < diff->delete_count; i++) {
		const unsigned char *lenp = take(c, 2), *path;
		uint16_t len;

		if (lenp == NULL || (path = take(c, len = get_le16(lenp))) ==
		    NULL) {
			*error_r = bundle_error("deleted path %zu truncated",
						i);
			return -1;
		}
		if (bundle_path_check((const char *)path, len, error_r) < 0)
			return -1;
		diff->deletes[i] = bundle_xstrndup((const char *)path, len);
		if (i > 0 && strcmp(diff->deletes[i - 1], diff->deletes[i]) >=
		    0) {
			*error_r = bundle_error("deleted paths not sorted or "
						"duplicate");
			return -1;
		}
		if (bsearch(diff->deletes[i], ctx->recs, ctx->rec_count,
			    sizeof(*ctx->recs), record_path_cmp) != NULL) {
			*error_r = bundle_error("%s: both deleted and changed",
						diff->deletes[i]);
			return -1;
		}
	}
	return 0;
}

/* base: resolve LINK records into copies of their group's first entry */
static int build_tree(struct decode_ctx *ctx, struct bundle_tree *tree,
		      const char **error_r)
{
	tree->entries = bundle_xcalloc(ctx->rec_count, sizeof(*tree->entries));
	tree->alloc = ctx->rec_count;
	for (size_t i = 0; i < ctx->rec_count; i++) {
		struct bundle_record *rec = &ctx->recs[i];

		if (rec->kind == BUNDLE_REC_LINK) {
			const struct bundle_entry *target =
				&tree->entries[ctx->link_rec[rec->e.link_id - 1]];
			char *path = rec->e.path;

			bundle_entry_copy(&rec->e, target);
			free(rec->e.path);
			rec->e.path = path;
		}
		bundle_tree_push(tree, &rec->e);
	}
	return bundle_tree_check(tree, error_r);
}

static int decode_body(struct decode_ctx *ctx, struct bundle *bundle,
		       uint32_t entry_count, uint32_t delete_count,
		       uint64_t data_bytes, const char **error_r)
{
	struct bundle_diff *diff = NULL;

	ctx->recs = bundle_xcalloc(entry_count, sizeof(*ctx->recs));
	ctx->link_rec = bundle_xcalloc(entry_count, sizeof(*ctx->link_rec));
	ctx->link_members = bundle_xcalloc(entry_count,
					   sizeof(*ctx->link_members));
	for (uint32_t i = 0; i < entry_count; i++) {
		if (decode_record(ctx, i == 0 ? NULL :
				  ctx->recs[i - 1].e.path, error_r) < 0)
			return -1;
	}
	for (uint32_t i = 0; i < ctx->link_count; i++) {
		if (ctx->link_members[i] < 2) {
			*error_r = bundle_error("link id %u has one member",
						i + 1);
			return -1;
		}
	}
	if (ctx->data_bytes != data_bytes) {
		*error_r = bundle_error("content sizes do not add up");
		return -1;
	}
	if (bundle->info.kind == BUNDLE_KIND_DIFF) {
		diff = bundle->diff = bundle_xcalloc(1, sizeof(*diff));
		diff->info = bundle->info;
		diff->deletes = bundle_xcalloc(delete_count, sizeof(char *));
		diff->delete_count = delete_count;
		if (decode_deletes(&ctx->c, diff, ctx, error_r) < 0)
			return -1;
	}
	if (ctx->c.p != ctx->c.end) {
		*error_r = bundle_error("%zu bytes of garbage after the records",
					(size_t)(ctx->c.end - ctx->c.p));
		return -1;
	}
	if (diff != NULL) {
		diff->records = ctx->recs;
		diff->record_count = ctx->rec_count;
		ctx->recs = NULL;
		ctx->rec_count = 0;
		return 0;
	}
	bundle->tree = bundle_tree_new();
	bundle->tree->is_base = true;
	bundle->tree->base_info = bundle->info;
	return build_tree(ctx, bundle->tree, error_r);
}

int bundle_decode(const void *data, size_t size, size_t max_size,
		  struct bundle **bundle_r, const char **error_r)
{
	const unsigned char *d = data;
	unsigned char digest[BUNDLE_DIGEST_SIZE];
	struct decode_ctx ctx = { .c = { NULL, NULL } };
	struct bundle *bundle;
	uint32_t entry_count, delete_count;
	uint64_t data_bytes, body;
	int ret;

	*bundle_r = NULL;
	if (size > max_size) {
		*error_r = bundle_error("bundle of %zu bytes exceeds the limit "
					"of %zu", size, max_size);
		return -1;
	}
	if (bundle_is_packed(d, size)) {
		unsigned char *raw;
		size_t raw_size;

		if (bundle_unpack(d, size, max_size, &raw, &raw_size,
				  error_r) < 0)
			return -1;
		if (bundle_is_packed(raw, raw_size)) {
			free(raw);
			*error_r = bundle_error("packed bundle: packed twice");
			return -1;
		}
		ret = bundle_decode(raw, raw_size, max_size, bundle_r,
				    error_r);
		free(raw);
		return ret;
	}
	if (size < BUNDLE_HEADER_SIZE + BUNDLE_TRAILER_SIZE) {
		*error_r = bundle_error("bundle truncated (%zu bytes)", size);
		return -1;
	}
	bundle = bundle_xcalloc(1, sizeof(*bundle));
	if (decode_header(d, &bundle->info, error_r) < 0) {
		bundle_free(&bundle);
		return -1;
	}
	SHA256(d, size - BUNDLE_TRAILER_SIZE, digest);
	if (CRYPTO_memcmp(digest, d + size - BUNDLE_TRAILER_SIZE,
			  BUNDLE_DIGEST_SIZE) != 0) {
		*error_r = bundle_error("bundle checksum mismatch (truncated "
					"or damaged)");
		bundle_free(&bundle);
		return -1;
	}
	memcpy(bundle->info.digest, digest, BUNDLE_DIGEST_SIZE);
	entry_count = get_le32(d + HDR_ENTRY_COUNT);
	delete_count = get_le32(d + HDR_DELETE_COUNT);
	data_bytes = get_le64(d + HDR_DATA_BYTES);
	body = size - BUNDLE_HEADER_SIZE - BUNDLE_TRAILER_SIZE;
	if (entry_count > BUNDLE_MAX_ENTRIES ||
	    delete_count > BUNDLE_MAX_ENTRIES ||
	    (bundle->info.kind == BUNDLE_KIND_BASE && delete_count != 0) ||
	    (uint64_t)entry_count * BUNDLE_RECORD_SIZE +
	    (uint64_t)delete_count * 3 > body || data_bytes > body) {
		*error_r = bundle_error("entry/delete counts or content size "
					"do not fit the bundle");
		bundle_free(&bundle);
		return -1;
	}
	ctx.c.p = d + BUNDLE_HEADER_SIZE;
	ctx.c.end = d + size - BUNDLE_TRAILER_SIZE;
	ctx.kind = bundle->info.kind;
	ret = decode_body(&ctx, bundle, entry_count, delete_count, data_bytes,
			  error_r);
	for (size_t i = 0; i < ctx.rec_count; i++)
		bundle_entry_clear(&ctx.recs[i].e);
	free(ctx.recs);
	free(ctx.link_rec);
	free(ctx.link_members);
	if (ret < 0) {
		bundle_free(&bundle);
		return -1;
	}
	*bundle_r = bundle;
	return 0;
}

void bundle_diff_free(struct bundle_diff **_diff)
{
	struct bundle_diff *diff = *_diff;

	if (diff == NULL)
		return;
	*_diff = NULL;
	for (size_t i = 0; i < diff->record_count; i++)
		bundle_entry_clear(&diff->records[i].e);
	for (size_t i = 0; i < diff->delete_count; i++)
		free(diff->deletes[i]);
	free(diff->records);
	free(diff->deletes);
	free(diff);
}

void bundle_free(struct bundle **_bundle)
{
	struct bundle *bundle = *_bundle;

	if (bundle == NULL)
		return;
	*_bundle = NULL;
	bundle_tree_free(&bundle->tree);
	bundle_diff_free(&bundle->diff);
	free(bundle);
}
