/* diff.c: diff bundles: computing the changes from a base tree to a new
 * tree (with append-only records for files that only grew) and applying a
 * decoded diff to its base tree. */
#include "bundle-private.h"

#include <stdlib.h>

/* per entry: its hard link group as (first member's path, member count) */
struct link_sig {
	const char *first;
	size_t count;
};

static struct link_sig *link_sigs(const struct bundle_tree *tree)
{
	struct link_sig *sigs = bundle_xcalloc(tree->count, sizeof(*sigs));
	size_t *counts = bundle_xcalloc(tree->count + 1, sizeof(*counts));
	size_t *firsts = bundle_xcalloc(tree->count + 1, sizeof(*firsts));
	bool *first;
	uint32_t *ids = bundle_link_map(tree, NULL, &first);

	for (size_t i = 0; i < tree->count; i++) {
		if (ids[i] == 0)
			continue;
		if (counts[ids[i]]++ == 0)
			firsts[ids[i]] = i;
	}
	for (size_t i = 0; i < tree->count; i++) {
		if (ids[i] == 0)
			continue;
		sigs[i].first = tree->entries[firsts[ids[i]]].path;
		sigs[i].count = counts[ids[i]];
	}
	free(ids);
	free(first);
	free(counts);
	free(firsts);
	return sigs;
}

static bool sig_equal(const struct link_sig *a, const struct link_sig *b)
{
	if (a->count != b->count)
		return false;
	return a->count == 0 || strcmp(a->first, b->first) == 0;
}

static bool meta_equal(const struct bundle_entry *a,
		       const struct bundle_entry *b)
{
	return a->type == b->type && a->mode == b->mode && a->uid == b->uid &&
		a->gid == b->gid && a->mtime_sec == b->mtime_sec &&
		a->mtime_nsec == b->mtime_nsec && a->size == b->size &&
		a->rdev == b->rdev && strcmp(a->guid, b->guid) == 0 &&
		(a->type != BUNDLE_ENTRY_STUB || strcmp(a->key, b->key) == 0);
}

static bool is_append(const struct bundle_entry *old,
		      const struct bundle_entry *new_e)
{
	return old->type == BUNDLE_ENTRY_FILE &&
		new_e->type == BUNDLE_ENTRY_FILE && old->size > 0 &&
		new_e->size > old->size &&
		memcmp(old->data, new_e->data, old->size) == 0;
}

/* Patch ranges: the blocks where a rewritten file differs from its base
   version, and what it grew by.  Index files Dovecot rewrites
   (dovecot.index: fixed-size records, a few changed and some appended)
   then cost what changed, not the whole file. */
#define PATCH_BLOCK 64

static void patch_range(struct bundle_buf *out, const unsigned char *data,
			uint64_t start, uint64_t end, uint32_t *count)
{
	unsigned char *h = bundle_buf_append_space(out,
						    BUNDLE_PATCH_RANGE_SIZE);

	put_le64(h, start);
	put_le32(h + 8, (uint32_t)(end - start));
	bundle_buf_append(out, data + start, end - start);
	(*count)++;
}

/* the ranges turning old into new_e into out; false if they would not
   save at least half of new_e's content (or a range gets too long) */
static bool patch_ranges(const struct bundle_entry *old,
			 const struct bundle_entry *new_e,
			 struct bundle_buf *out, uint32_t *count_r)
{
	uint64_t osz = old->size, nsz = new_e->size, i = 0, start = 0;
	uint64_t common = osz < nsz ? osz : nsz;
	bool in_run = false;

	*count_r = 0;
	if (old->type != BUNDLE_ENTRY_FILE || new_e->type != BUNDLE_ENTRY_FILE ||
	    osz == 0 || nsz < 2 * PATCH_BLOCK || nsz > UINT32_MAX)
		return false;
	for (i = 0; i < common; i += PATCH_BLOCK) {
		uint64_t len = common - i < PATCH_BLOCK ? common - i :
			PATCH_BLOCK;
		bool differs = memcmp(old->data + i, new_e->data + i, len) != 0;

		if (differs && !in_run) {
			start = i;
			in_run = true;
		} else if (!differs && in_run) {
			patch_range(out, new_e->data, start, i, count_r);
			in_run = false;
		}
		if (out->used > nsz / 2)
			return false;
	}
	if (nsz > common) {	/* the tail joins a run that reaches it */
		if (!in_run)
			start = common;
		in_run = true;
	}
	if (in_run)
		patch_range(out, new_e->data, start, nsz, count_r);
	return *count_r > 0 && out->used <= nsz / 2;
}

