/* upload.c: snapshots of a user's bundle roots and their upload as base
 * and diff bundles (see upload.h). */
#include "upload-private.h"
#include "lazydir.h"
#include "pathopen.h"
#include "bundle.h"
#include "cachestate.h"
#include "ids.h"
#include "keys.h"
#include "mailpath.h"
#include "monotime.h"
#include "objgc.h"
#include "objstore.h"
#include "splitfolders.h"
#include "stub.h"
#include "userload.h"
#include "touched.h"
#include "users.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

/* a new base when the diff is larger than half of the base (and larger
   than this), or after this many diffs */
#define UPLOAD_DIFF_MIN_REBASE 16384
#define UPLOAD_MAX_DIFFS 64
#define UPLOAD_KEY_MAX (OBJSTORE_KEY_MAX + 1)
/* A bundle's mail watermark (bundle.h) is the time of its snapshot on
   the ids' clock (ids_clock_us()), taken under the user's exclusive tree
   lock.  Stores happen under the shared tree lock, so a mail named
   before the snapshot is in it, and one named after got its oid after the
   snapshot's time: the ids' clock never goes back (a wall clock step
   back included), it was raised past every watermark this machine loaded
   (userload-bundles.c) and it starts past what the last run gave
   (cachestate_clock_*()).  Except for a mail stored at its fsync in a
   maildir tmp/ (store_on_fsync): its oid is older than the name its
   rename gives it, so a snapshot that finds stubs in tmp/ takes the
   oldest of their oids' times as its watermark instead (a load then
   lists them, and puts them back if they were named). */

/* one root of a snapshot */
struct snap_root {
	char *path;			/* relative to the user dir */
	char guid[IDS_HEX_LEN + 1];
	/* the walk under the tree lock, then (snapshot_finish()) its tree */
	struct bundle_scan *scan;
	struct bundle_tree *tree;
};

struct snapshot {
	struct snap_root *roots;
	size_t count, alloc;
	/* the oldest oid time of a stub found in a maildir tmp/ (mails
	   stored at their fsync, not named yet), if tmp_marked */
	bool tmp_marked;
	uint64_t tmp_mark;
};

struct filter_ctx {
	int root_fd;
	const char *root_path;
	struct snapshot *snap;
};

int upload_ctx_init(struct upload_ctx *ctx, struct objstore *store,
		    struct objgc *gc, struct cachestate *cs, int meta_fd)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->store = store;
	ctx->gc = gc;
	ctx->cs = cs;
	ctx->meta_fd = meta_fd;
	pthread_mutex_init(&ctx->stats_lock, NULL);
	char path[PATH_MAX];

	cachestate_path(cs, "bundles", path, sizeof(path));
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void upload_ctx_deinit(struct upload_ctx *ctx)
{
	pthread_mutex_destroy(&ctx->stats_lock);
}

void upload_get_stats(struct upload_ctx *ctx, struct upload_stats *stats_r)
{
	pthread_mutex_lock(&ctx->stats_lock);
	*stats_r = ctx->stats;
	pthread_mutex_unlock(&ctx->stats_lock);
}

#define STAT_ADD(ctx, field, n) do { \
	pthread_mutex_lock(&(ctx)->stats_lock); \
	(ctx)->stats.field += (n); \
	pthread_mutex_unlock(&(ctx)->stats_lock); \
} while (0)

/* CACHE_DIR/state/bundles/<user> */
static void roots_path(struct upload_ctx *ctx, struct ouser *user,
		       char *buf, size_t size)
{
	char name[NAME_MAX + 16];

	snprintf(name, sizeof(name), "bundles/%s", user->name);
	cachestate_path(ctx->cs, name, buf, size);
}

static void user_roots_save(struct upload_ctx *ctx, struct ouser *user)
{
	char path[PATH_MAX];

	roots_path(ctx, user, path, sizeof(path));
	roots_save(&user->roots, path);
}

