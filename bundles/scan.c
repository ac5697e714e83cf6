/* scan.c: reading a directory tree (index files, stubs with their xattrs,
 * folder guids, hard links, special files) from disk into a bundle_tree. */
#include "bundle-private.h"
#include "stubattr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct inode_link {
	dev_t dev;
	ino_t ino;
	uint32_t link_id;
};

/* prev's regular files by inode number (open addressing) */
struct ino_map {
	uint64_t *inos;		/* 0: empty slot */
	size_t *idx;
	size_t size;		/* a power of two */
};

/* an entry of prev taken again under path (in the scan's path arena):
   copied into the tree by bundle_tree_scan_finish() */
struct scan_ref {
	size_t prev_idx;
	size_t path_off, path_len;
};

struct bundle_scan {
	struct bundle_tree *tree;
	const struct bundle_tree *prev;
	struct scan_ref *refs;
	size_t ref_count;
	char *paths;
};

struct scan_ctx {
	struct bundle_tree *tree;
	struct scan_ref *refs;
	size_t ref_count, ref_alloc;
	char *paths;
	size_t paths_len, paths_alloc;
	/* the last scan, if incremental (else NULL) */
	struct bundle_scan_prev *prev;
	struct ino_map map;
	dev_t dev;
	size_t reused, read;	/* regular files taken from prev / read */
	struct inode_link *links;
	size_t link_count, link_alloc;
	uint32_t next_link_id;
	bundle_scan_filter_t *filter;
	void *context;
	/* bundle_scan_prev.lazy (kept without an incremental prev too) */
	int (*lazy)(int dirfd, void (*cb)(const struct bundle_entry *e,
					  void *cb_context),
		    void *cb_context, void *context, const char **error_r);
	void *lazy_context;
	const char *error;
};

static size_t ino_slot(const struct ino_map *map, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) & (map->size - 1);
}

/* regular files of the last scan are taken again if unchanged; special
   files are always read again (no content to spare) */
static bool is_reusable(const struct bundle_entry *e)
{
	return (e->type == BUNDLE_ENTRY_FILE || e->type == BUNDLE_ENTRY_STUB) &&
		e->ino != 0;
}

static void ino_map_build(struct ino_map *map, const struct bundle_tree *tree)
{
	size_t n = 0;

	for (size_t i = 0; i < tree->count; i++)
		n += is_reusable(&tree->entries[i]);
	for (map->size = 16; map->size < n * 2; map->size *= 2)
		;
	map->inos = bundle_xcalloc(map->size, sizeof(*map->inos));
	map->idx = bundle_xcalloc(map->size, sizeof(*map->idx));
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];
		size_t s;

		if (!is_reusable(e))
			continue;
		for (s = ino_slot(map, e->ino); map->inos[s] != 0;
		     s = (s + 1) & (map->size - 1)) {
			if (map->inos[s] == e->ino)
				break;	/* hard links: any of them */
		}
		map->inos[s] = e->ino;
		map->idx[s] = i;
	}
}

/* prev's entry of inode ino, or NULL */
static const struct bundle_entry *
ino_map_find(const struct scan_ctx *ctx, uint64_t ino)
{
	const struct ino_map *map = &ctx->map;

	if (map->size == 0 || ino == 0)
		return NULL;
	for (size_t s = ino_slot(map, ino); map->inos[s] != 0;
	     s = (s + 1) & (map->size - 1)) {
		if (map->inos[s] == ino)
			return &ctx->prev->tree->entries[map->idx[s]];
	}
	return NULL;
}

static int scan_fail(struct scan_ctx *ctx, const char *path, const char *what)
{
	ctx->error = bundle_error("%s(%s) failed: %s", what, path,
				  strerror(errno));
	return -1;
}

static uint32_t link_id_get(struct scan_ctx *ctx, const struct stat *st)
{
	for (size_t i = 0; i < ctx->link_count; i++) {
		if (ctx->links[i].dev == st->st_dev &&
		    ctx->links[i].ino == st->st_ino)
			return ctx->links[i].link_id;
	}
	if (ctx->link_count == ctx->link_alloc) {
		ctx->link_alloc = ctx->link_alloc == 0 ? 16 :
			ctx->link_alloc * 2;
		ctx->links = bundle_xrealloc(ctx->links, ctx->link_alloc *
					     sizeof(*ctx->links));
	}
	ctx->links[ctx->link_count].dev = st->st_dev;
	ctx->links[ctx->link_count].ino = st->st_ino;
	ctx->links[ctx->link_count].link_id = ++ctx->next_link_id;
	return ctx->links[ctx->link_count++].link_id;
}

