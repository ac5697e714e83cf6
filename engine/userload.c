/* userload.c: loading a user's tree from the store into an empty directory:
 * one LIST of the user's prefix, the newest base bundle (+ newest diff) of
 * the user root and of every folder found, written with bundle_tree_write(),
 * then mails no stub references put back from their metadata (see
 * userload.h). */
#include "monotime.h"
#include "userload-private.h"
#include "pathopen.h"
#include "bundle.h"
#include "ids.h"
#include "keys.h"
#include "mailpath.h"
#include "objstore.h"
#include "stub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int str_ptr_cmp(const void *p1, const void *p2)
{
	return strcmp(*(char *const *)p1, *(char *const *)p2);
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

	if (!ul_mail_key_parse(ctx, key, guid))
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
		full = ul_path_join(path, e->path);
		idx = ul_root_get(ctx, e->guid);
		if (ctx->roots[idx].path != NULL) {
			obox_log(OBOX_LOG_ERR, "userload(%s): folder %s is "
				 "both %s and %s: %s left empty, without a "
				 "GUID\n", ctx->user, e->guid,
				 ctx->roots[idx].path, full, full);
			int fd = openat(ctx->dir_fd, full, O_RDONLY |
					O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				(void)fd_removexattr(fd, BUNDLE_XATTR_GUID);
				close(fd);
			}
		} else {
			ul_place_root(ctx, idx, full);
		}
		free(full);
	}
}

/* The lazy directories of a tree written at path: their stubs count as
   written (their objects referenced); their tables are written once the
   load is complete (lazy_install()). */
static void lazy_splits_keep(struct ul_ctx *ctx, const char *path,
			     struct lazydir_split **splits, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct lazydir_split *s = &(*splits)[i];
		char *full = ul_path_join(path, s->path);

		for (size_t j = 0; j < s->tree->count; j++)
			mark_referenced(ctx, s->tree->entries[j].key);
		ctx->stats.stubs += s->tree->count;
		ctx->stats.lazy_stubs += s->tree->count;
		ctx->lazy_splits = ul_xrealloc(ctx->lazy_splits,
					       (ctx->lazy_count + 1) *
					       sizeof(*ctx->lazy_splits));
		ctx->lazy_splits[ctx->lazy_count].path = full;
		ctx->lazy_splits[ctx->lazy_count].tree = s->tree;
		ctx->lazy_count++;
		s->tree = NULL;
	}
}

/* write the tables of the lazy directories; one that cannot be written
   gets its stubs created instead (as without tables) */
static int lazy_install(struct ul_ctx *ctx, const char **error_r)
{
	int64_t start = monotime_us();

	for (size_t i = 0; i < ctx->lazy_count; i++) {
		struct lazydir_split *s = &ctx->lazy_splits[i];
		const char *error;
		struct stat st;
		int fd;

		fd = pathopen(ctx->dir_fd, s->path, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			return ul_fail(error_r, errno, "open(%s) failed: %s",
				       s->path, strerror(errno));
		}
		if (lazydir_install(ctx->lazy, ctx->user, fd, &s->tree,
				    &error) == 0) {
			ctx->stats.lazy_dirs++;
			close(fd);
			continue;
		}
		obox_log(OBOX_LOG_WARNING, "userload(%s): %s: %s: its stubs "
			 "are created\n", ctx->user, s->path, error);
		for (size_t j = 0; j < s->tree->count; j++) {
			if (bundle_stub_create(fd, &s->tree->entries[j],
					       &error) < 0) {
				int err = errno;

				close(fd);
				return ul_fail(error_r, err, "%s: %s",
					       s->path, error);
			}
		}
		struct timespec ts[2] = { { 0, UTIME_OMIT }, st.st_mtim };
		if (futimens(fd, ts) < 0) {
			int err = errno;

			close(fd);
			return ul_fail(error_r, err, "futimens(%s) failed: %s",
				       s->path, strerror(err));
		}
		close(fd);
	}
	ctx->stats.write_usecs += (uint64_t)(monotime_us() - start);
	return 0;
}

