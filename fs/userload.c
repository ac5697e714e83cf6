/* userload.c: loading a user's tree from the store into an empty directory:
 * one LIST of the user's prefix, the newest base bundle (+ newest diff) of
 * the user root and of every folder found, written with bundle_tree_write(),
 * then mails no stub references put back from their metadata (see
 * userload.h). */
#include "userload.h"
#include "bundle.h"
#include "ids.h"
#include "mailpath.h"
#include "objstore.h"
#include "stub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* a folder placed from its mails' metadata: HEADs tried at most */
#define PLACE_HEAD_TRIES 3

struct ul_root {
	char guid[IDS_HEX_LEN + 1];	/* "" for the user root */
	char **bundle_keys;
	struct bundle_name *names;
	size_t bundle_count, bundle_alloc;
	char **mail_keys;		/* sorted after the listing */
	bool *referenced;
	size_t mail_count, mail_alloc;
	char *path;			/* NULL while not placed */
	bool tree_loaded;
};

struct ul_ctx {
	struct objstore *store;
	const char *user;
	int dir_fd;
	char prefix[OBJSTORE_KEY_MAX + 1];	/* "<h1>/<h2>/<user>/" */
	size_t prefix_len;
	struct ul_root *roots;		/* [0] is the user root */
	size_t count, alloc;
	size_t *queue;			/* placed roots still to load */
	size_t queue_head, queue_count;
	size_t last_ref_root;		/* mark_referenced()'s last hit */
	char **rebuild_dirs;		/* dbox-Mails dirs that got mails */
	size_t rebuild_count;
	bool found;
	struct userload_stats stats;
	userload_skip_cb *skip;
	void *skip_context;
};

static __thread char ul_errbuf[1024];

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size == 0 ? 1 : size);
	if (p == NULL)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		abort();
	return p;
}

static char *path_join(const char *a, const char *b)
{
	size_t alen = strlen(a), blen = strlen(b);
	char *p;

	if (alen == 0)
		return xstrdup(b);
	p = xrealloc(NULL, alen + 1 + blen + 1);
	memcpy(p, a, alen);
	p[alen] = '/';
	memcpy(p + alen + 1, b, blen + 1);
	return p;
}