static int read_xattr(struct scan_ctx *ctx, int fd, const char *path,
		      const char *name, char *buf, size_t size, size_t *len_r)
{
	ssize_t ret = fgetxattr(fd, name, buf, size);

	if (ret < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return 0;
		return scan_fail(ctx, path, "fgetxattr");
	}
	*len_r = (size_t)ret;
	return 1;
}

static int read_stub(struct scan_ctx *ctx, int fd, struct bundle_entry *e)
{
	char key[BUNDLE_KEY_MAX + 1];
	const char *error;
	int ret;

	ret = bundle_stub_attr_read(fd, key, &e->size, &error);
	if (ret < 0 && errno == EIO) {
		ctx->error = bundle_error("%s: %s", e->path, error);
		return -1;
	}
	if (ret < 0)
		return scan_fail(ctx, e->path, "fgetxattr");
	if (ret == 0) {
		e->size = 0;
		return 0;
	}
	e->type = BUNDLE_ENTRY_STUB;
	e->key = bundle_xstrndup(key, strlen(key));
	return 1;
}

static int read_content(struct scan_ctx *ctx, int fd, const struct stat *st,
			struct bundle_entry *e)
{
	uint64_t done = 0;

	e->type = BUNDLE_ENTRY_FILE;
	e->size = (uint64_t)st->st_size;
	if (e->size == 0)
		return 0;
	e->data = bundle_xmalloc(e->size);
	while (done < e->size) {
		ssize_t ret = pread(fd, e->data + done, e->size - done,
				    (off_t)done);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return scan_fail(ctx, e->path, "pread");
		if (ret == 0) {
			ctx->error = bundle_error("%s: file shrank while read",
						  e->path);
			return -1;
		}
		done += (uint64_t)ret;
	}
	return 0;
}

static int scan_dir(struct scan_ctx *ctx, int dirfd, const char *prefix);

/* the metadata of st into e */
static void entry_meta(struct scan_ctx *ctx, const struct stat *st,
		       struct bundle_entry *e)
{
	e->mode = (uint32_t)st->st_mode & 07777;
	e->ino = (uint64_t)st->st_ino;
	e->nlink = (uint32_t)st->st_nlink;
	ctx->dev = st->st_dev;
	e->uid = (uint32_t)st->st_uid;
	e->gid = (uint32_t)st->st_gid;
	e->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
}

/* a symlink, fifo, socket or device node (lstat() gave st): never
   opened; each name is an entry of its own (no link id) */
static int scan_special(struct scan_ctx *ctx, int dirfd, const char *name,
			const char *path, const struct stat *st)
{
	struct bundle_entry e = { .path = (char *)path };
	int ret;

	entry_meta(ctx, st, &e);
	ret = bundle_special_scan(dirfd, name, st, &e, &ctx->error);
	if (ret <= 0) {
		e.path = NULL;
		bundle_entry_clear(&e);
		return ret;
	}
	e.path = bundle_xstrndup(path, strlen(path));
	bundle_tree_push(ctx->tree, &e);
	ctx->read++;
	return 0;
}