static void user_roots_read(struct upload_ctx *ctx, struct ouser *user)
{
	char path[PATH_MAX];

	roots_path(ctx, user, path, sizeof(path));
	roots_read(&user->roots, path, user->prefix);
}

/* root (fresh) takes over the chain loaded as lr: its base first among
   its keys, which are all this machine's from now on */
static int take_chain(struct upload_ctx *ctx, struct upload_root *root,
		      struct userload_root *lr)
{
	if (roots_add_key(root, lr->bundle_keys[lr->chain_base_idx]) < 0)
		return -1;
	for (size_t k = 0; k < lr->bundle_key_count; k++) {
		if (k != lr->chain_base_idx &&
		    roots_add_key(root, lr->bundle_keys[k]) < 0)
			return -1;
	}
	for (size_t k = 0; k < root->key_count; k++)
		objgc_own_bundle(ctx->gc, root->keys[k]);
	root->base = lr->chain_base;
	root->last = lr->chain_last;
	lr->chain_base = lr->chain_last = NULL;
	if (root->path == NULL && lr->path != NULL)
		root->path = strdup(lr->path);	/* NULL: known at upload */
	bundle_name_from_info(&root->base->base_info, &root->base_name);
	root->base_named = true;
	root->base_size = lr->chain_base_size;
	root->seq = lr->chain_seq;
	root->disk_bytes_stale = true;
	return 0;
}

int upload_user_loaded(struct upload_ctx *ctx, struct ouser *user,
		       struct userload_roots *loaded)
{
	int ret = 0;

	for (size_t i = 0; loaded != NULL && i < loaded->count; i++) {
		struct userload_root *lr = &loaded->roots[i];
		struct upload_root *root;

		if (lr->chain_base != NULL && lr->chain_base->is_base &&
		    lr->chain_base_idx < lr->bundle_key_count &&
		    (root = roots_get(&user->roots, lr->guid)) != NULL &&
		    root->key_count == 0 && root->base == NULL &&
		    root->last == NULL) {
			if (take_chain(ctx, root, lr) < 0)
				ret = -1;
			continue;
		}
		if (roots_add_loaded(&user->roots, lr->guid,
				     lr->bundle_keys,
				     lr->bundle_key_count) < 0)
			ret = -1;
	}
	user->roots.read = true;
	return ret;
}

static void snapshot_free(struct snapshot *snap)
{
	for (size_t i = 0; i < snap->count; i++) {
		free(snap->roots[i].path);
		bundle_scan_free(&snap->roots[i].scan);
		bundle_tree_free(&snap->roots[i].tree);
	}
	free(snap->roots);
	memset(snap, 0, sizeof(*snap));
}

static struct snap_root *snapshot_add(struct snapshot *snap, const char *path,
				      const char *guid)
{
	for (size_t i = 0; i < snap->count; i++) {
		if (strcmp(snap->roots[i].guid, guid) == 0)
			return NULL;	/* a copied folder dir: not a root */
	}
	if (snap->count == snap->alloc) {
		size_t alloc = snap->alloc == 0 ? 8 : snap->alloc * 2;
		struct snap_root *r = realloc(snap->roots,
					      alloc * sizeof(*r));

		if (r == NULL)
			return NULL;
		snap->roots = r;
		snap->alloc = alloc;
	}
	struct snap_root *sr = &snap->roots[snap->count];

	memset(sr, 0, sizeof(*sr));
	sr->path = strdup(path);
	if (sr->path == NULL)
		return NULL;
	snprintf(sr->guid, sizeof(sr->guid), "%s", guid);
	snap->count++;
	return sr;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t len = strlen(s), slen = strlen(suffix);

	return len >= slen && strcmp(s + len - slen, suffix) == 0;
}