static int ul_fail(const char **error_r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int ul_fail(const char **error_r, int err, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(ul_errbuf, sizeof(ul_errbuf), fmt, args);
	va_end(args);
	*error_r = ul_errbuf;
	errno = err;
	return -1;
}

/* store errors that retrying later may fix: the load fails */
static bool store_error_is_fatal(void)
{
	switch (objstore_errcode()) {
	case OBJSTORE_ERR_NOT_FOUND:
	case OBJSTORE_ERR_TOO_BIG:
	case OBJSTORE_ERR_INVALID:
		return false;
	default:
		return true;
	}
}

/* local errors caused by the shape of an untrusted path, not the disk */
static bool local_error_is_path(int err)
{
	return err == ENOTDIR || err == EEXIST || err == ELOOP ||
		err == ENAMETOOLONG || err == EISDIR;
}

static size_t root_get(struct ul_ctx *ctx, const char *guid)
{
	for (size_t i = ctx->count; i > 0; i--) {
		if (strcmp(ctx->roots[i - 1].guid, guid) == 0)
			return i - 1;
	}
	if (ctx->count == ctx->alloc) {
		ctx->alloc = ctx->alloc == 0 ? 8 : ctx->alloc * 2;
		ctx->roots = xrealloc(ctx->roots,
				      ctx->alloc * sizeof(*ctx->roots));
		/* each root is queued at most once */
		ctx->queue = xrealloc(ctx->queue,
				      ctx->alloc * sizeof(*ctx->queue));
	}
	memset(&ctx->roots[ctx->count], 0, sizeof(ctx->roots[0]));
	snprintf(ctx->roots[ctx->count].guid, IDS_HEX_LEN + 1, "%s", guid);
	if (guid[0] != '\0')
		ctx->stats.folders_found++;
	return ctx->count++;
}

static void root_add_bundle(struct ul_root *root, const char *key,
			    const struct bundle_name *name)
{
	if (root->bundle_count == root->bundle_alloc) {
		root->bundle_alloc = root->bundle_alloc == 0 ? 4 :
			root->bundle_alloc * 2;
		root->bundle_keys = xrealloc(root->bundle_keys,
			root->bundle_alloc * sizeof(*root->bundle_keys));
		root->names = xrealloc(root->names,
			root->bundle_alloc * sizeof(*root->names));
	}
	root->bundle_keys[root->bundle_count] = xstrdup(key);
	root->names[root->bundle_count++] = *name;
}

static void root_add_mail(struct ul_root *root, const char *key)
{
	if (root->mail_count == root->mail_alloc) {
		root->mail_alloc = root->mail_alloc == 0 ? 16 :
			root->mail_alloc * 2;
		root->mail_keys = xrealloc(root->mail_keys,
			root->mail_alloc * sizeof(*root->mail_keys));
	}
	root->mail_keys[root->mail_count++] = xstrdup(key);
}

static void add_bundle_key(struct ul_ctx *ctx, const char *guid,
			   const char *key, const char *name)
{
	struct bundle_name bname;
	const char *error;

	if (bundle_name_parse(name, &bname, &error) < 0) {
		fuse_log(FUSE_LOG_WARNING, "userload(%s): ignoring %s: %s\n",
			 ctx->user, key, error);
		return;
	}
	root_add_bundle(&ctx->roots[root_get(ctx, guid)], key, &bname);
	ctx->found = true;
}

static int list_cb(const struct objstore_list_entry *entry, void *context)
{
	struct ul_ctx *ctx = context;
	const char *rest = entry->key + ctx->prefix_len;
	char guid[IDS_HEX_LEN + 1];

	if (entry->is_prefix ||
	    strncmp(entry->key, ctx->prefix, ctx->prefix_len) != 0)
		goto ignore;
	if (strncmp(rest, "idx/", 4) == 0 && strchr(rest + 4, '/') == NULL) {
		add_bundle_key(ctx, "", entry->key, rest + 4);
		return 0;
	}
	if (strncmp(rest, "mailboxes/", 10) != 0)
		goto ignore;
	rest += 10;
	if (strlen(rest) <= IDS_HEX_LEN || rest[IDS_HEX_LEN] != '/')
		goto ignore;
	memcpy(guid, rest, IDS_HEX_LEN);
	guid[IDS_HEX_LEN] = '\0';
	if (!ids_is_hex_id(guid))
		goto ignore;
	rest += IDS_HEX_LEN + 1;
	if (strncmp(rest, "idx/", 4) == 0 && strchr(rest + 4, '/') == NULL) {
		add_bundle_key(ctx, guid, entry->key, rest + 4);
		return 0;
	}
	if (ids_is_hex_id(rest)) {
		root_add_mail(&ctx->roots[root_get(ctx, guid)], entry->key);
		ctx->found = true;
		return 0;
	}
ignore:
	fuse_log(FUSE_LOG_DEBUG, "userload(%s): ignoring object %s\n",
		 ctx->user, entry->key);
	return 0;
}

static int str_ptr_cmp(const void *p1, const void *p2)
{
	return strcmp(*(char *const *)p1, *(char *const *)p2);
}

/* Is key "P/mailboxes/<G>/<oid>" of this user?  Fills guid_r. */
static bool mail_key_parse(const struct ul_ctx *ctx, const char *key,
			   char guid_r[IDS_HEX_LEN + 1])
{
	const char *p = key + ctx->prefix_len;

	if (strncmp(key, ctx->prefix, ctx->prefix_len) != 0 ||
	    strncmp(p, "mailboxes/", 10) != 0)
		return false;
	p += 10;
	if (strlen(p) != IDS_HEX_LEN * 2 + 1 || p[IDS_HEX_LEN] != '/')
		return false;
	memcpy(guid_r, p, IDS_HEX_LEN);
	guid_r[IDS_HEX_LEN] = '\0';
	return ids_is_hex_id(guid_r) && ids_is_hex_id(p + IDS_HEX_LEN + 1);
}

/* GET and decode key, expected to be named name.  Returns 1 with
   *bundle_r, 0 if it is bad or gone (logged), -1 on a store error. */
static int fetch_bundle(struct ul_ctx *ctx, const char *key,
			const struct bundle_name *name,
			struct bundle **bundle_r, const char **error_r)
{
	struct bundle_name hdr_name;
	const char *error;
	size_t size;
	void *data;
	int ret;

	if (objstore_get(ctx->store, key, 0, OBJSTORE_TO_END,
			 USERLOAD_BUNDLE_MAX, &data, &size) < 0) {
		if (store_error_is_fatal())
			return ul_fail(error_r, EIO, "%s", objstore_error());
		fuse_log(FUSE_LOG_ERR, "userload(%s): bundle %s: %s\n",
			 ctx->user, key, objstore_error());
		ctx->stats.bundles_rejected++;
		return 0;
	}
	ctx->stats.bundles_fetched++;
	ret = bundle_decode(data, size, USERLOAD_BUNDLE_MAX, bundle_r, &error);
	free(data);
	if (ret < 0) {
		fuse_log(FUSE_LOG_ERR, "userload(%s): corrupt bundle %s: %s\n",
			 ctx->user, key, error);
		ctx->stats.bundles_rejected++;
		return 0;
	}
	bundle_name_from_info(&(*bundle_r)->info, &hdr_name);
	if (bundle_name_cmp(&hdr_name, name) != 0) {
		char buf[BUNDLE_NAME_DIFF_LEN + 1];

		bundle_name_format(&hdr_name, buf, sizeof(buf));
		fuse_log(FUSE_LOG_ERR, "userload(%s): corrupt bundle %s: its "
			 "header is of bundle %s\n", ctx->user, key, buf);
		bundle_free(bundle_r);
		ctx->stats.bundles_rejected++;
		return 0;
	}
	return 1;
}

struct ul_diff {
	struct bundle *bundle;
	const char *key;
};

static int ul_diff_cmp_desc(const void *p1, const void *p2)
{
	const struct ul_diff *a = p1, *b = p2;

	return bundle_diff_info_cmp(&b->bundle->info, &a->bundle->info);
}

/* The diffs of base: fetched, applied newest first until one applies. */
static int apply_diffs(struct ul_ctx *ctx, struct ul_root *root,
		       const size_t *diff_idx, size_t diff_count,
		       struct bundle_tree *tree, const char **error_r)
{
	struct ul_diff *diffs = xrealloc(NULL, diff_count * sizeof(*diffs));
	size_t n = 0, i;
	const char *error;
	int ret = 0;

	for (i = 0; i < diff_count && ret == 0; i++) {
		size_t k = diff_idx[i];

		diffs[n].key = root->bundle_keys[k];
		ret = fetch_bundle(ctx, root->bundle_keys[k], &root->names[k],
				   &diffs[n].bundle, error_r);
		if (ret > 0) {
			n++;
			ret = 0;
		}
	}
	if (ret == 0 && n > 0) {
		qsort(diffs, n, sizeof(*diffs), ul_diff_cmp_desc);
		if (n > 1 && diffs[0].bundle->info.seq ==
		    diffs[1].bundle->info.seq) {
			fuse_log(FUSE_LOG_WARNING, "userload(%s): diffs %s and "
				 "%s have the same seq (two writers): using "
				 "the first\n", ctx->user, diffs[0].key,
				 diffs[1].key);
		}
		for (i = 0; i < n; i++) {
			if (bundle_apply_diff(tree, diffs[i].bundle->diff,
					      &error) == 0)
				break;
			fuse_log(FUSE_LOG_ERR, "userload(%s): diff bundle %s "
				 "does not apply: %s\n", ctx->user,
				 diffs[i].key, error);
			ctx->stats.bundles_rejected++;
		}
	}
	for (i = 0; i < n; i++)
		bundle_free(&diffs[i].bundle);
	free(diffs);
	return ret;
}

/* Drop stubs whose key is not one of this user's mail objects. */
static void tree_drop_foreign_stubs(struct ul_ctx *ctx,
				    struct bundle_tree **_tree)
{
	struct bundle_tree *tree = *_tree, *clean;
	char guid[IDS_HEX_LEN + 1];
	const char *error;
	size_t i, bad = 0;

	for (i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    !mail_key_parse(ctx, e->key, guid))
			bad++;
	}
	if (bad == 0)
		return;
	clean = bundle_tree_new();
	for (i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    !mail_key_parse(ctx, e->key, guid)) {
			fuse_log(FUSE_LOG_ERR, "userload(%s): dropping stub "
				 "%s: key %.200s is not a mail of this user\n",
				 ctx->user, e->path, e->key);
			continue;
		}
		if (bundle_tree_add(clean, e, &error) < 0)
			abort(); /* a checked tree's entries always add */
	}
	bundle_tree_free(_tree);
	*_tree = clean;
}