static int scan_one(struct scan_ctx *ctx, int dirfd, const char *name,
		    const char *path)
{
	struct bundle_entry e = { .path = (char *)path };
	enum bundle_scan_action action = BUNDLE_SCAN_INCLUDE;
	struct stat st;
	size_t len;
	int fd, ret = 0;

	/* a name that went away since readdir() is not in the tree */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : scan_fail(ctx, path, "fstatat");
	if (ctx->filter != NULL) {
		action = ctx->filter(path, S_ISDIR(st.st_mode), ctx->context);
		if (action == BUNDLE_SCAN_SKIP)
			return 0;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return scan_special(ctx, dirfd, name, path, &st);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : scan_fail(ctx, path, "openat");
	if (fstat(fd, &st) < 0) {
		close(fd);
		return scan_fail(ctx, path, "fstat");
	}
	entry_meta(ctx, &st, &e);
	if (S_ISDIR(st.st_mode)) {
		e.type = BUNDLE_ENTRY_DIR;
		ret = read_xattr(ctx, fd, path, BUNDLE_XATTR_GUID, e.guid,
				 sizeof(e.guid) - 1, &len);
		if (ret > 0 && !bundle_is_hex_id(e.guid, len)) {
			ctx->error = bundle_error("%s: invalid %s xattr", path,
						  BUNDLE_XATTR_GUID);
			ret = -1;
		} else if (ret == 0) {
			e.guid[0] = '\0';
		}
	} else if (S_ISREG(st.st_mode)) {
		if (st.st_nlink > 1)
			e.link_id = link_id_get(ctx, &st);
		ret = st.st_size == 0 ? read_stub(ctx, fd, &e) : 0;
		if (ret == 0)
			ret = read_content(ctx, fd, &st, &e);
		ctx->read++;
	} else {
		ctx->error = bundle_error("%s: unsupported file type", path);
		ret = -1;
	}
	if (ret >= 0) {
		e.path = bundle_xstrndup(path, strlen(path));
		bundle_tree_push(ctx->tree, &e);
		if (S_ISDIR(st.st_mode) && action != BUNDLE_SCAN_NO_CHILDREN)
			ret = scan_dir(ctx, fd, path);
	} else {
		e.path = NULL;
		bundle_entry_clear(&e);
	}
	close(fd);
	return ret < 0 ? -1 : 0;
}

/* a copy of prev's entry old under path (no link id) */
static struct bundle_entry entry_copy_as(const struct bundle_entry *old,
					 const char *path, size_t path_len)
{
	struct bundle_entry e = *old;

	e.path = bundle_xstrndup(path, path_len);
	e.key = old->key == NULL ? NULL :
		bundle_xstrndup(old->key, strlen(old->key));
	e.data = NULL;
	if (old->type == BUNDLE_ENTRY_FILE && old->size > 0) {
		e.data = bundle_xmalloc(old->size);
		memcpy(e.data, old->data, old->size);
	}
	e.link_id = 0;
	return e;
}

/* prev's entry old is taken again under path: noted now, copied by
   bundle_tree_scan_finish() (no allocation per entry during the walk) */
static void scan_defer(struct scan_ctx *ctx, const struct bundle_entry *old,
		       const char *path)
{
	size_t len = strlen(path);
	struct scan_ref *ref;

	if (ctx->ref_count == ctx->ref_alloc) {
		ctx->ref_alloc = ctx->ref_alloc == 0 ? 256 : ctx->ref_alloc * 2;
		ctx->refs = bundle_xrealloc(ctx->refs, ctx->ref_alloc *
					    sizeof(*ctx->refs));
	}
	while (ctx->paths_len + len + 1 > ctx->paths_alloc) {
		ctx->paths_alloc = ctx->paths_alloc == 0 ? 16384 :
			ctx->paths_alloc * 2;
		ctx->paths = bundle_xrealloc(ctx->paths, ctx->paths_alloc);
	}
	ref = &ctx->refs[ctx->ref_count++];
	ref->prev_idx = (size_t)(old - ctx->prev->tree->entries);
	ref->path_off = ctx->paths_len;
	ref->path_len = len;
	memcpy(ctx->paths + ctx->paths_len, path, len + 1);
	ctx->paths_len += len + 1;
}

/* The regular file d (at path) as prev had it, if it did not change.
   Returns true if it was taken (or filtered out). */
static bool scan_reuse(struct scan_ctx *ctx, const struct dirent *d,
		       const char *path)
{
	const struct bundle_entry *old;
	struct bundle_entry e;
	struct stat st;

	if (ctx->prev == NULL || d->d_type != DT_REG)
		return false;
	old = ino_map_find(ctx, (uint64_t)d->d_ino);
	if (old == NULL || !is_reusable(old) ||
	    ctx->prev->changed((uint64_t)d->d_ino, ctx->prev->context))
		return false;
	if (ctx->filter != NULL &&
	    ctx->filter(path, false, ctx->context) == BUNDLE_SCAN_SKIP)
		return true;
	ctx->reused++;
	if (old->nlink <= 1) {
		scan_defer(ctx, old, path);
		return true;
	}
	/* a hard link: copied now (its link id comes from the inode) */
	e = entry_copy_as(old, path, strlen(path));
	st.st_dev = ctx->dev;
	st.st_ino = (ino_t)e.ino;
	e.link_id = link_id_get(ctx, &st);
	bundle_tree_push(ctx->tree, &e);
	return true;
}

/* a lazy directory's entries not on disk (bundle_scan_prev.lazy), by
   name, and which of them readdir() found on disk after all */
struct lazy_stash {
	struct bundle_tree *tree;
	bool *on_disk;
};

static void lazy_stash_add(const struct bundle_entry *e, void *context)
{
	struct lazy_stash *stash = context;
	struct bundle_entry copy = *e;

	copy.path = bundle_xstrndup(e->path, strlen(e->path));
	copy.key = e->key == NULL ? NULL :
		bundle_xstrndup(e->key, strlen(e->key));
	copy.data = NULL;
	copy.size = e->type == BUNDLE_ENTRY_STUB ? e->size : 0;
	copy.link_id = 0;
	copy.ino = 0;
	copy.nlink = 1;
	bundle_tree_push(stash->tree, &copy);
}

static int lazy_name_cmp(const void *key, const void *p)
{
	return strcmp(key, ((const struct bundle_entry *)p)->path);
}

static void lazy_seen(struct lazy_stash *stash, const char *name)
{
	const struct bundle_entry *e;

	if (stash->tree == NULL || stash->tree->count == 0)
		return;
	e = bsearch(name, stash->tree->entries, stash->tree->count,
		    sizeof(*e), lazy_name_cmp);
	if (e != NULL)
		stash->on_disk[e - stash->tree->entries] = true;
}

/* the lazy entries readdir() did not give, under prefix */
static int lazy_push(struct scan_ctx *ctx, struct lazy_stash *stash,
		     const char *prefix)
{
	for (size_t i = 0; i < stash->tree->count; i++) {
		struct bundle_entry *e = &stash->tree->entries[i];
		char path[BUNDLE_PATH_MAX + 1];
		int len;

		if (stash->on_disk[i])
			continue;
		len = snprintf(path, sizeof(path), "%s%s%s", prefix,
			       prefix[0] == '\0' ? "" : "/", e->path);
		if (len < 0 || (size_t)len >= sizeof(path)) {
			ctx->error = bundle_error("%s/%s: path too long",
						  prefix, e->path);
			return -1;
		}
		if (ctx->tree->count + ctx->ref_count >= BUNDLE_MAX_ENTRIES) {
			ctx->error = bundle_error("too many entries");
			return -1;
		}
		if (ctx->filter != NULL &&
		    ctx->filter(path, false, ctx->context) == BUNDLE_SCAN_SKIP)
			continue;
		free(e->path);
		e->path = bundle_xstrndup(path, (size_t)len);
		bundle_tree_push(ctx->tree, e);
		ctx->reused++;
	}
	return 0;
}

static int lazy_stash_get(struct scan_ctx *ctx, int fd,
			  struct lazy_stash *stash)
{
	const char *error;
	int ret;

	stash->tree = NULL;
	stash->on_disk = NULL;
	if (ctx->lazy == NULL)
		return 0;
	stash->tree = bundle_tree_new();
	ret = ctx->lazy(fd, lazy_stash_add, stash, ctx->lazy_context, &error);
	if (ret <= 0) {
		bundle_tree_free(&stash->tree);
		if (ret < 0)
			ctx->error = error;
		return ret;
	}
	stash->on_disk = bundle_xcalloc(stash->tree->count + 1,
					sizeof(*stash->on_disk));
	return 1;
}

static int scan_dir(struct scan_ctx *ctx, int dirfd, const char *prefix)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct lazy_stash stash;
	struct dirent *d;
	DIR *dir;
	int ret = 0;

	if (fd < 0)
		return scan_fail(ctx, prefix[0] == '\0' ? "." : prefix,
				 "openat");
	if (lazy_stash_get(ctx, fd, &stash) < 0) {
		close(fd);
		return -1;
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		bundle_tree_free(&stash.tree);
		free(stash.on_disk);
		return scan_fail(ctx, prefix, "fdopendir");
	}
	while (ret == 0 && (errno = 0, d = readdir(dir)) != NULL) {
		char path[BUNDLE_PATH_MAX + 1];
		int len;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		lazy_seen(&stash, d->d_name);
		len = snprintf(path, sizeof(path), "%s%s%s", prefix,
			       prefix[0] == '\0' ? "" : "/", d->d_name);
		if (len < 0 || (size_t)len >= sizeof(path)) {
			ctx->error = bundle_error("%s/%s: path too long",
						  prefix, d->d_name);
			ret = -1;
		} else if (ctx->tree->count + ctx->ref_count >= BUNDLE_MAX_ENTRIES) {
			ctx->error = bundle_error("too many entries");
			ret = -1;
		} else if (!scan_reuse(ctx, d, path)) {
			ret = scan_one(ctx, fd, d->d_name, path);
		}
	}
	if (ret == 0 && errno != 0)
		ret = scan_fail(ctx, prefix, "readdir");
	closedir(dir);
	if (ret == 0 && stash.tree != NULL)
		ret = lazy_push(ctx, &stash, prefix);
	bundle_tree_free(&stash.tree);
	free(stash.on_disk);
	return ret;
}

