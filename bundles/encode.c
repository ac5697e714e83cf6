/* encode.c: writing bundles: the header, entry records, the SHA-256
 * trailer, and base bundles of a whole tree. */
#include "bundle-private.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

unsigned char *bundle_buf_append_space(struct bundle_buf *buf, size_t size)
{
	unsigned char *p;

	if (buf->used + size > buf->alloc) {
		size_t alloc = buf->alloc == 0 ? 4096 : buf->alloc;

		while (alloc < buf->used + size)
			alloc *= 2;
		buf->data = bundle_xrealloc(buf->data, alloc);
		buf->alloc = alloc;
	}
	p = buf->data + buf->used;
	memset(p, 0, size);
	buf->used += size;
	return p;
}

void bundle_buf_append(struct bundle_buf *buf, const void *data, size_t size)
{
	if (size > 0)
		memcpy(bundle_buf_append_space(buf, size), data, size);
}

void bundle_buf_put_u16(struct bundle_buf *buf, uint16_t v)
{
	put_le16(bundle_buf_append_space(buf, 2), v);
}

void bundle_encode_header(struct bundle_buf *buf, const struct bundle_info *info,
			  uint32_t entry_count, uint32_t delete_count)
{
	unsigned char *h = bundle_buf_append_space(buf, BUNDLE_HEADER_SIZE);

	memcpy(h + HDR_MAGIC, BUNDLE_MAGIC, BUNDLE_MAGIC_SIZE);
	/* version 2 unless the version 3 field is used: readers of 2
	   still read what needs nothing new */
	put_le16(h + HDR_VERSION, info->kind == BUNDLE_KIND_BASE &&
		 info->has_parent ? BUNDLE_FORMAT_VERSION : 2);
	h[HDR_KIND] = (unsigned char)info->kind;
	put_le32(h + HDR_SEQ, info->seq);
	put_le32(h + HDR_SECS, info->secs);
	put_le32(h + HDR_USECS, info->usecs);
	memcpy(h + HDR_ID, info->id, BUNDLE_ID_SIZE);
	if (info->kind == BUNDLE_KIND_DIFF) {
		memcpy(h + HDR_BASE_ID, info->base_id, BUNDLE_ID_SIZE);
		put_le32(h + HDR_BASE_SECS, info->base_secs);
		put_le32(h + HDR_BASE_USECS, info->base_usecs);
		memcpy(h + HDR_BASE_DIGEST, info->base_digest,
		       BUNDLE_DIGEST_SIZE);
	} else if (info->has_parent) {
		memcpy(h + HDR_PARENT_BASE_ID, info->parent_base_id,
		       BUNDLE_ID_SIZE);
		put_le32(h + HDR_PARENT_SECS, info->parent_secs);
		put_le32(h + HDR_PARENT_USECS, info->parent_usecs);
		if (info->parent_is_diff)
			memcpy(h + HDR_PARENT_DIFF_ID, info->parent_diff_id,
			       BUNDLE_ID_SIZE);
	}
	put_le32(h + HDR_ENTRY_COUNT, entry_count);
	put_le32(h + HDR_DELETE_COUNT, delete_count);
	put_le32(h + HDR_MAILS_SECS, info->mails_secs);
	put_le32(h + HDR_MAILS_USECS, info->mails_usecs);
}

static bool all_zero_id(const unsigned char id[BUNDLE_ID_SIZE])
{
	for (size_t i = 0; i < BUNDLE_ID_SIZE; i++) {
		if (id[i] != 0)
			return false;
	}
	return true;
}

int bundle_info_times_check(const struct bundle_info *info,
			    const char **error_r)
{
	if (info->has_parent &&
	    (all_zero_id(info->parent_base_id) ||
	     (info->parent_is_diff && all_zero_id(info->parent_diff_id)))) {
		*error_r = bundle_error("a parent with a zero id");
		return -1;
	}
	if (info->usecs >= 1000000 || info->mails_usecs >= 1000000 ||
	    (info->has_parent && info->parent_usecs >= 1000000)) {
		*error_r = bundle_error("invalid usecs");
		return -1;
	}
	if (info->mails_secs > info->secs ||
	    (info->mails_secs == info->secs &&
	     info->mails_usecs > info->usecs)) {
		*error_r = bundle_error("mail watermark later than the "
					"bundle");
		return -1;
	}
	return 0;
}