/* The tree of root from its bundles: *tree_r NULL if it has none usable. */
static int load_tree(struct ul_ctx *ctx, struct ul_root *root,
		     struct bundle_tree **tree_r, const char **error_r)
{
	size_t *diff_idx, diff_count;
	struct bundle *base;
	long base_idx;
	int ret;

	*tree_r = NULL;
	if (root->bundle_count == 0)
		return 0;
	diff_idx = xrealloc(NULL, root->bundle_count * sizeof(*diff_idx));
	bundle_names_select(root->names, root->bundle_count, &base_idx,
			    diff_idx, &diff_count);
	if (base_idx < 0) {
		fuse_log(FUSE_LOG_ERR, "userload(%s): %s has diff bundles but "
			 "no base (e.g. %s)\n", ctx->user,
			 root->guid[0] == '\0' ? "the user root" : root->guid,
			 root->bundle_keys[0]);
		free(diff_idx);
		return 0;
	}
	ret = fetch_bundle(ctx, root->bundle_keys[base_idx],
			   &root->names[base_idx], &base, error_r);
	if (ret <= 0) {
		free(diff_idx);
		return ret;
	}
	*tree_r = base->tree;
	base->tree = NULL;
	bundle_free(&base);
	ret = apply_diffs(ctx, root, diff_idx, diff_count, *tree_r, error_r);
	free(diff_idx);
	if (ret < 0) {
		bundle_tree_free(tree_r);
		return -1;
	}
	tree_drop_foreign_stubs(ctx, tree_r);
	return 0;
}

static int dir_is_empty(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	int ret = 1;

	if (dfd < 0)
		return -1;
	if ((dir = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") != 0 &&
		    strcmp(d->d_name, "..") != 0) {
			ret = 0;
			break;
		}
	}
	closedir(dir);
	return ret;
}

/* remove what bundle_tree_write() created of tree below fd */
static int tree_unwrite(int fd, const struct bundle_tree *tree)
{
	for (size_t i = tree->count; i > 0; i--) {
		const struct bundle_entry *e = &tree->entries[i - 1];

		if (unlinkat(fd, e->path, e->type == BUNDLE_ENTRY_DIR ?
			     AT_REMOVEDIR : 0) < 0 &&
		    errno != ENOENT && errno != ENAMETOOLONG)
			return -1;
	}
	return 0;
}

static void mark_referenced(struct ul_ctx *ctx, const char *key)
{
	char guid[IDS_HEX_LEN + 1];

	if (!mail_key_parse(ctx, key, guid))
		return;
	/* stubs of one tree are mostly of one folder */
	if (ctx->last_ref_root == 0 || ctx->last_ref_root >= ctx->count ||
	    strcmp(ctx->roots[ctx->last_ref_root].guid, guid) != 0) {
		size_t i;

		for (i = 1; i < ctx->count; i++) {
			if (strcmp(ctx->roots[i].guid, guid) == 0)
				break;
		}
		if (i == ctx->count)
			return;
		ctx->last_ref_root = i;
	}
	struct ul_root *root = &ctx->roots[ctx->last_ref_root];
	char *const *found;

	if (root->mail_count == 0)
		return;
	found = bsearch(&key, root->mail_keys, root->mail_count,
			sizeof(char *), str_ptr_cmp);
	if (found != NULL)
		root->referenced[found - root->mail_keys] = true;
}