int bundle_diff(const struct bundle_tree *base,
		const struct bundle_tree *new_tree,
		const struct bundle_info *info,
		unsigned char **data_r, size_t *size_r, const char **error_r)
{
	struct bundle_info hdr = *info;
	struct bundle_buf buf = { 0 }, dels = { 0 }, patch = { 0 };
	uint32_t ranges;
	size_t n = new_tree->count, i = 0, j = 0, ndel = 0, nrec = 0;
	long *base_idx;
	bool *emit, *first;
	struct link_sig *bsig, *nsig;
	uint32_t *links;
	uint64_t data_bytes = 0;

	if (!base->is_base) {
		*error_r = bundle_error("bundle_diff: base tree is not a "
					"stored base bundle");
		return -1;
	}
	if (info->seq == 0) {
		*error_r = bundle_error("bundle_diff: invalid seq 0");
		return -1;
	}
	if (bundle_info_times_check(info, error_r) < 0)
		return -1;
	if (!new_tree->checked && bundle_tree_check(new_tree, error_r) < 0)
		return -1;
	base_idx = bundle_xcalloc(n, sizeof(*base_idx));
	emit = bundle_xcalloc(n, sizeof(*emit));
	bsig = link_sigs(base);
	nsig = link_sigs(new_tree);
	/* merge walk: deletes, adds and changes */
	while (i < base->count || j < n) {
		int cmp = i == base->count ? 1 : j == n ? -1 :
			strcmp(base->entries[i].path, new_tree->entries[j].path);

		if (cmp < 0) {
			const char *path = base->entries[i++].path;

			bundle_buf_put_u16(&dels, (uint16_t)strlen(path));
			bundle_buf_append(&dels, path, strlen(path));
			ndel++;
			continue;
		}
		base_idx[j] = cmp == 0 ? (long)i++ : -1;
		if (cmp > 0) {
			emit[j++] = true;
			continue;
		}
		const struct bundle_entry *b = &base->entries[base_idx[j]];
		const struct bundle_entry *e = &new_tree->entries[j];

		emit[j] = !meta_equal(b, e) ||
			!sig_equal(&bsig[base_idx[j]], &nsig[j]) ||
			(bundle_type_has_data(e->type) && e->size > 0 &&
			 memcmp(b->data, e->data, e->size) != 0);
		j++;
	}
	/* a changed hard link group is sent whole */
	links = bundle_link_map(new_tree, NULL, &first);
	bool *group_emit = bundle_xcalloc(n + 1, sizeof(*group_emit));
	for (j = 0; j < n; j++) {
		if (links[j] != 0 && emit[j])
			group_emit[links[j]] = true;
	}
	for (j = 0; j < n; j++) {
		if (links[j] != 0 && group_emit[links[j]])
			emit[j] = true;
	}
	free(group_emit);
	free(links);
	free(first);

	hdr.kind = BUNDLE_KIND_DIFF;
	hdr.base_secs = base->base_info.secs;
	hdr.base_usecs = base->base_info.usecs;
	memcpy(hdr.base_id, base->base_info.id, BUNDLE_ID_SIZE);
	memcpy(hdr.base_digest, base->base_info.digest, BUNDLE_DIGEST_SIZE);
	for (j = 0; j < n; j++)
		nrec += emit[j] ? 1 : 0;
	bundle_encode_header(&buf, &hdr, (uint32_t)nrec, (uint32_t)ndel);
	links = bundle_link_map(new_tree, emit, &first);
	for (j = 0; j < n; j++) {
		const struct bundle_entry *e = &new_tree->entries[j];
		const struct bundle_entry *b = base_idx[j] < 0 ? NULL :
			&base->entries[base_idx[j]];

		if (!emit[j])
			continue;
		if (links[j] != 0 && !first[j]) {
			bundle_encode_record(&buf, BUNDLE_REC_LINK, e,
					     links[j], 0);
		} else if (b != NULL && is_append(b, e)) {
			bundle_encode_record(&buf, BUNDLE_REC_APPEND, e,
					     links[j], b->size);
			bundle_buf_append(&buf, e->data + b->size, e->size - b->size);
			data_bytes += e->size - b->size;
		} else if (b != NULL &&
			   (patch.used = 0, patch_ranges(b, e, &patch,
							 &ranges))) {
			size_t rec = buf.used;

			bundle_encode_record(&buf, BUNDLE_REC_PATCH, e,
					     links[j], b->size);
			put_le32(buf.data + rec + REC_RESERVED2, ranges);
			bundle_buf_append(&buf, patch.data, patch.used);
			data_bytes += patch.used;
		} else {
			bundle_encode_record(&buf, (enum bundle_record_kind)
					     e->type, e, links[j], 0);
			if (bundle_type_has_data(e->type)) {
				bundle_buf_append(&buf, e->data, e->size);
				data_bytes += e->size;
			}
		}
	}
	bundle_buf_append(&buf, dels.data, dels.used);
	bundle_encode_finish(&buf, &hdr, data_bytes);
	free(dels.data);
	free(patch.data);
	free(links);
	free(first);
	free(bsig);
	free(nsig);
	free(emit);
	free(base_idx);
	*data_r = buf.data;
	*size_r = buf.used;
	return 0;
}