/* Load root idx (placed) into its directory. */
static int load_root(struct ul_ctx *ctx, size_t idx, const char **error_r)
{
	struct ul_root *root = &ctx->roots[idx];
	struct bundle_tree *tree;
	const char *error, *what;
	struct stat st;
	int64_t write_start;
	struct lazydir_split *splits = NULL;
	/* what is written: tree, or the rest of it once stubs are split
	   off to tables */
	struct bundle_tree *rest = NULL, *written;
	size_t split_count = 0;
	uint64_t disk_bytes = 0;
	int fd, ret;

	what = root->path[0] == '\0' ? "the user root" : root->path;
	if (root->tree_fetched) {
		tree = root->tree;
		root->tree = NULL;
	} else {
		struct ul_mark mark;

		if (ul_load_tree(ctx, root, &tree, &mark, error_r) < 0)
			return -1;
	}
	if (tree == NULL)
		return 0;
	fd = pathopen(ctx->dir_fd, root->path, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd < 0 && ul_local_error_is_path(errno)) {
			obox_log(OBOX_LOG_ERR, "userload(%s): folder %s: "
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
	if ((ret = ul_dir_is_empty(fd)) <= 0) {
		if (ret < 0) {
			ret = ul_fail(error_r, errno, "readdir(%s) failed: %s",
				      what, strerror(errno));
			goto out;
		}
		obox_log(OBOX_LOG_ERR, "userload(%s): folder %s (%s) is not "
			 "empty in its parent's tree: its bundle is not "
			 "loaded\n", ctx->user, root->guid, what);
		ret = 0;
		goto out;
	}
	write_start = monotime_us();
	if (ctx->lazy != NULL) {
		/* the size estimate and the stub count are the whole tree's */
		disk_bytes = bundle_tree_disk_bytes(tree, 0);
		/* the split copies the stubs and leaves tree whole: it is
		   the chain kept for the uploader */
		lazydir_split(tree, LAZYDIR_THRESHOLD, &splits, &split_count,
			      &rest);
	}
	written = rest != NULL ? rest : tree;
	ret = bundle_tree_write(written, fd, &error);
	ctx->stats.write_usecs += (uint64_t)(monotime_us() - write_start);
	if (ret < 0) {
		int err = errno;

		if (!ul_local_error_is_path(err) && err != EINVAL) {
			ret = ul_fail(error_r, err, "writing the tree of %s "
				      "failed: %s", what, error);
			goto out;
		}
		/* the bundle's fault, not the disk's: as if it were absent */
		obox_log(OBOX_LOG_ERR, "userload(%s): the tree of %s cannot "
			 "be written (%s): its bundle is not loaded\n",
			 ctx->user, what, error);
		ctx->stats.bundles_rejected++;
		if (tree_unwrite(fd, written) < 0 ||
		    ul_dir_is_empty(fd) <= 0) {
			ret = ul_fail(error_r, errno, "cleaning up %s failed: "
				      "%s", what, strerror(errno));
			goto out;
		}
	} else {
		root->tree_loaded = true;
		ctx->stats.roots_loaded++;
		ctx->stats.disk_bytes += ctx->lazy != NULL ? disk_bytes :
			bundle_tree_disk_bytes(tree, 0);
		for (size_t i = 0; i < written->count; i++) {
			if (written->entries[i].type == BUNDLE_ENTRY_STUB)
				ctx->stats.stubs++;
		}
		tree_written(ctx, root->path, written);
		lazy_splits_keep(ctx, root->path, &splits, split_count);
		/* one writer's chain: the tree loaded (whole: the split
		   left it so) is its base (no diff applied) or its newest
		   diff's tree */
		if (root->chain_ok) {
			if (root->chain_base == NULL)
				root->chain_base = tree;
			else
				root->chain_last = tree;
			lazydir_split_rest_free(&rest);
			tree = NULL;
		}
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
	lazydir_splits_free(&splits, split_count);
	lazydir_split_rest_free(&rest);	/* before tree: its strings */
	bundle_tree_free(&tree);
	return ret;
}

int ul_process_queue(struct ul_ctx *ctx, const char **error_r)
{
	while (ctx->queue_head < ctx->queue_count) {
		/* the roots placed are loaded in queue order: their bundles
		   are fetched ahead, side by side (a root's tree places its
		   folders: the next turn queues theirs) */
		for (; ctx->queue_prefetched < ctx->queue_count;
		     ctx->queue_prefetched++)
			ul_prefetch_root(ctx, ctx->queue[ctx->queue_prefetched]);
		if (load_root(ctx, ctx->queue[ctx->queue_head++], error_r) < 0)
			return -1;
	}
	return 0;
}

/* Open parent_fd/name as a directory, creating it if missing with the
   parent's owner and permission bits.  Returns an fd or -1 with errno. */
/* The mail key of root predates the watermark of the tree loaded for it:
   it was gone or released when that tree was scanned (bundle.h), e.g. a
   mail expunged there whose object waits delete_grace: not put back. */
static bool before_mark(const struct ul_ctx *ctx, const struct ul_root *root,
			const char *key)
{
	char mark_key[OBJSTORE_KEY_MAX + 1];

	if (!root->tree_loaded || root->mark.secs == 0 ||
	    !root->mark.single_writer ||
	    keys_mail_list_start(ctx->prefix, root->guid, root->mark.secs,
				 root->mark.usecs, mark_key,
				 sizeof(mark_key)) < 0)
		return false;
	return strcmp(key, mark_key) < 0;
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
	ul_place_root(ctx, 0, "");
	if (ul_process_queue(ctx, error_r) < 0)
		return -1;
	for (i = 1; i < ctx->count; i++) {
		/* a placed root (and what its tree places) loads before the
		   next unplaced root is looked at */
		if (ctx->roots[i].path == NULL &&
		    ctx->roots[i].bundle_count > 0 &&
		    (ul_place_from_mails(ctx, i, error_r) < 0 ||
		     ul_process_queue(ctx, error_r) < 0))
			return -1;
	}
	if (ul_fix_top_owner(ctx, error_r) < 0)
		return -1;
	/* the rescan: mails no stub references */
	for (i = 1; i < ctx->count; i++) {
		for (m = 0; m < ctx->roots[i].mail_count; m++) {
			if (ctx->roots[i].referenced[m])
				continue;
			if (before_mark(ctx, &ctx->roots[i],
					ctx->roots[i].mail_keys[m])) {
				ctx->stats.mails_before_mark++;
				continue;
			}
			if (ul_put_back(ctx, i, m, error_r) < 0)
				return -1;
		}
	}
	if (lazy_install(ctx, error_r) < 0)
		return -1;
	return ul_rebuild_sdbox_indexes(ctx, error_r);
}

static struct userload_roots *roots_export(struct ul_ctx *ctx)
{
	struct userload_roots *roots = calloc(1, sizeof(*roots));

	if (roots == NULL)
		abort();
	roots->roots = ul_xrealloc(NULL, ctx->count * sizeof(*roots->roots));
	for (size_t i = 0; i < ctx->count; i++) {
		struct ul_root *root = &ctx->roots[i];
		struct userload_root *r = &roots->roots[roots->count];

		if (i > 0 && root->path == NULL && root->bundle_count == 0)
			continue;
		memset(r, 0, sizeof(*r));
		r->path = root->path;
		root->path = NULL;
		if (i == 0 && r->path == NULL)
			r->path = ul_xstrdup("");
		memcpy(r->guid, root->guid, sizeof(r->guid));
		r->tree_loaded = root->tree_loaded;
		r->bundle_keys = root->bundle_keys;
		r->bundle_key_count = root->bundle_count;
		root->bundle_keys = NULL;
		root->bundle_count = 0;
		/* a chain whose tree was written (a base alone is kept only
		   then) */
		if (root->chain_ok && root->tree_loaded &&
		    (root->chain_seq == 0 || root->chain_last != NULL)) {
			r->chain_base = root->chain_base;
			r->chain_last = root->chain_last;
			r->chain_base_size = root->chain_base_size;
			r->chain_base_idx = root->chain_base_idx;
			r->chain_seq = root->chain_seq;
			root->chain_base = root->chain_last = NULL;
		}
		ul_chain_reset(root);
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
		bundle_tree_free(&roots->roots[i].chain_base);
		bundle_tree_free(&roots->roots[i].chain_last);
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
		ul_chain_reset(root);
		bundle_tree_free(&root->tree);
	}
	for (size_t i = 0; i < ctx->rebuild_count; i++)
		free(ctx->rebuild_dirs[i]);
	free(ctx->rebuild_dirs);
	lazydir_splits_free(&ctx->lazy_splits, ctx->lazy_count);
	objstore_fetcher_deinit(&ctx->fetcher);
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
	return userload_load_lazy(store, user, dir_fd, skip, skip_context,
				  NULL, stats_r, roots_r, error_r);
}

int userload_load_lazy(struct objstore *store, const char *user, int dir_fd,
		       userload_skip_cb *skip, void *skip_context,
		       struct lazydir *lazy, struct userload_stats *stats_r,
		       struct userload_roots **roots_r, const char **error_r)
{
	struct ul_ctx ctx;
	const char *error;
	int ret;

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
	ctx.lazy = lazy;
	if (keys_user_prefix(user, ctx.prefix, sizeof(ctx.prefix)) < 0)
		return ul_fail(error_r, EINVAL, "user name too long");
	(void)ul_root_get(&ctx, "");

	if (ul_list(&ctx, error_r) < 0)
		ret = -1;
	else if (!ctx.found)
		ret = 0;
	else
		ret = load_all(&ctx, error_r) < 0 ? -1 : 1;
	if (ret < 0) {
		int saved = errno;

		obox_log(OBOX_LOG_ERR, "userload(%s): %s\n", user, *error_r);
		errno = saved;
	}
	if (ctx.fetcher != NULL) {
		struct objstore_fetcher_stats fstats;

		objstore_fetcher_get_stats(ctx.fetcher, &fstats);
		ctx.stats.bundles_fetched_ahead = fstats.taken;
		ctx.stats.bundles_fetched_parallel_max = fstats.max_running;
	}
	if (stats_r != NULL)
		*stats_r = ctx.stats;
	if (roots_r != NULL && ret >= 0)
		*roots_r = roots_export(&ctx);
	ctx_free(&ctx);
	return ret;
}