static int entry_cmp(const void *p1, const void *p2)
{
	const struct bundle_entry *a = p1, *b = p2;

	return strcmp(a->path, b->path);
}

int bundle_tree_scan(int dirfd, struct bundle_tree **tree_r,
		     const char **error_r)
{
	return bundle_tree_scan_filtered(dirfd, NULL, NULL, tree_r, error_r);
}

int bundle_tree_scan_filtered(int dirfd, bundle_scan_filter_t *filter,
			      void *context, struct bundle_tree **tree_r,
			      const char **error_r)
{
	return bundle_tree_scan_incremental(dirfd, filter, context, NULL,
					    tree_r, error_r);
}

int bundle_tree_scan_incremental(int dirfd, bundle_scan_filter_t *filter,
				 void *context, struct bundle_scan_prev *prev,
				 struct bundle_tree **tree_r,
				 const char **error_r)
{
	struct bundle_scan *scan;

	if (bundle_tree_scan_begin(dirfd, filter, context, prev, &scan,
				   error_r) < 0)
		return -1;
	return bundle_tree_scan_finish(&scan, tree_r, error_r);
}

int bundle_tree_scan_begin(int dirfd, bundle_scan_filter_t *filter,
			   void *context, struct bundle_scan_prev *prev,
			   struct bundle_scan **scan_r, const char **error_r)
{
	struct scan_ctx ctx = {
		.tree = bundle_tree_new(), .filter = filter,
		.context = context, .prev = prev,
	};
	struct bundle_scan *scan;
	struct stat st;
	int ret;