/* Data bytes (file content, a symlink's target, append tails) follow the
   record's path and key; the caller appends them. */
void bundle_encode_record(struct bundle_buf *buf, enum bundle_record_kind kind,
			  const struct bundle_entry *e, uint32_t link_id,
			  uint64_t old_size)
{
	size_t path_len = strlen(e->path);
	const char *key = NULL;
	size_t key_len = 0;
	unsigned char *r = bundle_buf_append_space(buf, BUNDLE_RECORD_SIZE);

	r[REC_KIND] = (unsigned char)kind;
	put_le16(r + REC_PATH_LEN, (uint16_t)path_len);
	put_le32(r + REC_LINK_ID, link_id);
	if (kind != BUNDLE_REC_LINK) {
		put_le32(r + REC_MODE, e->mode);
		put_le32(r + REC_UID, e->uid);
		put_le32(r + REC_GID, e->gid);
		put_le32(r + REC_MTIME_NSEC, e->mtime_nsec);
		put_le64(r + REC_MTIME_SEC, (uint64_t)e->mtime_sec);
		if (bundle_type_is_device(e->type)) {
			put_le32(r + REC_RDEV_MAJOR, major((dev_t)e->rdev));
			put_le32(r + REC_RDEV_MINOR, minor((dev_t)e->rdev));
		} else {
			put_le64(r + REC_SIZE, e->size);
		}
		put_le64(r + REC_OLD_SIZE, old_size);
		if (kind == BUNDLE_REC_STUB)
			key = e->key;
		else if (kind == BUNDLE_REC_DIR && e->guid[0] != '\0')
			key = e->guid;
		if (key != NULL)
			key_len = strlen(key);
		put_le16(r + REC_KEY_LEN, (uint16_t)key_len);
	}
	bundle_buf_append(buf, e->path, path_len);
	bundle_buf_append(buf, key, key_len);
}

void bundle_encode_finish(struct bundle_buf *buf, struct bundle_info *info,
			  uint64_t data_bytes)
{
	put_le64(buf->data + HDR_DATA_BYTES, data_bytes);
	SHA256(buf->data, buf->used, info->digest);
	bundle_buf_append(buf, info->digest, BUNDLE_DIGEST_SIZE);
}

int bundle_encode_base(struct bundle_tree *tree,
		       const struct bundle_info *info,
		       unsigned char **data_r, size_t *size_r,
		       const char **error_r)
{
	struct bundle_info hdr = *info;
	struct bundle_buf buf = { 0 };
	uint64_t data_bytes = 0;
	uint32_t *links;
	bool *first;

	if (bundle_tree_check(tree, error_r) < 0)
		return -1;
	if (bundle_info_times_check(info, error_r) < 0)
		return -1;
	hdr.kind = BUNDLE_KIND_BASE;
	hdr.seq = 0;
	hdr.base_secs = hdr.base_usecs = 0;
	memset(hdr.base_id, 0, sizeof(hdr.base_id));
	memset(hdr.base_digest, 0, sizeof(hdr.base_digest));

	links = bundle_link_map(tree, NULL, &first);
	bundle_encode_header(&buf, &hdr, (uint32_t)tree->count, 0);
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];
		enum bundle_record_kind kind = (enum bundle_record_kind)e->type;

		if (links[i] != 0 && !first[i]) {
			bundle_encode_record(&buf, BUNDLE_REC_LINK, e,
					     links[i], 0);
			continue;
		}
		bundle_encode_record(&buf, kind, e, links[i], 0);
		if (bundle_type_has_data(e->type)) {
			bundle_buf_append(&buf, e->data, e->size);
			data_bytes += e->size;
		}
	}
	free(links);
	free(first);
	bundle_encode_finish(&buf, &hdr, data_bytes);
	tree->is_base = true;
	tree->base_info = hdr;
	*data_r = buf.data;
	*size_r = buf.used;
	return 0;
}