static void place_root(struct ul_ctx *ctx, size_t idx, const char *path)
{
	ctx->roots[idx].path = xstrdup(path);
	ctx->queue[ctx->queue_count++] = idx;
}

/* tree was written at path: mark its stubs' objects, queue its folders */
static void tree_written(struct ul_ctx *ctx, const char *path,
			 const struct bundle_tree *tree)
{
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];
		char *full;
		size_t idx;

		if (e->type == BUNDLE_ENTRY_STUB)
			mark_referenced(ctx, e->key);
		if (e->type != BUNDLE_ENTRY_DIR || e->guid[0] == '\0')
			continue;
		full = path_join(path, e->path);
		idx = root_get(ctx, e->guid);
		if (ctx->roots[idx].path != NULL) {
			fuse_log(FUSE_LOG_ERR, "userload(%s): folder %s is "
				 "both %s and %s: %s left empty, without a "
				 "GUID\n", ctx->user, e->guid,
				 ctx->roots[idx].path, full, full);
			int fd = openat(ctx->dir_fd, full, O_RDONLY |
					O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				(void)fd_removexattr(fd, STUB_XATTR_GUID);
				close(fd);
			}
		} else {
			place_root(ctx, idx, full);
		}
		free(full);
	}
}

/* Load root idx (placed) into its directory. */
static int load_root(struct ul_ctx *ctx, size_t idx, const char **error_r)
{
	struct ul_root *root = &ctx->roots[idx];
	struct bundle_tree *tree;
	const char *error, *what;
	struct stat st;
	int fd, ret;

	what = root->path[0] == '\0' ? "the user root" : root->path;
	if (load_tree(ctx, root, &tree, error_r) < 0)
		return -1;
	if (tree == NULL)
		return 0;
	fd = openat(ctx->dir_fd, root->path[0] == '\0' ? "." : root->path,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd < 0 && local_error_is_path(errno)) {
			fuse_log(FUSE_LOG_ERR, "userload(%s): folder %s: "
				 "open(%s) failed: %s: its bundle is not "
				 "loaded\n", ctx->user, root->guid, what,
				 strerror(errno));
			ret = 0;
			goto out;
		}
		ret = ul_fail(error_r, errno, "open(%s) failed: %s", what,
			      strerror(errno));
		goto out;
	}
	if ((ret = dir_is_empty(fd)) <= 0) {
		if (ret < 0) {
			ret = ul_fail(error_r, errno, "readdir(%s) failed: %s",
				      what, strerror(errno));
			goto out;
		}
		fuse_log(FUSE_LOG_ERR, "userload(%s): folder %s (%s) is not "
			 "empty in its parent's tree: its bundle is not "
			 "loaded\n", ctx->user, root->guid, what);
		ret = 0;
		goto out;
	}
	if (bundle_tree_write(tree, fd, &error) < 0) {
		int err = errno;

		if (!local_error_is_path(err) && err != EINVAL) {
			ret = ul_fail(error_r, err, "writing the tree of %s "
				      "failed: %s", what, error);
			goto out;
		}
		/* the bundle's fault, not the disk's: as if it were absent */
		fuse_log(FUSE_LOG_ERR, "userload(%s): the tree of %s cannot "
			 "be written (%s): its bundle is not loaded\n",
			 ctx->user, what, error);
		ctx->stats.bundles_rejected++;
		if (tree_unwrite(fd, tree) < 0 || dir_is_empty(fd) <= 0) {
			ret = ul_fail(error_r, errno, "cleaning up %s failed: "
				      "%s", what, strerror(errno));
			goto out;
		}
	} else {
		root->tree_loaded = true;
		ctx->stats.roots_loaded++;
		tree_written(ctx, root->path, tree);
	}
	/* the folder directory's own mtime is its parent tree's */
	struct timespec ts[2] = { { 0, UTIME_OMIT }, st.st_mtim };
	if (futimens(fd, ts) < 0) {
		ret = ul_fail(error_r, errno, "futimens(%s) failed: %s", what,
			      strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	bundle_tree_free(&tree);
	return ret;
}

static int process_queue(struct ul_ctx *ctx, const char **error_r)
{
	while (ctx->queue_head < ctx->queue_count) {
		if (load_root(ctx, ctx->queue[ctx->queue_head++], error_r) < 0)
			return -1;
	}
	return 0;
}

/* Open parent_fd/name as a directory, creating it if missing with the
   parent's owner and permission bits.  Returns an fd or -1 with errno. */
static int subdir_open(int parent_fd, const char *name)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(parent_fd, name, flags);
	struct stat st;

	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (fstat(parent_fd, &st) < 0 ||
	    mkdirat(parent_fd, name, 0700) < 0 ||
	    fchmodat(parent_fd, name, st.st_mode & 02777, 0) < 0 ||
	    (geteuid() == 0 &&
	     fchownat(parent_fd, name, st.st_uid, st.st_gid,
		      AT_SYMLINK_NOFOLLOW) < 0))
		return -1;
	return openat(parent_fd, name, flags);
}

