/* tree.c: the in-memory tree model (sorted entries), path validation, whole
 * tree consistency checks and hard link grouping. */
#include "bundle-private.h"
#include "objstore.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static __thread char bundle_errbuf[512];

const char *bundle_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(bundle_errbuf, sizeof(bundle_errbuf), fmt, args);
	va_end(args);
	return bundle_errbuf;
}

void *bundle_xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		abort();
	return p;
}

void *bundle_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (p == NULL)
		abort();
	return p;
}

void *bundle_xrealloc(void *p, size_t size)
{
	p = realloc(p, size == 0 ? 1 : size);
	if (p == NULL)
		abort();
	return p;
}

char *bundle_xstrndup(const char *s, size_t len)
{
	char *p = bundle_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

bool bundle_is_hex_id(const char *s, size_t len)
{
	if (len != BUNDLE_GUID_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

int bundle_key_check(const char *key, size_t len, const char **error_r)
{
	char buf[BUNDLE_KEY_MAX + 1];
	const char *error;

	if (len == 0 || len > BUNDLE_KEY_MAX || memchr(key, '\0', len)) {
		*error_r = bundle_error("invalid stub key (length %zu)", len);
		return -1;
	}
	memcpy(buf, key, len);
	buf[len] = '\0';
	if (objstore_key_check(buf, &error) < 0) {
		*error_r = bundle_error("invalid stub key: %s", error);
		return -1;
	}
	return 0;
}

int bundle_path_check(const char *path, size_t len, const char **error_r)
{
	size_t seg_start = 0;

	if (len == 0 || len > BUNDLE_PATH_MAX) {
		*error_r = bundle_error("invalid path length %zu", len);
		return -1;
	}
	if (memchr(path, '\0', len) != NULL) {
		*error_r = bundle_error("path contains NUL");
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		size_t seg_len = i - seg_start;
		const char *seg = path + seg_start;

		if (seg_len == 0 || seg_len > BUNDLE_NAME_MAX ||
		    (seg_len == 1 && seg[0] == '.') ||
		    (seg_len == 2 && seg[0] == '.' && seg[1] == '.')) {
			*error_r = bundle_error("invalid path '%.*s'",
						(int)(len > 200 ? 200 : len),
						path);
			return -1;
		}
		seg_start = i + 1;
	}
	return 0;
}

struct bundle_tree *bundle_tree_new(void)
{
	return bundle_xcalloc(1, sizeof(struct bundle_tree));
}

struct bundle_tree *bundle_tree_copy(const struct bundle_tree *tree)
{
	struct bundle_tree *copy = bundle_tree_new();

	for (size_t i = 0; i < tree->count; i++) {
		struct bundle_entry e;

		bundle_entry_copy(&e, &tree->entries[i]);
		bundle_tree_push(copy, &e);
	}
	copy->is_base = tree->is_base;
	copy->base_info = tree->base_info;
	copy->checked = tree->checked;
	return copy;
}

void bundle_entry_clear(struct bundle_entry *e)
{
	free(e->path);
	free(e->data);
	free(e->key);
	memset(e, 0, sizeof(*e));
}

void bundle_entry_copy(struct bundle_entry *dst, const struct bundle_entry *src)
{
	*dst = *src;
	dst->path = bundle_xstrndup(src->path, strlen(src->path));
	dst->key = src->key == NULL ? NULL :
		bundle_xstrndup(src->key, strlen(src->key));
	dst->data = NULL;
	if (bundle_type_has_data(src->type) && src->size > 0) {
		dst->data = bundle_xmalloc(src->size);
		memcpy(dst->data, src->data, src->size);
	}
}

void bundle_tree_free(struct bundle_tree **_tree)
{
	struct bundle_tree *tree = *_tree;

	if (tree == NULL)
		return;
	*_tree = NULL;
	for (size_t i = 0; i < tree->count; i++)
		bundle_entry_clear(&tree->entries[i]);
	free(tree->entries);
	free(tree);
}

long bundle_tree_lookup(const struct bundle_tree *tree, const char *path,
			size_t *insert_r)
{
	size_t lo = 0, hi = tree->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(tree->entries[mid].path, path);

		if (cmp == 0) {
			if (insert_r != NULL)
				*insert_r = mid;
			return (long)mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (insert_r != NULL)
		*insert_r = lo;
	return -1;
}

const struct bundle_entry *bundle_tree_find(const struct bundle_tree *tree,
					    const char *path)
{
	long idx = bundle_tree_lookup(tree, path, NULL);

	return idx < 0 ? NULL : &tree->entries[idx];
}

static void tree_grow(struct bundle_tree *tree)
{
	if (tree->count < tree->alloc)
		return;
	tree->alloc = tree->alloc == 0 ? 16 : tree->alloc * 2;
	tree->entries = bundle_xrealloc(tree->entries,
					tree->alloc * sizeof(*tree->entries));
}

void bundle_tree_push(struct bundle_tree *tree, struct bundle_entry *entry)
{
	tree_grow(tree);
	tree->entries[tree->count++] = *entry;
	memset(entry, 0, sizeof(*entry));
}

int bundle_tree_add(struct bundle_tree *tree, const struct bundle_entry *entry,
		    const char **error_r)
{
	size_t pos;

	if (bundle_path_check(entry->path, strlen(entry->path), error_r) < 0)
		return -1;
	if (bundle_type_has_data(entry->type) && entry->size > 0 &&
	    entry->data == NULL) {
		*error_r = bundle_error("%s: file without content", entry->path);
		return -1;
	}
	if (entry->type == BUNDLE_ENTRY_STUB && entry->key == NULL) {
		*error_r = bundle_error("%s: stub without key", entry->path);
		return -1;
	}
	if (bundle_tree_lookup(tree, entry->path, &pos) >= 0) {
		*error_r = bundle_error("duplicate path %s", entry->path);
		return -1;
	}
	if (tree->count >= BUNDLE_MAX_ENTRIES) {
		*error_r = bundle_error("too many entries");
		return -1;
	}
	tree_grow(tree);
	memmove(&tree->entries[pos + 1], &tree->entries[pos],
		(tree->count - pos) * sizeof(*tree->entries));
	bundle_entry_copy(&tree->entries[pos], entry);
	tree->count++;
	tree->is_base = false;
	tree->checked = false;
	return 0;
}

static int entry_check(const struct bundle_entry *e, const char **error_r)
{
	if ((e->mode & ~07777U) != 0 || e->mtime_nsec >= 1000000000U ||
	    e->uid == UINT32_MAX || e->gid == UINT32_MAX) {
		*error_r = bundle_error("%s: invalid mode, owner or mtime",
					e->path);
		return -1;
	}
	if (bundle_type_is_special(e->type))
		return bundle_special_check(e, error_r);
	if (e->rdev != 0) {
		*error_r = bundle_error("%s: rdev of a non-device", e->path);
		return -1;
	}
	switch (e->type) {
	case BUNDLE_ENTRY_DIR:
		if (e->size != 0 || e->link_id != 0 || e->key != NULL ||
		    (e->guid[0] != '\0' &&
		     !bundle_is_hex_id(e->guid, strlen(e->guid)))) {
			*error_r = bundle_error("%s: invalid directory entry",
						e->path);
			return -1;
		}
		return 0;
	case BUNDLE_ENTRY_FILE:
		if (e->key != NULL || e->guid[0] != '\0' ||
		    (e->size > 0 && e->data == NULL) ||
		    e->size > INT64_MAX) {
			*error_r = bundle_error("%s: invalid file entry",
						e->path);
			return -1;
		}
		return 0;
	case BUNDLE_ENTRY_STUB:
		if (e->key == NULL || e->guid[0] != '\0' || e->data != NULL ||
		    e->size > INT64_MAX) {
			*error_r = bundle_error("%s: invalid stub entry",
						e->path);
			return -1;
		}
		return bundle_key_check(e->key, strlen(e->key), error_r);
	default:
		break;
	}
	*error_r = bundle_error("%s: invalid entry type", e->path);
	return -1;
}

/* same inode: same type, metadata and content */
static bool entry_same_inode(const struct bundle_entry *a,
			     const struct bundle_entry *b)
{
	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid ||
	    a->gid != b->gid || a->mtime_sec != b->mtime_sec ||
	    a->mtime_nsec != b->mtime_nsec || a->size != b->size ||
	    a->rdev != b->rdev)
		return false;
	if (a->type == BUNDLE_ENTRY_STUB)
		return strcmp(a->key, b->key) == 0;
	return a->size == 0 || memcmp(a->data, b->data, a->size) == 0;
}

struct link_pair {
	uint32_t link_id;
	size_t idx;
};

static int link_pair_cmp(const void *p1, const void *p2)
{
	const struct link_pair *a = p1, *b = p2;

	if (a->link_id != b->link_id)
		return a->link_id < b->link_id ? -1 : 1;
	return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

static struct link_pair *link_pairs(const struct bundle_tree *tree,
				    const bool *include, size_t *count_r)
{
	struct link_pair *pairs =
		bundle_xcalloc(tree->count, sizeof(*pairs));
	size_t n = 0;

	for (size_t i = 0; i < tree->count; i++) {
		if (tree->entries[i].link_id == 0 ||
		    (include != NULL && !include[i]))
			continue;
		pairs[n].link_id = tree->entries[i].link_id;
		pairs[n++].idx = i;
	}
	qsort(pairs, n, sizeof(*pairs), link_pair_cmp);
	*count_r = n;
	return pairs;
}

uint32_t *bundle_link_map(const struct bundle_tree *tree, const bool *include,
			  bool **first_r)
{
	uint32_t *ids = bundle_xcalloc(tree->count, sizeof(*ids));
	bool *first = bundle_xcalloc(tree->count, sizeof(*first));
	size_t n, i, j;
	struct link_pair *pairs = link_pairs(tree, include, &n);

	/* mark each group's first member with its run length */
	size_t *run_of = bundle_xcalloc(tree->count, sizeof(*run_of));
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && pairs[j].link_id == pairs[i].link_id;)
			j++;
		if (j - i < 2)
			continue;
		first[pairs[i].idx] = true;
		for (size_t k = i; k < j; k++)
			run_of[pairs[k].idx] = i + 1;
	}
	/* number groups in order of their first member */
	uint32_t next = 1;
	for (i = 0; i < tree->count; i++) {
		if (first[i]) {
			uint32_t id = next++;
			size_t run = run_of[i] - 1;

			for (size_t k = run; k < n &&
			     pairs[k].link_id == pairs[run].link_id; k++)
				ids[pairs[k].idx] = id;
		}
	}
	free(run_of);
	free(pairs);
	*first_r = first;
	return ids;
}

#define DISK_BLOCK 4096ULL

uint64_t bundle_tree_disk_bytes(const struct bundle_tree *tree,
				uint64_t stub_bytes)
{
	uint64_t total = 0;
	bool *first;
	uint32_t *links = bundle_link_map(tree, NULL, &first);

	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];
		const char *slash = strrchr(e->path, '/');
		size_t name_len = strlen(slash == NULL ? e->path : slash + 1);

		/* its entry in the parent directory */
		total += (8 + name_len + 3) & ~(uint64_t)3;
		/* a symlink's target over 59 bytes takes a block (ext4) */
		if (e->type == BUNDLE_ENTRY_DIR ||
		    (e->type == BUNDLE_ENTRY_SYMLINK && e->size > 59))
			total += DISK_BLOCK;
		if (e->type == BUNDLE_ENTRY_STUB && (links[i] == 0 || first[i]))
			total += stub_bytes;
		/* a hard link group's content once */
		if (e->type == BUNDLE_ENTRY_FILE &&
		    (links[i] == 0 || first[i]))
			total += (e->size + DISK_BLOCK - 1) / DISK_BLOCK *
				DISK_BLOCK;
	}
	free(links);
	free(first);
	return total;
}