	if (prev != NULL) {
		ctx.lazy = prev->lazy;
		ctx.lazy_context = prev->lazy_context;
	}
	if (prev != NULL && prev->tree != NULL && prev->changed != NULL) {
		if (fstat(dirfd, &st) < 0) {
			*error_r = bundle_error("fstat() failed: %s",
						strerror(errno));
			bundle_tree_free(&ctx.tree);
			return -1;
		}
		ctx.dev = st.st_dev;
		ino_map_build(&ctx.map, prev->tree);
	} else {
		ctx.prev = NULL;
	}
	ret = scan_dir(&ctx, dirfd, "");
	free(ctx.map.inos);
	free(ctx.map.idx);
	free(ctx.links);
	if (prev != NULL) {
		prev->reused = ctx.reused;
		prev->read = ctx.read;
	}
	if (ret < 0) {
		*error_r = ctx.error;
		bundle_tree_free(&ctx.tree);
		free(ctx.refs);
		free(ctx.paths);
		return -1;
	}
	scan = bundle_xcalloc(1, sizeof(*scan));
	scan->tree = ctx.tree;
	scan->prev = ctx.prev == NULL ? NULL : ctx.prev->tree;
	scan->refs = ctx.refs;
	scan->ref_count = ctx.ref_count;
	scan->paths = ctx.paths;
	*scan_r = scan;
	return 0;
}

void bundle_scan_free(struct bundle_scan **_scan)
{
	struct bundle_scan *scan = *_scan;

	if (scan == NULL)
		return;
	*_scan = NULL;
	bundle_tree_free(&scan->tree);
	free(scan->refs);
	free(scan->paths);
	free(scan);
}

/* the entries of prev the walk took again, into the tree */
static void scan_copy_refs(struct bundle_scan *scan)
{
	for (size_t i = 0; i < scan->ref_count; i++) {
		const struct scan_ref *ref = &scan->refs[i];
		struct bundle_entry e =
			entry_copy_as(&scan->prev->entries[ref->prev_idx],
				      scan->paths + ref->path_off,
				      ref->path_len);

		bundle_tree_push(scan->tree, &e);
	}
}

int bundle_tree_scan_finish(struct bundle_scan **scan,
			    struct bundle_tree **tree_r, const char **error_r)
{
	struct bundle_tree *t;
	uint32_t *ids;
	bool *first;

	scan_copy_refs(*scan);
	t = (*scan)->tree;
	(*scan)->tree = NULL;
	bundle_scan_free(scan);
	if (t->count > 0)
		qsort(t->entries, t->count, sizeof(struct bundle_entry),
		      entry_cmp);
	/* a link id whose other names are outside the tree is no link */
	ids = bundle_link_map(t, NULL, &first);
	for (size_t i = 0; i < t->count; i++)
		t->entries[i].link_id = ids[i];
	free(ids);
	free(first);
	if (bundle_tree_check(t, error_r) < 0) {
		bundle_tree_free(&t);
		return -1;
	}
	t->checked = true;
	*tree_r = t;
	return 0;
}