/* subdir_open() for each segment of path ("" = dir_fd itself) */
static int dir_open_create(struct ul_ctx *ctx, const char *path)
{
	char *copy = xstrdup(path), *seg, *next;
	int fd = openat(ctx->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (seg = copy; fd >= 0 && *seg != '\0'; seg = next) {
		int sub, saved;

		next = strchr(seg, '/');
		if (next != NULL)
			*next++ = '\0';
		else
			next = seg + strlen(seg);
		sub = subdir_open(fd, seg);
		saved = errno;
		close(fd);
		errno = saved;
		fd = sub;
	}
	free(copy);
	return fd;
}

/* NULL if the mail's metadata is usable, else why not */
static const char *mail_meta_check(const char *path, const char *name,
				   const char **last_r)
{
	const char *error, *last;

	if (path == NULL || name == NULL)
		return "no path/name metadata";
	if (bundle_path_check(path, strlen(path), &error) < 0)
		return "invalid path metadata";
	last = strrchr(path, '/');
	last = last == NULL ? path : last + 1;
	if (strcmp(last, "cur") != 0 && strcmp(last, "new") != 0 &&
	    strcmp(last, "dbox-Mails") != 0)
		return "path metadata is not a cur, new or dbox-Mails "
			"directory";
	if (name[0] == '\0' || strlen(name) > MAILPATH_NAME_MAX ||
	    strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return "invalid name metadata";
	if (strcmp(last, "dbox-Mails") == 0 &&
	    !mailpath_is_sdbox_mail_name(name))
		return "name metadata is not an sdbox mail name (u.N)";
	*last_r = last;
	return NULL;
}

/* the "mtime" metadata if valid, else the object's Last-Modified */
static time_t mail_mtime(const struct objstore_stat *st)
{
	const char *value = objstore_stat_meta(st, "mtime");
	long long secs = 0;
	size_t i;

	if (value == NULL || value[0] == '\0' || strlen(value) > 18)
		return st->mtime;
	for (i = 0; value[i] != '\0'; i++) {
		if (value[i] < '0' || value[i] > '9')
			return st->mtime;
		secs = secs * 10 + (value[i] - '0');
	}
	return (time_t)secs;
}

/* HEAD mail key.  Returns 1 with stat_r and the checked metadata, 0 if it
   is gone or unusable (logged, counted), -1 on a store error. */
static int mail_head(struct ul_ctx *ctx, const char *key,
		     struct objstore_stat *stat_r, const char **path_r,
		     const char **name_r, const char **last_r,
		     const char **error_r)
{
	const char *reason;

	if (objstore_head(ctx->store, key, stat_r) < 0) {
		if (store_error_is_fatal())
			return ul_fail(error_r, EIO, "%s", objstore_error());
		fuse_log(FUSE_LOG_ERR, "userload(%s): mail %s not put back: "
			 "%s\n", ctx->user, key, objstore_error());
		ctx->stats.mails_skipped++;
		return 0;
	}
	*path_r = objstore_stat_meta(stat_r, "path");
	*name_r = objstore_stat_meta(stat_r, "name");
	reason = mail_meta_check(*path_r, *name_r, last_r);
	if (reason == NULL && stat_r->size > INT64_MAX)
		reason = "invalid size";
	if (reason != NULL) {
		fuse_log(FUSE_LOG_ERR, "userload(%s): mail %s not put back: "
			 "%s\n", ctx->user, key, reason);
		objstore_stat_free(stat_r);
		ctx->stats.mails_skipped++;
		return 0;
	}
	return 1;
}

/* A folder directory of an unplaced root: give it the root's GUID if it
   has none.  Returns true if it is (now) that folder's directory. */
static bool folder_claim(struct ul_ctx *ctx, struct ul_root *root, int fd,
			 const char *folder)
{
	char guid[IDS_HEX_LEN + 1];
	ssize_t len = fd_getxattr(fd, STUB_XATTR_GUID, guid, IDS_HEX_LEN);

	if (len == IDS_HEX_LEN) {
		guid[IDS_HEX_LEN] = '\0';
		if (strcmp(guid, root->guid) == 0)
			return true;
	} else if (len < 0 && errno == ENODATA) {
		if (fd_setxattr(fd, STUB_XATTR_GUID, root->guid, IDS_HEX_LEN,
				XATTR_CREATE) == 0)
			return true;
	}
	fuse_log(FUSE_LOG_WARNING, "userload(%s): mails of folder %s go to "
		 "'%s', which is another folder\n", ctx->user, root->guid,
		 folder[0] == '\0' ? "." : folder);
	return false;
}

static void rebuild_dir_add(struct ul_ctx *ctx, const char *path)
{
	for (size_t i = 0; i < ctx->rebuild_count; i++) {
		if (strcmp(ctx->rebuild_dirs[i], path) == 0)
			return;
	}
	ctx->rebuild_dirs = xrealloc(ctx->rebuild_dirs,
		(ctx->rebuild_count + 1) * sizeof(*ctx->rebuild_dirs));
	ctx->rebuild_dirs[ctx->rebuild_count++] = xstrdup(path);
}

/* create the stub name in dest_fd; 0 if the name is taken (logged) */
static int stub_create(struct ul_ctx *ctx, int dest_fd, const char *dest,
		       const char *name, const struct stub *stub,
		       time_t mtime, const char **error_r)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { mtime, 0 } };
	struct stat st;
	int fd;

	if (fstat(dest_fd, &st) < 0)
		return ul_fail(error_r, errno, "fstat(%s) failed: %s", dest,
			       strerror(errno));
	fd = openat(dest_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		fuse_log(FUSE_LOG_WARNING, "userload(%s): mail %s not put "
			 "back: %s/%s exists\n", ctx->user, stub->key, dest,
			 name);
		ctx->stats.mails_skipped++;
		return 0;
	}
	if (fd < 0 || stub_write(fd, stub) < 0 ||
	    fchmod(fd, st.st_mode & 0666) < 0 ||
	    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) ||
	    futimens(fd, ts) < 0) {
		int saved = errno;

		if (fd >= 0) {
			close(fd);
			(void)unlinkat(dest_fd, name, 0);
		}
		return ul_fail(error_r, saved, "creating stub %s/%s failed: %s",
			       dest, name, strerror(saved));
	}
	close(fd);
	ctx->stats.mails_put_back++;
	return 1;
}