/* the folder GUID of directory path below fd, or false */
static bool dir_guid(int fd, const char *path, char guid_r[IDS_HEX_LEN + 1])
{
	int dfd = pathopen(fd, path, O_RDONLY | O_DIRECTORY);
	ssize_t len;

	if (dfd < 0)
		return false;
	len = fgetxattr(dfd, BUNDLE_XATTR_GUID, guid_r, IDS_HEX_LEN);
	close(dfd);
	if (len != IDS_HEX_LEN)
		return false;
	guid_r[IDS_HEX_LEN] = '\0';
	return ids_is_hex_id(guid_r);
}

/* the stubs in the maildir tmp/ directory path (below ctx->root_fd):
   the oldest time of their oids lowers the snapshot's watermark */
static void tmp_stubs_mark(struct filter_ctx *ctx, const char *path)
{
	struct dirent *de;
	DIR *d;
	int fd = pathopen(ctx->root_fd, path, O_RDONLY | O_DIRECTORY);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stub stub;
		struct stat st;
		const char *oid;
		uint64_t us;
		int sfd;

		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		sfd = openat(dirfd(d), de->d_name,
			     O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		if (fstatat(sfd, "", &st, AT_EMPTY_PATH) == 0 &&
		    S_ISREG(st.st_mode) && stub_read(sfd, &st, &stub) > 0 &&
		    (oid = keys_key_oid(stub.key)) != NULL &&
		    ids_timed_us(oid, &us) &&
		    (!ctx->snap->tmp_marked || us < ctx->snap->tmp_mark)) {
			ctx->snap->tmp_marked = true;
			ctx->snap->tmp_mark = us;
		}
		close(sfd);
	}
	closedir(d);
}

static enum bundle_scan_action
scan_filter(const char *path, bool is_dir, void *context)
{
	struct filter_ctx *ctx = context;
	const char *slash = strrchr(path, '/');
	const char *base = slash == NULL ? path : slash + 1;
	char guid[IDS_HEX_LEN + 1], full[PATH_MAX];

	if (!is_dir) {
		if (has_suffix(base, ".lock") ||
		    strncmp(base, ".temp.", 6) == 0)
			return BUNDLE_SCAN_SKIP;
		return BUNDLE_SCAN_INCLUDE;
	}
	if (dir_guid(ctx->root_fd, path, guid)) {
		snprintf(full, sizeof(full), "%s%s%s", ctx->root_path,
			 ctx->root_path[0] == '\0' ? "" : "/", path);
		if (snapshot_add(ctx->snap, full, guid) != NULL)
			return BUNDLE_SCAN_NO_CHILDREN;
		return BUNDLE_SCAN_INCLUDE;
	}
	if (mailpath_mail_dir(base) == MAILPATH_DIR_TMP) {
		/* maildir's tmp/: files being written (a stub there is a
		   mail stored at its fsync, named by its rename) */
		char sibling[PATH_MAX];
		int len = slash == NULL ? 0 : (int)(slash - path + 1);

		snprintf(sibling, sizeof(sibling), "%.*scur", len, path);
		if (faccessat(ctx->root_fd, sibling, F_OK,
			      AT_SYMLINK_NOFOLLOW) == 0) {
			tmp_stubs_mark(ctx, path);
			return BUNDLE_SCAN_NO_CHILDREN;
		}
	}
	return BUNDLE_SCAN_INCLUDE;
}

/* the incremental scan's question: did file ino change since the root's
   last scan? */
struct scan_since {
	struct ouser *user;
	uint64_t gen;
};

static bool changed_since(uint64_t ino, void *context)
{
	struct scan_since *since = context;

	return touched_since(&since->user->touched, ino, since->gen);
}

/* scan snap->roots[i] (and add its nested roots), reading again only the
   files changed since the root's last scan */