size_t bundle_diff_entry_count(const struct bundle_diff *diff)
{
	return diff->record_count;
}

size_t bundle_diff_delete_count(const struct bundle_diff *diff)
{
	return diff->delete_count;
}

/* the content of a patch record's file (its ranges were checked when
   decoded), from its base version b */
static unsigned char *apply_patch(const struct bundle_entry *b,
				  const struct bundle_record *rec)
{
	uint64_t size = rec->e.size, keep = b->size < size ? b->size : size;
	unsigned char *data = bundle_xmalloc(size == 0 ? 1 : size);
	const unsigned char *p = rec->e.data;

	if (keep > 0)
		memcpy(data, b->data, keep);
	memset(data + keep, 0, size - keep);
	for (uint32_t i = 0; i < rec->range_count; i++) {
		uint64_t offset = get_le64(p);
		uint32_t len = get_le32(p + 8);

		memcpy(data + offset, p + BUNDLE_PATCH_RANGE_SIZE, len);
		p += BUNDLE_PATCH_RANGE_SIZE + len;
	}
	return data;
}

/* the content of an append record's file, from its base version b */
static unsigned char *apply_append(const struct bundle_entry *b,
				   const struct bundle_record *rec)
{
	unsigned char *data = bundle_xmalloc(rec->e.size);

	if (b->size > 0)
		memcpy(data, b->data, b->size);
	memcpy(data + b->size, rec->e.data, rec->e.size - b->size);
	return data;
}

static int apply_record(const struct bundle_tree *base, long bidx,
			const struct bundle_record *rec, uint32_t offset,
			const size_t *link_def, const struct bundle_tree *out,
			struct bundle_entry *e_r, const char **error_r)
{
	const struct bundle_entry *b = bidx < 0 ? NULL : &base->entries[bidx];