/* Put mail m of root idx back as a stub. */
static int put_back(struct ul_ctx *ctx, size_t idx, size_t m,
		    const char **error_r)
{
	struct ul_root *root = &ctx->roots[idx];
	const char *path, *name, *last, *slash;
	char *folder, *dest = NULL;
	int folder_fd = -1, dest_fd = -1, ret;
	struct objstore_stat st;
	struct stub stub;

	if (ctx->skip != NULL && ctx->skip(root->mail_keys[m],
					   ctx->skip_context)) {
		/* garbage this machine has not deleted yet */
		ctx->stats.mails_skipped++;
		return 0;
	}
	ret = mail_head(ctx, root->mail_keys[m], &st, &path, &name, &last,
			error_r);
	if (ret <= 0)
		return ret;
	slash = strrchr(path, '/');
	folder = root->path != NULL ? xstrdup(root->path) :
		slash == NULL ? xstrdup("") :
		strndup(path, (size_t)(slash - path));
	if (folder == NULL)
		abort();
	dest = path_join(folder, last);
	if ((folder_fd = dir_open_create(ctx, folder)) < 0 ||
	    (dest_fd = subdir_open(folder_fd, last)) < 0) {
		if (!local_error_is_path(errno)) {
			ret = ul_fail(error_r, errno, "creating %s failed: %s",
				      dest, strerror(errno));
			goto out;
		}
		fuse_log(FUSE_LOG_ERR, "userload(%s): mail %s not put back: "
			 "creating %s failed: %s\n", ctx->user,
			 root->mail_keys[m], dest, strerror(errno));
		ctx->stats.mails_skipped++;
		ret = 0;
		goto out;
	}
	if (root->path == NULL && folder_claim(ctx, root, folder_fd, folder))
		root->path = xstrdup(folder);
	if (strcmp(last, "dbox-Mails") != 0) {
		/* a maildir folder has all three */
		static const char *const subdirs[] = { "cur", "new", "tmp" };

		for (size_t i = 0; i < 3; i++) {
			int fd = subdir_open(folder_fd, subdirs[i]);

			if (fd >= 0)
				close(fd);
		}
	}
	snprintf(stub.key, sizeof(stub.key), "%s", root->mail_keys[m]);
	stub.size = st.size;
	ret = stub_create(ctx, dest_fd, dest, name, &stub, mail_mtime(&st),
			  error_r);
	if (ret > 0 && strcmp(last, "dbox-Mails") == 0)
		rebuild_dir_add(ctx, dest);
out:
	if (dest_fd >= 0)
		close(dest_fd);
	if (folder_fd >= 0)
		close(folder_fd);
	free(folder);
	free(dest);
	objstore_stat_free(&st);
	return ret < 0 ? -1 : 0;
}

/* A folder with bundles that no tree mentions: place it where one of its
   mails says, if that directory is free. */
static int place_from_mails(struct ul_ctx *ctx, size_t idx,
			    const char **error_r)
{
	const char *path, *name, *last, *slash;
	struct objstore_stat st;
	char *folder;
	int fd, ret;

	for (size_t m = 0; m < ctx->roots[idx].mail_count &&
	     m < PLACE_HEAD_TRIES; m++) {
		ret = mail_head(ctx, ctx->roots[idx].mail_keys[m], &st, &path,
				&name, &last, error_r);
		if (ret < 0)
			return -1;
		if (ret == 0)
			continue;
		slash = strrchr(path, '/');
		folder = slash == NULL ? xstrdup("") :
			strndup(path, (size_t)(slash - path));
		objstore_stat_free(&st);
		if (folder == NULL)
			abort();
		fd = dir_open_create(ctx, folder);
		if (fd < 0 && !local_error_is_path(errno)) {
			ret = ul_fail(error_r, errno, "creating %s failed: %s",
				      folder, strerror(errno));
			free(folder);
			return ret;
		}
		if (fd >= 0 && dir_is_empty(fd) > 0 &&
		    folder_claim(ctx, &ctx->roots[idx], fd, folder)) {
			fuse_log(FUSE_LOG_WARNING, "userload(%s): folder %s is "
				 "in no tree: loaded into %s (from its "
				 "mails)\n", ctx->user, ctx->roots[idx].guid,
				 folder);
			place_root(ctx, idx, folder);
		} else {
			fuse_log(FUSE_LOG_ERR, "userload(%s): folder %s is in "
				 "no tree and its mails' directory %s is not "
				 "free: its bundles are not loaded\n",
				 ctx->user, ctx->roots[idx].guid, folder);
		}
		if (fd >= 0)
			close(fd);
		free(folder);
		return process_queue(ctx, error_r);
	}
	fuse_log(FUSE_LOG_ERR, "userload(%s): folder %s is in no tree and "
		 "none of its mails says where: its bundles are not loaded\n",
		 ctx->user, ctx->roots[idx].guid);
	return 0;
}