static int scan_root(struct upload_ctx *ctx, struct ouser *user, int user_fd,
		     struct snapshot *snap, size_t i)
{
	struct filter_ctx fctx = { .snap = snap };
	struct upload_root *root = roots_find(&user->roots, snap->roots[i].guid);
	struct scan_since since = { .user = user };
	struct bundle_scan_prev prev = {
		.changed = changed_since, .context = &since,
		.lazy = ctx->lazy == NULL ? NULL : lazydir_foreach,
		.lazy_context = ctx->lazy,
	};
	const char *error;
	char *path = snap->roots[i].path;
	struct bundle_scan *scan;
	int fd, ret;

	if (root != NULL) {
		prev.tree = root->last != NULL ? root->last : root->base;
		since.gen = root->scan_gen;
	}
	fd = pathopen(user_fd, path, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		obox_log(OBOX_LOG_ERR, "upload: open(%s) failed: %s\n", path,
			 strerror(errno));
		return -1;
	}
	fctx.root_fd = fd;
	fctx.root_path = path;
	/* copied, sorted and checked once the tree lock is released
	   (snapshot_finish()); prev's tree lives until then (the user's
	   upload_lock) */
	ret = bundle_tree_scan_begin(fd, scan_filter, &fctx, &prev, &scan,
				     &error);
	close(fd);
	if (ret < 0) {
		obox_log(OBOX_LOG_ERR, "upload: scanning %s failed: %s\n",
			 path, error);
		return -1;
	}
	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.scan_files_read += prev.read;
	ctx->stats.scan_files_reused += prev.reused;
	pthread_mutex_unlock(&ctx->stats_lock);
	/* snapshot_add() may have moved the array */
	snap->roots[i].scan = scan;
	return 0;
}

/* The snapshot: every root (folder_path NULL) or that folder's only.
   Returns 1 if taken, 0 if folder_path is not a folder root now, -1. */