	switch (rec->kind) {
	case BUNDLE_REC_LINK:
		bundle_entry_copy(e_r, &out->entries[link_def[rec->e.link_id]]);
		free(e_r->path);
		e_r->path = bundle_xstrndup(rec->e.path, strlen(rec->e.path));
		return 0;
	case BUNDLE_REC_APPEND:
	case BUNDLE_REC_PATCH:
		/* both change the base's version of the file */
		if (b == NULL || b->type != BUNDLE_ENTRY_FILE ||
		    b->size != rec->old_size) {
			*error_r = bundle_error("%s: %s file is not in the "
						"base with size %llu",
						rec->e.path,
						rec->kind == BUNDLE_REC_APPEND ?
						"appended-to" : "patched",
						(unsigned long long)
						rec->old_size);
			return -1;
		}
		*e_r = rec->e;
		e_r->path = bundle_xstrndup(rec->e.path, strlen(rec->e.path));
		e_r->key = NULL;
		e_r->data = rec->kind == BUNDLE_REC_PATCH ?
			apply_patch(b, rec) : apply_append(b, rec);
		break;
	default:
		bundle_entry_copy(e_r, &rec->e);
		break;
	}
	if (e_r->link_id != 0)
		e_r->link_id += offset;
	return 0;
}

int bundle_apply_diff(struct bundle_tree *tree, const struct bundle_diff *diff,
		      const char **error_r)
{
	const struct bundle_info *di = &diff->info;
	struct bundle_tree *out;
	uint32_t offset = 0;
	size_t i = 0, r = 0, d = 0;
	size_t *link_def;
	int ret = 0;

	if (!tree->is_base || tree->base_info.secs != di->base_secs ||
	    tree->base_info.usecs != di->base_usecs ||
	    memcmp(tree->base_info.id, di->base_id, BUNDLE_ID_SIZE) != 0 ||
	    memcmp(tree->base_info.digest, di->base_digest,
		   BUNDLE_DIGEST_SIZE) != 0) {
		*error_r = bundle_error("diff does not apply to this base "
					"(base id or checksum differs)");
		return -1;
	}
	for (i = 0; i < tree->count; i++) {
		if (tree->entries[i].link_id > offset)
			offset = tree->entries[i].link_id;
	}
	if (offset > UINT32_MAX - BUNDLE_MAX_ENTRIES - 1) {
		*error_r = bundle_error("base link ids out of range");
		return -1;
	}
	out = bundle_tree_new();
	link_def = bundle_xcalloc(diff->record_count + 1, sizeof(*link_def));
	i = 0;
	while (ret == 0 && (i < tree->count || r < diff->record_count)) {
		const char *bpath = i < tree->count ?
			tree->entries[i].path : NULL;
		const char *rpath = r < diff->record_count ?
			diff->records[r].e.path : NULL;
		int cmp = bpath == NULL ? 1 : rpath == NULL ? -1 :
			strcmp(bpath, rpath);
		struct bundle_entry e;

		if (d < diff->delete_count && (bpath == NULL ||
		    strcmp(diff->deletes[d], bpath) < 0)) {
			*error_r = bundle_error("%s: deleted path is not in "
						"the base", diff->deletes[d]);
			ret = -1;
			break;
		}
		if (cmp < 0) {
			if (d < diff->delete_count &&
			    strcmp(diff->deletes[d], bpath) == 0) {
				d++;
				i++;
				continue;
			}
			bundle_entry_copy(&e, &tree->entries[i++]);
		} else {
			const struct bundle_record *rec = &diff->records[r++];

			ret = apply_record(tree, cmp == 0 ? (long)i : -1, rec,
					   offset, link_def, out, &e, error_r);
			if (cmp == 0)
				i++;
			if (ret < 0)
				break;
			if (rec->kind != BUNDLE_REC_LINK && rec->e.link_id != 0)
				link_def[rec->e.link_id] = out->count;
		}
		bundle_tree_push(out, &e);
	}
	if (ret == 0 && d < diff->delete_count) {
		*error_r = bundle_error("%s: deleted path is not in the base",
					diff->deletes[d]);
		ret = -1;
	}
	if (ret == 0)
		ret = bundle_tree_check(out, error_r);
	free(link_def);
	if (ret < 0) {
		bundle_tree_free(&out);
		return -1;
	}
	for (i = 0; i < tree->count; i++)
		bundle_entry_clear(&tree->entries[i]);
	free(tree->entries);
	tree->entries = out->entries;
	tree->count = out->count;
	tree->alloc = out->alloc;
	tree->is_base = false;
	free(out);
	return 0;
}