/* dir_fd gets the most common owner of its top-level entries, mode 0700 */
static int fix_top_owner(struct ul_ctx *ctx, const char **error_r)
{
	struct { uid_t uid; gid_t gid; unsigned int n; } owners[16];
	unsigned int owner_count = 0, best = 0;
	int dfd = openat(ctx->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	struct stat st;
	DIR *dir;

	if (dfd < 0 || (dir = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return ul_fail(error_r, errno, "opendir(user dir) failed: %s",
			       strerror(errno));
	}
	while ((d = readdir(dir)) != NULL) {
		unsigned int i;

		if (strcmp(d->d_name, ".") == 0 ||
		    strcmp(d->d_name, "..") == 0 ||
		    fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		for (i = 0; i < owner_count; i++) {
			if (owners[i].uid == st.st_uid &&
			    owners[i].gid == st.st_gid)
				break;
		}
		if (i == owner_count) {
			if (owner_count == 16)
				continue;
			owners[owner_count].uid = st.st_uid;
			owners[owner_count].gid = st.st_gid;
			owners[owner_count++].n = 0;
		}
		if (++owners[i].n > owners[best].n)
			best = i;
	}
	closedir(dir);
	if (owner_count > 0 && geteuid() == 0 &&
	    fchownat(ctx->dir_fd, ".", owners[best].uid, owners[best].gid,
		     0) < 0)
		return ul_fail(error_r, errno, "chown(user dir) failed: %s",
			       strerror(errno));
	if (fchmodat(ctx->dir_fd, ".", 0700, 0) < 0)
		return ul_fail(error_r, errno, "chmod(user dir) failed: %s",
			       strerror(errno));
	return 0;
}

/* A dovecot.index.log record that sets MAIL_INDEX_HDR_FLAG_FSCKD (0x4) in
   the index header's flags (offset 20): a header update, 16 bytes, as
   Dovecot 2.3 writes it (size as mail_index_uint32_to_offset(16), type
   MAIL_TRANSACTION_EXTERNAL | MAIL_TRANSACTION_HEADER_UPDATE, then
   offset 20, size 4, value 4, little-endian).  sdbox rebuilds an index
   with that flag from its u.N files, keeping UIDs, UIDVALIDITY, flags and
   keywords of the mails the index knows. */
static const unsigned char fsckd_record[16] = {
	0x80, 0x80, 0x80, 0x84, 0x20, 0x00, 0x00, 0x10,
	0x14, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00,
};
#define INDEX_HDR_FLAGS_OFFSET 20
#define INDEX_HDR_FLAG_FSCKD 0x4

int userload_sdbox_force_rebuild(int dbox_mails_dir_fd)
{
	unsigned char flags[4];
	int fd;

	fd = openat(dbox_mails_dir_fd, "dovecot.index.log",
		    O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t ret = write(fd, fsckd_record, sizeof(fsckd_record));
		int saved = errno;

		close(fd);
		if (ret != (ssize_t)sizeof(fsckd_record)) {
			errno = ret < 0 ? saved : ENOSPC;
			return -1;
		}
		return 1;
	}
	if (errno != ENOENT)
		return -1;
	/* no log (rotated away): the flag goes into the index itself */
	fd = openat(dbox_mails_dir_fd, "dovecot.index",
		    O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (pread(fd, flags, sizeof(flags), INDEX_HDR_FLAGS_OFFSET) !=
	    (ssize_t)sizeof(flags)) {
		close(fd);
		return 0;	/* too short to be an index: nothing to mark */
	}
	flags[0] |= INDEX_HDR_FLAG_FSCKD;
	if (pwrite(fd, flags, 1, INDEX_HDR_FLAGS_OFFSET) != 1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 1;
}

static int rebuild_sdbox_indexes(struct ul_ctx *ctx, const char **error_r)
{
	for (size_t i = 0; i < ctx->rebuild_count; i++) {
		const char *path = ctx->rebuild_dirs[i];
		int fd = openat(ctx->dir_fd, path, O_RDONLY | O_DIRECTORY |
				O_NOFOLLOW | O_CLOEXEC);
		int ret = 0;

		if (fd >= 0) {
			ret = userload_sdbox_force_rebuild(fd);
			if (ret == 0) {
				fuse_log(FUSE_LOG_WARNING, "userload(%s): %s "
					 "has no index to mark for a rebuild: "
					 "Dovecot finds its mails at its next "
					 "save there\n", ctx->user, path);
			}
		}
		if (fd < 0 || ret < 0) {
			ret = ul_fail(error_r, errno, "rebuilding the index of "
				      "%s failed: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return ret;
		}
		close(fd);
	}
	return 0;
}

static int load_all(struct ul_ctx *ctx, const char **error_r)
{
	size_t i, m;

	for (i = 0; i < ctx->count; i++) {
		struct ul_root *root = &ctx->roots[i];

		if (root->mail_count == 0)
			continue;
		qsort(root->mail_keys, root->mail_count, sizeof(char *),
		      str_ptr_cmp);
		root->referenced = calloc(root->mail_count, sizeof(bool));
		if (root->referenced == NULL)
			abort();
	}
	place_root(ctx, 0, "");
	if (process_queue(ctx, error_r) < 0)
		return -1;
	for (i = 1; i < ctx->count; i++) {
		if (ctx->roots[i].path == NULL &&
		    ctx->roots[i].bundle_count > 0 &&
		    place_from_mails(ctx, i, error_r) < 0)
			return -1;
	}
	if (fix_top_owner(ctx, error_r) < 0)
		return -1;
	/* the rescan: mails no stub references */
	for (i = 1; i < ctx->count; i++) {
		for (m = 0; m < ctx->roots[i].mail_count; m++) {
			if (!ctx->roots[i].referenced[m] &&
			    put_back(ctx, i, m, error_r) < 0)
				return -1;
		}
	}
	return rebuild_sdbox_indexes(ctx, error_r);
}

static struct userload_roots *roots_export(struct ul_ctx *ctx)
{
	struct userload_roots *roots = calloc(1, sizeof(*roots));

	if (roots == NULL)
		abort();
	roots->roots = xrealloc(NULL, ctx->count * sizeof(*roots->roots));
	for (size_t i = 0; i < ctx->count; i++) {
		struct ul_root *root = &ctx->roots[i];
		struct userload_root *r = &roots->roots[roots->count];

		if (i > 0 && root->path == NULL && root->bundle_count == 0)
			continue;
		memset(r, 0, sizeof(*r));
		r->path = root->path;
		root->path = NULL;
		if (i == 0 && r->path == NULL)
			r->path = xstrdup("");
		memcpy(r->guid, root->guid, sizeof(r->guid));
		r->tree_loaded = root->tree_loaded;
		r->bundle_keys = root->bundle_keys;
		r->bundle_key_count = root->bundle_count;
		root->bundle_keys = NULL;
		root->bundle_count = 0;
		roots->count++;
	}
	return roots;
}

void userload_roots_free(struct userload_roots **_roots)
{
	struct userload_roots *roots = *_roots;

	if (roots == NULL)
		return;
	*_roots = NULL;
	for (size_t i = 0; i < roots->count; i++) {
		for (size_t j = 0; j < roots->roots[i].bundle_key_count; j++)
			free(roots->roots[i].bundle_keys[j]);
		free(roots->roots[i].bundle_keys);
		free(roots->roots[i].path);
	}
	free(roots->roots);
	free(roots);
}

static void ctx_free(struct ul_ctx *ctx)
{
	for (size_t i = 0; i < ctx->count; i++) {
		struct ul_root *root = &ctx->roots[i];

		for (size_t j = 0; j < root->bundle_count; j++)
			free(root->bundle_keys[j]);
		for (size_t j = 0; j < root->mail_count; j++)
			free(root->mail_keys[j]);
		free(root->bundle_keys);
		free(root->names);
		free(root->mail_keys);
		free(root->referenced);
		free(root->path);
	}
	for (size_t i = 0; i < ctx->rebuild_count; i++)
		free(ctx->rebuild_dirs[i]);
	free(ctx->rebuild_dirs);
	free(ctx->roots);
	free(ctx->queue);
}

int userload_load(struct objstore *store, const char *user, int dir_fd,
		  struct userload_stats *stats_r,
		  struct userload_roots **roots_r, const char **error_r)
{
	return userload_load_filtered(store, user, dir_fd, NULL, NULL,
				      stats_r, roots_r, error_r);
}

int userload_load_filtered(struct objstore *store, const char *user,
			   int dir_fd, userload_skip_cb *skip,
			   void *skip_context, struct userload_stats *stats_r,
			   struct userload_roots **roots_r,
			   const char **error_r)
{
	struct ul_ctx ctx;
	char h1[3], h2[4];
	const char *error;
	int ret, len;

	if (roots_r != NULL)
		*roots_r = NULL;
	if (mailpath_user_name_check(user, &error) < 0)
		return ul_fail(error_r, EINVAL, "invalid user name: %s", error);
	memset(&ctx, 0, sizeof(ctx));
	ctx.store = store;
	ctx.user = user;
	ctx.dir_fd = dir_fd;
	ctx.skip = skip;
	ctx.skip_context = skip_context;
	ids_user_hash(user, h1, h2);
	len = snprintf(ctx.prefix, sizeof(ctx.prefix), "%s/%s/%s/", h1, h2,
		       user);
	if (len < 0 || (size_t)len >= sizeof(ctx.prefix))
		return ul_fail(error_r, EINVAL, "user name too long");
	ctx.prefix_len = (size_t)len;
	(void)root_get(&ctx, "");

	if (objstore_list(store, ctx.prefix, NULL, list_cb, &ctx) < 0)
		ret = ul_fail(error_r, EIO, "%s", objstore_error());
	else if (!ctx.found)
		ret = 0;
	else
		ret = load_all(&ctx, error_r) < 0 ? -1 : 1;
	if (ret < 0) {
		int saved = errno;

		fuse_log(FUSE_LOG_ERR, "userload(%s): %s\n", user, *error_r);
		errno = saved;
	}
	if (stats_r != NULL)
		*stats_r = ctx.stats;
	if (roots_r != NULL && ret >= 0)
		*roots_r = roots_export(&ctx);
	ctx_free(&ctx);
	return ret;
}