static int snapshot_take(struct upload_ctx *ctx, struct ouser *user,
			 const char *folder_path, struct snapshot *snap)
{
	char guid[IDS_HEX_LEN + 1];
	int user_fd;

	user_fd = openat(ctx->meta_fd, user->name,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (user_fd < 0 && errno != ENOENT) {
		obox_log(OBOX_LOG_ERR, "upload: open(%s) failed: %s\n",
			 user->name, strerror(errno));
		return -1;
	}
	if (user_fd < 0) {
		/* the user directory was removed: an empty user */
		if (folder_path != NULL)
			return 0;
		if (snapshot_add(snap, "", "") == NULL)
			return -1;
		snap->roots[0].tree = bundle_tree_new();
		return 1;
	}
	if (folder_path != NULL) {
		if (!dir_guid(user_fd, folder_path, guid)) {
			close(user_fd);
			return 0;
		}
		if (snapshot_add(snap, folder_path, guid) == NULL ||
		    scan_root(ctx, user, user_fd, snap, 0) < 0) {
			close(user_fd);
			return -1;
		}
		/* nested folders are not part of this upload */
		for (size_t i = 1; i < snap->count; i++) {
			free(snap->roots[i].path);
			bundle_scan_free(&snap->roots[i].scan);
		}
		snap->count = 1;
		close(user_fd);
		return 1;
	}
	if (snapshot_add(snap, "", "") == NULL) {
		close(user_fd);
		return -1;
	}
	for (size_t i = 0; i < snap->count; i++) {
		if (scan_root(ctx, user, user_fd, snap, i) < 0) {
			close(user_fd);
			return -1;
		}
	}
	close(user_fd);
	return 1;
}

/* After the tree lock is released: sort and check the snapshot's trees
   (bundle_tree_scan_finish()).  0, or -1 if one is not a valid tree. */
static int snapshot_finish(struct snapshot *snap)
{
	const char *error;

	for (size_t i = 0; i < snap->count; i++) {
		if (snap->roots[i].scan != NULL &&
		    bundle_tree_scan_finish(&snap->roots[i].scan,
					    &snap->roots[i].tree,
					    &error) < 0) {
			obox_log(OBOX_LOG_ERR, "upload: scanning %s failed: "
				 "%s\n", snap->roots[i].path, error);
			return -1;
		}
	}
	return 0;
}

static void root_prefix(struct ouser *user, const char *guid, char *buf,
			size_t size)
{
	/* fits: user->prefix is a valid user's and guid a GUID */
	if (keys_root_prefix(user->prefix, guid, buf, size) < 0)
		abort();
}

/* PUT the encoded bundle as <prefix>/idx/<name> (its key into key_r);
   frees data.  On failure tree (the snapshot) is freed too. */
static int put_bundle(struct upload_ctx *ctx, const char *prefix,
		      const struct bundle_name *name, unsigned char *data,
		      size_t size, struct bundle_tree **tree,
		      char key_r[UPLOAD_KEY_MAX])
{
	const char *error;
	int ret = 0;

	if (bundle_key_build(prefix, name, key_r, UPLOAD_KEY_MAX,
			     &error) < 0) {
		obox_log(OBOX_LOG_ERR, "upload: %s\n", error);
		ret = -1;
	} else if (objstore_put(ctx->store, key_r, data, size, NULL, 0) < 0) {
		obox_log(OBOX_LOG_ERR, "upload: storing bundle %s failed: %s\n",
			 key_r, objstore_error());
		ret = -1;
	} else {
		objgc_own_bundle(ctx->gc, key_r);
		STAT_ADD(ctx, bytes, size);
	}
	free(data);
	if (ret < 0)
		bundle_tree_free(tree);
	return ret;
}

/* a new bundle's header fields for a tree scanned at taken (ids' clock,
   microseconds) */
static int new_info(struct bundle_info *info, uint64_t taken)
{
	uint64_t now = ids_clock_us();

	memset(info, 0, sizeof(*info));
	info->secs = (uint32_t)(now / 1000000);
	info->usecs = (uint32_t)(now % 1000000);
	/* now > taken: the ids' clock only goes forward */
	info->mails_secs = (uint32_t)(taken / 1000000);
	info->mails_usecs = (uint32_t)(taken % 1000000);
	return bundle_id_generate(info->id);
}

/* the parent of root's next base (bundle_info.has_parent): the other
   writer's bundle a merge took in, else the base this machine stored or
   took over, if any (none after a restart: not known for sure) */
static void base_parent(const struct upload_root *root,
			struct bundle_info *info)
{
	if (root->has_merge_parent)
		bundle_info_set_parent(info, &root->merge_parent);
	else if (root->base_named)
		bundle_info_set_parent(info, &root->base_name);
}

/* store tree as a new base of root; takes tree */
static int upload_base(struct upload_ctx *ctx, struct ouser *user,
		       struct upload_root *root, struct bundle_tree *tree,
		       uint64_t taken)
{
	char prefix[UPLOAD_KEY_MAX], key[UPLOAD_KEY_MAX];
	struct bundle_info info;
	struct bundle_name name;
	unsigned char *data = NULL;
	const char *error;
	size_t size = 0;

	root_prefix(user, root->guid, prefix, sizeof(prefix));
	if (new_info(&info, taken) < 0)
		error = strerror(errno);
	else if ((base_parent(root, &info),
		  bundle_encode_base(tree, &info, &data, &size, &error)) == 0) {
		bundle_pack(&data, &size);
		error = NULL;
	}
	if (error != NULL) {
		obox_log(OBOX_LOG_ERR, "upload: encoding a base of %s "
			 "failed: %s\n", prefix, error);
		bundle_tree_free(&tree);
		return -1;
	}
	bundle_name_from_info(&tree->base_info, &name);
	if (put_bundle(ctx, prefix, &name, data, size, &tree, key) < 0)
		return -1;
	root->has_merge_parent = false;
	/* everything this root had before is superseded */
	for (size_t i = 0; i < root->key_count; i++)
		objgc_condemn(ctx->gc, root->keys[i]);
	roots_free_keys(root);
	(void)roots_add_key(root, key);
	bundle_tree_free(&root->base);
	bundle_tree_free(&root->last);
	root->base = tree;
	root->base_size = size;
	root->base_name = name;
	root->base_named = true;
	root->seq = 0;
	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.bases++;
	ctx->stats.last_base_bytes = size;
	pthread_mutex_unlock(&ctx->stats_lock);
	return 0;
}

/* store tree as a diff on root's base, or as a new base when the diff is
   too big; takes tree */
static int upload_diff(struct upload_ctx *ctx, struct ouser *user,
		       struct upload_root *root, struct bundle_tree *tree,
		       uint64_t taken)
{
	char prefix[UPLOAD_KEY_MAX], key[UPLOAD_KEY_MAX];
	struct bundle_info info;
	struct bundle_name name;
	unsigned char *data;
	const char *error;
	size_t size;

	root_prefix(user, root->guid, prefix, sizeof(prefix));
	if (new_info(&info, taken) < 0)
		return upload_base(ctx, user, root, tree, taken);
	info.seq = root->seq + 1;
	if (bundle_diff(root->base, tree, &info, &data, &size, &error) < 0) {
		obox_log(OBOX_LOG_WARNING, "upload: a diff of %s failed (%s): "
			 "storing a new base\n", prefix, error);
		return upload_base(ctx, user, root, tree, taken);
	}
	bundle_pack(&data, &size);
	/* diffs are cumulative: with a diff growing by about d per upload,
	   the bytes sent per upload are least when a new base (B bytes)
	   is written once the diff reaches sqrt(2 B d), i.e. once
	   size * seq > 2 B (d = size / seq); and never past half the base */
	if (size > UPLOAD_DIFF_MIN_REBASE &&
	    (size > root->base_size / 2 ||
	     (uint64_t)size * info.seq > 2 * (uint64_t)root->base_size)) {
		free(data);
		return upload_base(ctx, user, root, tree, taken);
	}
	name = root->base_name;
	name.is_diff = true;
	memcpy(name.diff_id, info.id, sizeof(name.diff_id));
	if (put_bundle(ctx, prefix, &name, data, size, &tree, key) < 0)
		return -1;
	/* the previous diffs are superseded (a diff holds everything
	   since its base) */
	for (size_t i = 1; i < root->key_count; i++) {
		objgc_condemn(ctx->gc, root->keys[i]);
		free(root->keys[i]);
	}
	root->key_count = root->key_count > 0 ? 1 : 0;
	(void)roots_add_key(root, key);
	bundle_tree_free(&root->last);
	root->last = tree;
	root->seq++;
	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.diffs++;
	ctx->stats.last_diff_bytes = size;
	pthread_mutex_unlock(&ctx->stats_lock);
	return 0;
}

/* upload one snapshot root (taken at generation gen, at time taken) if it
   changed; takes sr->tree */
static int upload_root(struct upload_ctx *ctx, struct ouser *user,
		       struct snap_root *sr, uint64_t gen,
		       uint64_t taken)
{
	struct upload_root *root = roots_get(&user->roots, sr->guid);
	struct bundle_tree *tree = sr->tree;
	const char *why;
	int ret;

	sr->tree = NULL;
	if (root == NULL) {
		bundle_tree_free(&tree);
		return -1;
	}
	root->seen = true;
	if (root->path == NULL || strcmp(root->path, sr->path) != 0) {
		free(root->path);
		root->path = strdup(sr->path);
	}
	const struct bundle_tree *stored =
		root->last != NULL ? root->last : root->base;

	if (stored != NULL && bundle_tree_equal(stored, tree, &why)) {
		/* the same content: the new scan takes the stored tree's
		   place, with the inode numbers the next scan goes by */
		if (root->last != NULL) {
			bundle_tree_free(&root->last);
			root->last = tree;
		} else {
			tree->is_base = root->base->is_base;
			tree->base_info = root->base->base_info;
			bundle_tree_free(&root->base);
			root->base = tree;
		}
		root->scan_gen = gen;
		STAT_ADD(ctx, unchanged, 1);
		return 0;
	}
	if (root->base == NULL || root->seq >= UPLOAD_MAX_DIFFS)
		ret = upload_base(ctx, user, root, tree, taken);
	else
		ret = upload_diff(ctx, user, root, tree, taken);
	if (ret == 0) {
		root->scan_gen = gen;
		/* sized again at the next full pass (note_tree_bytes()),
		   not at every folder upload */
		root->disk_bytes_stale = true;
	}
	return ret;
}

/* after a complete pass: the changes every root's last scan has seen are
   no longer asked about */
static void prune_touched(struct ouser *user)
{
	uint64_t min_gen = UINT64_MAX;

	for (struct upload_root *r = user->roots.list; r != NULL; r = r->next) {
		if ((r->base != NULL || r->last != NULL) &&
		    r->scan_gen < min_gen)
			min_gen = r->scan_gen;
	}
	if (min_gen != UINT64_MAX)
		touched_prune(&user->touched, min_gen);
}

/* the user's tree size from its roots' last scans, if every root has one
   (after a load, roots have keys but no tree until their first upload) */
static void note_tree_bytes(struct upload_ctx *ctx, struct ouser *user,
			    uint64_t gen)
{
	uint64_t bytes = 0;

	for (struct upload_root *r = user->roots.list; r != NULL; r = r->next) {
		if (r->base == NULL && r->last == NULL)
			return;
		if (r->disk_bytes_stale) {
			r->disk_bytes = bundle_tree_disk_bytes(
				r->last != NULL ? r->last : r->base,
				ctx->stub_disk_bytes);
			r->disk_bytes_stale = false;
		}
		bytes += r->disk_bytes;
	}
	users_set_tree_bytes(user, true, bytes, gen);
}

/* root's folder is gone (deleted here): noted with its mails, so that a
   change of it by another writer brings it back (splitbrain_check_gone());
   not without a tree of it (loaded, never uploaded since): what it had is
   unknown */
static void gone_note(struct ouser *user, struct upload_root *root)
{
	const struct bundle_tree *tree =
		root->last != NULL ? root->last : root->base;
	struct splitfolders_digest had;

	if (tree != NULL && splitfolders_mail_digest(tree, &had) == 0)
		roots_add_gone(&user->roots, root, had.hashes, had.count);
}

/* after a complete pass: roots that are gone (a deleted folder) */
static void forget_unseen_roots(struct upload_ctx *ctx, struct ouser *user)
{
	struct upload_root *root = user->roots.list, *next;

	for (; root != NULL; root = next) {
		next = root->next;
		if (root->seen)
			continue;
		for (size_t i = 0; i < root->key_count; i++)
			objgc_condemn(ctx->gc, root->keys[i]);
		gone_note(user, root);
		roots_remove(&user->roots, root);
	}
}


bool upload_user_root_stored(struct upload_ctx *ctx, struct ouser *user)
{
	struct upload_root *root;

	if (!user->roots.read)
		user_roots_read(ctx, user);
	root = roots_find(&user->roots, "");
	return root != NULL && root->key_count > 0;
}

/* a snapshot that began at began_us (monotime_us()) ends */
static void note_snapshot_time(struct upload_ctx *ctx, int64_t began_us)
{
	int64_t now = monotime_us();
	uint64_t us = now > began_us ? (uint64_t)(now - began_us) : 0;

	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.snapshot_usecs += us;
	if (us > ctx->stats.snapshot_max_usecs)
		ctx->stats.snapshot_max_usecs = us;
	pthread_mutex_unlock(&ctx->stats_lock);
}

int upload_user(struct upload_ctx *ctx, struct ouser *user,
		const char *folder_path)
{
	struct snapshot snap = { 0 };
	struct objgc_batch pending;
	char prefix[UPLOAD_KEY_MAX];
	uint64_t snap_gen;
	uint64_t taken;
	int64_t locked_us;
	bool merged = false;
	int ret = 0;

	pthread_mutex_lock(&user->upload_lock);
	if (!user->roots.read)
		user_roots_read(ctx, user);
	if (folder_path != NULL && !upload_user_root_stored(ctx, user)) {
		/* the first upload of a user stores its own tree too: a
		   folder is found again only through it (its path, owner) */
		folder_path = NULL;
	}

	users_snapshot_lock(user);
	locked_us = monotime_us();
	snap_gen = atomic_load(&user->gen);
	taken = ids_clock_us();
	ret = snapshot_take(ctx, user, folder_path, &snap);
	note_snapshot_time(ctx, locked_us);
	if (snap.tmp_marked && snap.tmp_mark < taken)
		taken = snap.tmp_mark;
	if (ret > 0) {
		/* all of the user's keys, or all of the folder's */
		if (keys_root_list_prefix(user->prefix, folder_path == NULL ?
					  "" : snap.roots[0].guid, prefix,
					  sizeof(prefix)) < 0)
			abort();	/* as root_prefix() */
		objgc_take_pending(ctx->gc, prefix, &pending);
	}
	users_snapshot_unlock(user);
	if (ret > 0 && snapshot_finish(&snap) < 0) {
		objgc_return_pending(ctx->gc, &pending);
		ret = -1;
	}
	if (ret <= 0) {
		snapshot_free(&snap);
		pthread_mutex_unlock(&user->upload_lock);
		if (ret == 0)	/* not a folder (any more): all of it */
			return upload_user(ctx, user, NULL);
		STAT_ADD(ctx, failures, 1);
		return -1;
	}

	for (struct upload_root *r = user->roots.list; r != NULL; r = r->next)
		r->seen = false;
	ret = 0;
	for (size_t i = 0; i < snap.count; i++) {
		if (upload_root(ctx, user, &snap.roots[i], snap_gen,
				taken) < 0)
			ret = -1;
		else if (folder_path == NULL &&
			 splitbrain_check(ctx, user, snap.roots[i].guid,
					  snap.roots[i].path))
			merged = true;
	}
	if (ret < 0) {
		objgc_return_pending(ctx->gc, &pending);
		STAT_ADD(ctx, failures, 1);
	} else {
		objgc_condemn_batch(ctx->gc, &pending);
		if (folder_path == NULL) {
			forget_unseen_roots(ctx, user);
			if (splitbrain_check_gone(ctx, user))
				merged = true;
			prune_touched(user);
			note_tree_bytes(ctx, user, snap_gen);
			atomic_store(&user->uploaded_gen, snap_gen);
			users_snapshot_lock(user);
			if (atomic_load(&user->gen) == snap_gen &&
			    cachestate_clear_dirty(ctx->cs, user->name) == 0)
				atomic_store(&user->marked, false);
			users_snapshot_unlock(user);
		}
		STAT_ADD(ctx, passes, 1);
	}
	user_roots_save(ctx, user);
	snapshot_free(&snap);
	pthread_mutex_unlock(&user->upload_lock);
	/* a split-brain merge changed the tree: store the merged base now */
	if (ret == 0 && merged)
		return upload_user(ctx, user, NULL);
	return ret;
}

void upload_split_check_user(struct upload_ctx *ctx, struct ouser *user)
{
	bool merged = false;

	pthread_mutex_lock(&user->upload_lock);
	for (struct upload_root *r = user->roots.list; r != NULL; r = r->next) {
		if (r->path != NULL && r->base != NULL &&
		    splitbrain_check(ctx, user, r->guid, r->path))
			merged = true;
	}
	if (splitbrain_check_gone(ctx, user))
		merged = true;
	pthread_mutex_unlock(&user->upload_lock);
	if (merged)
		(void)upload_user(ctx, user, NULL);
}