int bundle_tree_check(const struct bundle_tree *tree, const char **error_r)
{
	/* the last parent found a directory: siblings follow each other */
	const char *dir = NULL;
	size_t dir_len = 0, n, i, j;

	for (i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];
		const char *slash;
		size_t parent_len;

		if (bundle_path_check(e->path, strlen(e->path), error_r) < 0 ||
		    entry_check(e, error_r) < 0)
			return -1;
		if (i > 0 && strcmp(tree->entries[i - 1].path, e->path) >= 0) {
			*error_r = bundle_error("paths not sorted or duplicate "
						"at %s", e->path);
			return -1;
		}
		slash = strrchr(e->path, '/');
		if (slash == NULL)
			continue;
		parent_len = (size_t)(slash - e->path);
		if (dir != NULL && parent_len == dir_len &&
		    memcmp(e->path, dir, dir_len) == 0)
			continue;
		char *parent = bundle_xstrndup(e->path, parent_len);
		const struct bundle_entry *p = bundle_tree_find(tree, parent);

		free(parent);
		if (p == NULL || p->type != BUNDLE_ENTRY_DIR) {
			*error_r = bundle_error("%s: parent is not a "
						"directory", e->path);
			return -1;
		}
		dir = p->path;
		dir_len = parent_len;
	}
	struct link_pair *pairs = link_pairs(tree, NULL, &n);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && pairs[j].link_id == pairs[i].link_id;
		     j++) {
			if (!entry_same_inode(&tree->entries[pairs[i].idx],
					      &tree->entries[pairs[j].idx])) {
				*error_r = bundle_error(
					"%s: hard link differs from %s",
					tree->entries[pairs[j].idx].path,
					tree->entries[pairs[i].idx].path);
				free(pairs);
				return -1;
			}
		}
	}
	free(pairs);
	return 0;
}

bool bundle_tree_equal(const struct bundle_tree *a,
		       const struct bundle_tree *b, const char **why_r)
{
	bool *fa, *fb, equal = true;
	uint32_t *la, *lb;

	if (a->count != b->count) {
		*why_r = "different entry counts";
		return false;
	}
	la = bundle_link_map(a, NULL, &fa);
	lb = bundle_link_map(b, NULL, &fb);
	for (size_t i = 0; i < a->count && equal; i++) {
		const struct bundle_entry *x = &a->entries[i];
		const struct bundle_entry *y = &b->entries[i];

		*why_r = x->path;
		equal = strcmp(x->path, y->path) == 0 &&
			entry_same_inode(x, y) && la[i] == lb[i] &&
			strcmp(x->guid, y->guid) == 0;
	}
	free(la);
	free(lb);
	free(fa);
	free(fb);
	return equal;
}
