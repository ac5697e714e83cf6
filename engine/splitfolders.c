/* splitfolders.c: the folders of a split-brain merge: created, renamed
 * and deleted by the other writer (see splitfolders.h). */
#include "splitfolders.h"
#include "bundle.h"
#include "dovecotidx.h"
#include "ids.h"
#include "keys.h"
#include "log.h"
#include "mailpath.h"
#include "objgc.h"
#include "objstore.h"
#include "pathopen.h"
#include "rmtree.h"
#include "splitmerge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

enum folder_op {
	/* create path from tree (NULL: the bare directory with guid) */
	FOLDER_CREATE,
	/* rename from -> path (the folder with guid) */
	FOLDER_RENAME,
	/* set guid on path, which has none here */
	FOLDER_CLAIM,
	/* remove path if it is here as tree (the common base's) has it */
	FOLDER_REMOVE,
};

struct folder_change {
	enum folder_op op;
	char *path, *from;
	char guid[BUNDLE_GUID_HEX_LEN + 1];
	/* CREATE: the folder's entries (paths below it), with attrs: the
	   folder directory's own entry; REMOVE: the common base's entries
	   below it */
	struct bundle_tree *tree;
	struct bundle_entry attrs;
	/* CREATE: mode and owner from the parent directory (attrs unknown) */
	bool parent_attrs;
};

struct splitfolders_plan {
	struct folder_change *changes;
	size_t count;
};

static bool has_dir(const struct bundle_tree *tree, const char *path,
		    const char *child)
{
	char full[BUNDLE_PATH_MAX + 16];
	const struct bundle_entry *e;

	snprintf(full, sizeof(full), "%s/%s", path, child);
	e = bundle_tree_find(tree, full);
	return e != NULL && e->type == BUNDLE_ENTRY_DIR;
}

/* path has a mail directory (cur, new, tmp, dbox-Mails) among its
   parents: no folder is below one (a tree read from the store that says
   otherwise is not followed) */
static bool below_mail_dir(const char *path)
{
	char seg[BUNDLE_NAME_MAX + 1];

	while (*path != '\0') {
		size_t len = strcspn(path, "/");

		if (path[len] == '\0')
			break;	/* the folder's own name: any */
		if (len <= BUNDLE_NAME_MAX) {
			memcpy(seg, path, len);
			seg[len] = '\0';
			if (mailpath_mail_dir(seg) != MAILPATH_DIR_OTHER)
				return true;
		}
		path += len;
		if (*path == '/')
			path++;
	}
	return false;
}

/* e (of tree) is a folder directory (splitfolders.h) */
static bool is_folder(const struct bundle_tree *tree,
		      const struct bundle_entry *e)
{
	return e->type == BUNDLE_ENTRY_DIR && !below_mail_dir(e->path) &&
		(e->guid[0] != '\0' || has_dir(tree, e->path, "cur") ||
		 has_dir(tree, e->path, MAILPATH_DBOX_MAILS));
}

/* the directory with guid in tree, or NULL */
static const struct bundle_entry *
find_guid(const struct bundle_tree *tree, const char *guid)
{
	for (size_t i = 0; tree != NULL && i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_DIR && strcmp(e->guid, guid) == 0)
			return e;
	}
	return NULL;
}

/* tree's copy of folder/name: its bytes, or NULL */
static const unsigned char *tree_file(const struct bundle_tree *tree,
				      const char *folder, const char *name,
				      size_t *size_r)
{
	char path[BUNDLE_PATH_MAX + 64];
	const struct bundle_entry *e;

	*size_r = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", folder, name) >=
	    sizeof(path))
		return NULL;
	e = bundle_tree_find(tree, path);
	if (e == NULL || e->type != BUNDLE_ENTRY_FILE || e->data == NULL)
		return NULL;
	*size_r = (size_t)e->size;
	return e->data;
}

/* the Dovecot mailbox GUID of tree's folder (maildir: its
   dovecot-uidlist's G field; sdbox: its index's dbox-hdr) into guid_r:
   true if there is one */
static bool dovecot_guid(const struct bundle_tree *tree, const char *folder,
			 char guid_r[BUNDLE_GUID_HEX_LEN + 1])
{
	const unsigned char *uidlist, *index, *log2, *log;
	size_t n0, n1, n2, n3;

	uidlist = tree_file(tree, folder, "dovecot-uidlist", &n0);
	if (uidlist != NULL)
		return dovecotidx_uidlist_guid(uidlist, n0, guid_r) > 0;
	index = tree_file(tree, folder, MAILPATH_DBOX_MAILS "/dovecot.index",
			  &n1);
	log2 = tree_file(tree, folder,
			 MAILPATH_DBOX_MAILS "/dovecot.index.log.2", &n2);
	log = tree_file(tree, folder, MAILPATH_DBOX_MAILS "/dovecot.index.log",
			&n3);
	return (index != NULL || log != NULL) &&
		dovecotidx_sdbox_guid_parse(index, n1, log2, n2, log, n3,
					    guid_r) > 0;
}

/* path is a folder without a GUID in the common base (it had held no
   mail when the split began) that the other writer's tree no longer has
   (renamed or deleted there) */
static bool empty_at_split_gone_there(const struct splitmerge_trees *trees,
				      const char *path)
{
	const struct bundle_entry *was;

	if (trees->common == NULL)
		return false;
	was = bundle_tree_find(trees->common, path);
	return was != NULL && was->type == BUNDLE_ENTRY_DIR &&
		was->guid[0] == '\0' &&
		bundle_tree_find(trees->other, path) == NULL;
}

/* A folder empty at the split, renamed here, that got its first mail
   under its old name there (the other writer's e, with a GUID): the
   local folder without a GUID, new here, whose Dovecot mailbox GUID is
   e's (both sides' dovecot-uidlist, or sdbox index, has the GUID Dovecot
   gave the folder at its creation, and a folder's first mail takes it as
   the folder GUID: mailstore.c), or NULL */
static const struct bundle_entry *
renamed_here_before_first_mail(const struct bundle_tree *local,
			       const struct splitmerge_trees *trees,
			       const struct bundle_entry *e)
{
	char guid[BUNDLE_GUID_HEX_LEN + 1];

	if (trees->common == NULL ||
	    bundle_tree_find(trees->common, e->path) == NULL ||
	    bundle_tree_find(trees->common, e->path)->guid[0] != '\0')
		return NULL;
	for (size_t i = 0; i < local->count; i++) {
		const struct bundle_entry *l = &local->entries[i];

		if (l->guid[0] == '\0' && is_folder(local, l) &&
		    bundle_tree_find(trees->common, l->path) == NULL &&
		    bundle_tree_find(trees->other, l->path) == NULL &&
		    dovecot_guid(local, l->path, guid) &&
		    strcmp(guid, e->guid) == 0)
			return l;
	}
	return NULL;
}

/* path is below (or is) a folder of an earlier change in plan */
static bool below_planned(const struct splitfolders_plan *plan,
			  const char *path)
{
	for (size_t i = 0; i < plan->count; i++) {
		size_t len = strlen(plan->changes[i].path);

		if (strncmp(path, plan->changes[i].path, len) == 0 &&
		    (path[len] == '/' || path[len] == '\0'))
			return true;
	}
	return false;
}

/* the entries of tree below dir, paths relative to it (stubs too if
   stubs) */
static struct bundle_tree *subtree(const struct bundle_tree *tree,
				   const char *dir, bool stubs)
{
	struct bundle_tree *sub = bundle_tree_new();
	size_t len = strlen(dir);
	const char *error;

	for (size_t i = 0; i < tree->count; i++) {
		struct bundle_entry e = tree->entries[i];

		if (strncmp(e.path, dir, len) != 0 || e.path[len] != '/' ||
		    (!stubs && e.type == BUNDLE_ENTRY_STUB))
			continue;
		e.path += len + 1;
		e.link_id = 0;
		if (bundle_tree_add(sub, &e, &error) < 0)
			obox_log(OBOX_LOG_WARNING, "split brain: folder %s: "
				 "%s\n", dir, error);
	}
	return sub;
}

static struct folder_change *plan_add(struct splitfolders_plan *plan,
				      enum folder_op op, const char *path)
{
	struct folder_change *c;

	c = realloc(plan->changes, (plan->count + 1) * sizeof(*c));
	if (c == NULL)
		abort();
	plan->changes = c;
	c = &plan->changes[plan->count++];
	memset(c, 0, sizeof(*c));
	c->op = op;
	c->path = strdup(path);
	if (c->path == NULL)
		abort();
	return c;
}

struct list_ctx {
	const char *user_prefix, *guid;
	struct objgc *gc;
	struct keylist keys;
};

static int list_cb(const struct objstore_list_entry *entry, void *context)
{
	struct list_ctx *ctx = context;
	struct keys_parsed parsed;

	if (!entry->is_prefix &&
	    keys_parse(ctx->user_prefix, entry->key, &parsed) ==
	    KEYS_FOLDER_BUNDLE && strcmp(parsed.guid, ctx->guid) == 0 &&
	    !objgc_is_garbage(ctx->gc, entry->key))
		(void)keylist_add(&ctx->keys, entry->key);
	return 0;
}

/* the other writer's tree of the folder with guid, from its bundles, or
   NULL (logged) */
static struct bundle_tree *folder_tree(struct objstore *store,
				       struct objgc *gc,
				       const char *user_prefix,
				       const char *guid,
				       struct splitfolders_counts *counts)
{
	struct list_ctx lctx = { .user_prefix = user_prefix, .guid = guid,
				 .gc = gc };
	struct splitmerge_trees trees = { 0 };
	struct bundle_tree *tree;
	char prefix[KEYS_PREFIX_MAX];

	if (keys_idx_prefix(user_prefix, guid, prefix, sizeof(prefix)) < 0)
		return NULL;
	if (objstore_list(store, prefix, NULL, list_cb, &lctx) < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: listing %s failed: "
			 "%s\n", prefix, objstore_error());
		keylist_clear(&lctx.keys);
		return NULL;
	}
	splitmerge_fetch(store, &lctx.keys, NULL, &trees);
	keylist_clear(&lctx.keys);
	counts->gets += trees.gets;
	tree = trees.other;
	trees.other = NULL;
	splitmerge_trees_free(&trees);
	return tree;
}

/* tree (the other writer's tree of a folder this machine deleted, which
   that writer changed: it comes back) with the mails it lists that are
   garbage here taken out of the garbage (objgc_revive()).  If one cannot
   be (a flush is deciding on it now), those revived are condemned again
   and NULL is returned: tried again at the next check (a folder made
   without that mail would look like an expunge to the other writer). */
static struct bundle_tree *revive_garbage(struct bundle_tree *tree,
					  struct objgc *gc,
					  unsigned int *revived_r)
{
	struct keylist revived = { 0 };
	bool failed = false;

	for (size_t i = 0; i < tree->count && !failed; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type != BUNDLE_ENTRY_STUB ||
		    !objgc_is_garbage(gc, e->key))
			continue;
		if (objgc_revive(gc, e->key) < 0 ||
		    keylist_add(&revived, e->key) < 0) {
			obox_log(OBOX_LOG_WARNING, "split brain: mail %s is "
				 "being deleted here: its folder comes back "
				 "at the next check\n", e->key);
			failed = true;
		}
	}
	if (failed) {
		for (size_t i = 0; i < revived.count; i++)
			objgc_condemn(gc, revived.keys[i]);
		bundle_tree_free(&tree);
	} else {
		*revived_r += revived.count;
	}
	keylist_clear(&revived);
	return tree;
}

/* tree without the stubs of keys this machine condemned (a folder it
   deleted whose mails the other writer still has: their objects may go
   once the grace ends) */
static struct bundle_tree *without_garbage(struct bundle_tree *tree,
					   struct objgc *gc)
{
	struct bundle_tree *out;
	const char *error;

	if (tree == NULL)
		return NULL;
	out = bundle_tree_new();
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    objgc_is_garbage(gc, e->key))
			continue;
		if (bundle_tree_add(out, e, &error) < 0)
			obox_log(OBOX_LOG_WARNING, "split brain: %s: %s\n",
				 e->path, error);
	}
	bundle_tree_free(&tree);
	return out;
}

/* some directory of tree (or its own entry e) has a GUID the user has */
static bool has_known_guid(const struct bundle_entry *e,
			   const struct bundle_tree *tree,
			   bool (*known_guid)(const char *, void *),
			   void *known_context)
{
	if (e->guid[0] != '\0' && known_guid(e->guid, known_context))
		return true;
	for (size_t i = 0; tree != NULL && i < tree->count; i++) {
		if (tree->entries[i].type == BUNDLE_ENTRY_DIR &&
		    tree->entries[i].guid[0] != '\0' &&
		    known_guid(tree->entries[i].guid, known_context))
			return true;
	}
	return false;
}

/* this machine deleted the folder with guid (its mails or bundles are
   its garbage): it is not made again from the other writer's tree, whose
   stubs of those mails would then point at objects about to go */
static bool deleted_here(struct objgc *gc, const char *user_prefix,
			 const char *guid)
{
	char prefix[KEYS_PREFIX_MAX];

	return keys_root_list_prefix(user_prefix, guid, prefix,
				     sizeof(prefix)) == 0 &&
		objgc_has_garbage_below(gc, prefix);
}

/* folders of the other writer's tree missing here */
static void plan_missing(struct splitfolders_plan *plan,
			 struct objstore *store, struct objgc *gc,
			 const char *user_prefix,
			 const struct bundle_tree *local,
			 const struct splitmerge_trees *trees,
			 bool (*known_guid)(const char *, void *),
			 void *known_context,
			 struct splitfolders_counts *counts)
{
	const struct bundle_tree *other = trees->other, *common = trees->common;

	for (size_t i = 0; i < other->count; i++) {
		const struct bundle_entry *e = &other->entries[i];
		const struct bundle_entry *here = bundle_tree_find(local, e->path);
		const struct bundle_entry *mine, *was;
		struct folder_change *c;

		if (!is_folder(other, e) || below_planned(plan, e->path))
			continue;
		if (here != NULL) {
			/* first mail there, none here yet: claim its GUID */
			if (here->type == BUNDLE_ENTRY_DIR &&
			    e->guid[0] != '\0' && here->guid[0] == '\0' &&
			    find_guid(local, e->guid) == NULL &&
			    !known_guid(e->guid, known_context)) {
				c = plan_add(plan, FOLDER_CLAIM, e->path);
				memcpy(c->guid, e->guid, sizeof(c->guid));
			}
			continue;
		}
		if (e->guid[0] != '\0') {
			mine = find_guid(local, e->guid);
			was = find_guid(common, e->guid);
			if (mine != NULL) {
				/* renamed there, not here: renamed here (also
				   one empty at the split, whose first mail
				   came here under the old name) */
				if ((was != NULL &&
				     strcmp(was->path, mine->path) == 0) ||
				    (was == NULL &&
				     empty_at_split_gone_there(trees,
							       mine->path))) {
					c = plan_add(plan, FOLDER_RENAME,
						     e->path);
					c->from = strdup(mine->path);
					if (c->from == NULL)
						abort();
					memcpy(c->guid, e->guid,
					       sizeof(c->guid));
				}
				continue;
			}
			if (was == NULL && !known_guid(e->guid, known_context) &&
			    (mine = renamed_here_before_first_mail(
					local, trees, e)) != NULL) {
				/* renamed here, first mail there: its GUID
				   here, so that its own merge brings the
				   mail */
				c = plan_add(plan, FOLDER_CLAIM, mine->path);
				memcpy(c->guid, e->guid, sizeof(c->guid));
				continue;
			}
			if (was != NULL ||
			    has_known_guid(e, NULL, known_guid,
					   known_context) ||
			    deleted_here(gc, user_prefix, e->guid))
				continue;	/* deleted here (a gone root of
						   splitbrain.c), or elsewhere */
			struct bundle_tree *tree =
				without_garbage(folder_tree(store, gc,
							    user_prefix,
							    e->guid, counts),
						gc);

			if (has_known_guid(e, tree, known_guid,
					   known_context)) {
				bundle_tree_free(&tree);
				continue;
			}
			c = plan_add(plan, FOLDER_CREATE, e->path);
			memcpy(c->guid, e->guid, sizeof(c->guid));
			c->attrs = *e;
			c->tree = tree;
			continue;
		}
		char dguid[BUNDLE_GUID_HEX_LEN + 1];

		if (common != NULL &&
		    bundle_tree_find(common, e->path) == NULL &&
		    dovecot_guid(other, e->path, dguid) &&
		    (mine = find_guid(local, dguid)) != NULL &&
		    empty_at_split_gone_there(trees, mine->path)) {
			/* empty at the split, renamed there before its
			   first mail, which came here under the old name */
			c = plan_add(plan, FOLDER_RENAME, e->path);
			c->from = strdup(mine->path);
			if (c->from == NULL)
				abort();
			memcpy(c->guid, dguid, sizeof(c->guid));
			continue;
		}
		was = common == NULL ? NULL : bundle_tree_find(common, e->path);
		if (was != NULL) {
			/* deleted here: again only if changed there */
			struct bundle_tree *a = subtree(other, e->path, true);
			struct bundle_tree *b = subtree(common, e->path, true);
			const char *why;
			bool same = bundle_tree_equal(a, b, &why);

			bundle_tree_free(&a);
			bundle_tree_free(&b);
			if (same)
				continue;
		}
		struct bundle_tree *tree = subtree(other, e->path, false);

		if (has_known_guid(e, tree, known_guid, known_context)) {
			/* a folder of it is here already, elsewhere */
			bundle_tree_free(&tree);
			continue;
		}
		c = plan_add(plan, FOLDER_CREATE, e->path);
		c->attrs = *e;
		c->tree = tree;
	}
}

/* folders of the common base the other writer deleted */
static void plan_deleted(struct splitfolders_plan *plan,
			 const struct bundle_tree *local,
			 const struct splitmerge_trees *trees)
{
	const struct bundle_tree *common = trees->common;

	for (size_t i = 0; common != NULL && i < common->count; i++) {
		const struct bundle_entry *e = &common->entries[i];
		const struct bundle_entry *here;
		struct folder_change *c;

		if (!is_folder(common, e) || e->guid[0] != '\0' ||
		    bundle_tree_find(trees->other, e->path) != NULL ||
		    (here = bundle_tree_find(local, e->path)) == NULL ||
		    here->type != BUNDLE_ENTRY_DIR || here->guid[0] != '\0' ||
		    below_planned(plan, e->path))
			continue;
		struct bundle_tree *tree = subtree(common, e->path, true);
		bool guid = false;

		for (size_t k = 0; k < tree->count && !guid; k++)
			guid = tree->entries[k].guid[0] != '\0';
		if (guid) {
			/* holds a folder that has held mails: kept */
			bundle_tree_free(&tree);
			continue;
		}
		c = plan_add(plan, FOLDER_REMOVE, e->path);
		c->attrs = *e;
		c->tree = tree;
	}
}

struct splitfolders_plan *
splitfolders_plan(struct objstore *store, struct objgc *gc,
		  const char *user_prefix, const struct bundle_tree *local,
		  const struct splitmerge_trees *trees,
		  bool (*known_guid)(const char *guid, void *context),
		  void *known_context, struct splitfolders_counts *counts)
{
	struct splitfolders_plan *plan;

	if (local == NULL || trees->other == NULL)
		return NULL;
	plan = calloc(1, sizeof(*plan));
	if (plan == NULL)
		abort();
	plan_missing(plan, store, gc, user_prefix, local, trees, known_guid,
		     known_context, counts);
	plan_deleted(plan, local, trees);
	if (plan->count == 0)
		splitfolders_plan_free(&plan);
	return plan;
}

/* the flags part of a stub's name ("<base>:2,<flags>" of maildir; ""
   without: new/, sdbox's u.N) */
static const char *name_flags(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *info = strstr(slash == NULL ? path : slash + 1, ":2,");

	return info == NULL ? "" : info + 3;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL;	/* the end of s */
}

static int u64_cmp(const void *p1, const void *p2)
{
	uint64_t a = *(const uint64_t *)p1, b = *(const uint64_t *)p2;

	return a < b ? -1 : a > b ? 1 : 0;
}

int splitfolders_mail_digest(const struct bundle_tree *tree,
			     struct splitfolders_digest *digest_r)
{
	size_t n = 0;

	memset(digest_r, 0, sizeof(*digest_r));
	for (size_t i = 0; i < tree->count; i++)
		n += tree->entries[i].type == BUNDLE_ENTRY_STUB ? 1 : 0;
	digest_r->hashes = calloc(n + 1, sizeof(uint64_t));
	if (digest_r->hashes == NULL)
		return -1;
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB)
			digest_r->hashes[digest_r->count++] =
				fnv1a(fnv1a(0xcbf29ce484222325ULL, e->key),
				      name_flags(e->path));
	}
	qsort(digest_r->hashes, digest_r->count, sizeof(uint64_t), u64_cmp);
	return 0;
}

void splitfolders_digest_free(struct splitfolders_digest *digest)
{
	free(digest->hashes);
	memset(digest, 0, sizeof(*digest));
}

struct splitfolders_plan *
splitfolders_plan_gone(struct objstore *store, struct objgc *gc,
		       const char *user_prefix, const char *guid,
		       const char *path,
		       const struct splitfolders_digest *had,
		       struct splitfolders_counts *counts)
{
	struct splitfolders_digest there;
	struct splitfolders_plan *plan;
	struct folder_change *c;
	struct bundle_tree *tree;
	bool changed;

	if (below_mail_dir(path))
		return NULL;
	tree = folder_tree(store, gc, user_prefix, guid, counts);
	if (tree == NULL || splitfolders_mail_digest(tree, &there) < 0) {
		bundle_tree_free(&tree);
		return NULL;
	}
	/* its mails and their flags, not its index files (a SELECT there
	   rewrites those) */
	changed = there.count != had->count ||
		memcmp(there.hashes, had->hashes,
		       there.count * sizeof(uint64_t)) != 0;
	splitfolders_digest_free(&there);
	if (!changed ||
	    (tree = revive_garbage(tree, gc, &counts->revived)) == NULL) {
		bundle_tree_free(&tree);
		return NULL;
	}
	plan = calloc(1, sizeof(*plan));
	if (plan == NULL)
		abort();
	c = plan_add(plan, FOLDER_CREATE, path);
	memcpy(c->guid, guid, sizeof(c->guid));
	c->parent_attrs = true;
	c->tree = tree;
	return plan;
}

void splitfolders_plan_free(struct splitfolders_plan **_plan)
{
	struct splitfolders_plan *plan = *_plan;

	if (plan == NULL)
		return;
	*_plan = NULL;
	for (size_t i = 0; i < plan->count; i++) {
		free(plan->changes[i].path);
		free(plan->changes[i].from);
		bundle_tree_free(&plan->changes[i].tree);
	}
	free(plan->changes);
	free(plan);
}

/* the parent directory of path ("" for a top-level name) into buf */
static void parent_of(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');

	snprintf(buf, size, "%.*s", slash == NULL ? 0 : (int)(slash - path),
		 path);
}

/* an fd of path's parent below root_fd (pathopen(): no symlink, no
   ".."), its last segment into *name_r; -1 with errno */
static int parent_open(int root_fd, const char *path, const char **name_r)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');

	*name_r = slash == NULL ? path : slash + 1;
	parent_of(path, parent, sizeof(parent));
	return parent[0] == '\0' ? dup(root_fd) :
		pathopen(root_fd, parent, O_RDONLY | O_DIRECTORY);
}

static void changed_add(struct keylist *changed_dirs, const char *path)
{
	char parent[PATH_MAX];

	parent_of(path, parent, sizeof(parent));
	if (!keylist_has(changed_dirs, parent))
		(void)keylist_add(changed_dirs, parent);
}

/* the GUID xattr of dir fd: 1 (into guid_r), 0 none, -1 error */
static int fd_guid(int fd, char guid_r[BUNDLE_GUID_HEX_LEN + 1])
{
	ssize_t len = fgetxattr(fd, BUNDLE_XATTR_GUID, guid_r,
				BUNDLE_GUID_HEX_LEN);

	if (len < 0)
		return errno == ENODATA ? 0 : -1;
	guid_r[len] = '\0';
	return 1;
}

/* the folder directory's own attributes, as the other writer has them */
static int dir_attrs(int fd, const struct bundle_entry *e)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT },
				  { e->mtime_sec, e->mtime_nsec } };

	if (fchmod(fd, e->mode & 07777) < 0 ||
	    (geteuid() == 0 && fchown(fd, e->uid, e->gid) < 0))
		return -1;
	return futimens(fd, ts);
}

/* fd gets the mode bits and owner of its parent pfd */
static int parent_attrs(int pfd, int fd)
{
	struct stat st;

	if (fstat(pfd, &st) < 0 || fchmod(fd, st.st_mode & 07777) < 0)
		return -1;
	return geteuid() == 0 ? fchown(fd, st.st_uid, st.st_gid) : 0;
}

static int apply_create(const struct folder_change *c, int root_fd,
			const char **error_r)
{
	const char *name;
	int pfd, fd, ret = -1;
	struct stat st;

	pfd = parent_open(root_fd, c->path, &name);
	if (pfd < 0) {
		*error_r = "its parent is gone here";
		return -1;
	}
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT) {
		*error_r = "the name is taken here";
		close(pfd);
		return -1;
	}
	if (mkdirat(pfd, name, 0700) < 0) {
		*error_r = strerror(errno);
		close(pfd);
		return -1;
	}
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0) {
		*error_r = strerror(errno);
	} else if (c->guid[0] != '\0' &&
		   fsetxattr(fd, BUNDLE_XATTR_GUID, c->guid, strlen(c->guid),
			     XATTR_CREATE) < 0) {
		*error_r = strerror(errno);
	} else if (c->tree != NULL &&
		   bundle_tree_write(c->tree, fd, error_r) < 0) {
		/* error_r set */
	} else if (c->parent_attrs && parent_attrs(pfd, fd) < 0) {
		*error_r = strerror(errno);
	} else if (!c->parent_attrs && dir_attrs(fd, &c->attrs) < 0) {
		*error_r = strerror(errno);
	} else {
		ret = 0;
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		rmtree_at(pfd, name, true);
	close(pfd);
	return ret;
}

static int apply_rename(const struct folder_change *c, int root_fd,
			const char **error_r)
{
	char guid[BUNDLE_GUID_HEX_LEN + 1];
	int fd = pathopen(root_fd, c->from, O_RDONLY | O_DIRECTORY);
	int ret;

	if (fd < 0) {
		*error_r = "it is gone here";
		return -1;
	}
	ret = fd_guid(fd, guid);
	close(fd);
	if (ret <= 0 || strcmp(guid, c->guid) != 0) {
		*error_r = "it is another folder here now";
		return -1;
	}
	/* by parent fds (pathopen() refuses symlinks): a path of the other
	   writer's tree is not followed out of the user's */
	const char *from_name, *to_name;
	int from_fd = parent_open(root_fd, c->from, &from_name);
	int to_fd = parent_open(root_fd, c->path, &to_name);

	ret = from_fd < 0 || to_fd < 0 ? -1 :
		renameat2(from_fd, from_name, to_fd, to_name,
			  RENAME_NOREPLACE);
	if (ret < 0)
		*error_r = strerror(errno);
	if (from_fd >= 0)
		close(from_fd);
	if (to_fd >= 0)
		close(to_fd);
	return ret < 0 ? -1 : 0;
}

static int apply_claim(const struct folder_change *c, int root_fd,
		       const char **error_r)
{
	int fd = pathopen(root_fd, c->path, O_RDONLY | O_DIRECTORY);
	int ret = -1;

	if (fd < 0) {
		*error_r = "it is gone here";
		return -1;
	}
	if (fsetxattr(fd, BUNDLE_XATTR_GUID, c->guid, strlen(c->guid),
		      XATTR_CREATE) < 0)
		*error_r = errno == EEXIST ? "it got a GUID here meanwhile" :
			strerror(errno);
	else
		ret = 0;
	close(fd);
	return ret;
}

static int apply_remove(const struct folder_change *c, int root_fd,
			const char **error_r)
{
	char guid[BUNDLE_GUID_HEX_LEN + 1];
	struct bundle_tree *here = NULL;
	const char *why, *name;
	int fd, pfd;
	bool same;

	fd = pathopen(root_fd, c->path, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		*error_r = "it is gone here";
		return -1;
	}
	if (fd_guid(fd, guid) != 0) {
		close(fd);
		*error_r = "it has received mail here";
		return -1;
	}
	if (bundle_tree_scan(fd, &here, &why) < 0) {
		close(fd);
		*error_r = why;
		return -1;
	}
	close(fd);
	for (size_t k = 0; k < here->count; k++) {
		if (here->entries[k].guid[0] != '\0') {
			bundle_tree_free(&here);
			*error_r = "it holds a folder that has received mail here";
			return -1;
		}
	}
	same = bundle_tree_equal(here, c->tree, &why);
	bundle_tree_free(&here);
	if (!same) {
		*error_r = "it was changed here";
		return -1;
	}
	pfd = parent_open(root_fd, c->path, &name);
	if (pfd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	rmtree_at(pfd, name, false);
	close(pfd);
	return 0;
}

void splitfolders_apply(const struct splitfolders_plan *plan, int root_fd,
			struct keylist *changed_dirs, struct keylist *names,
			struct splitfolders_counts *counts)
{
	static const char *const what[] = {
		[FOLDER_CREATE] = "created", [FOLDER_RENAME] = "renamed",
		[FOLDER_CLAIM] = "given its GUID",
		[FOLDER_REMOVE] = "removed",
	};
	static int (*const apply[])(const struct folder_change *, int,
				    const char **) = {
		[FOLDER_CREATE] = apply_create, [FOLDER_RENAME] = apply_rename,
		[FOLDER_CLAIM] = apply_claim, [FOLDER_REMOVE] = apply_remove,
	};
	unsigned int *const count[] = {
		[FOLDER_CREATE] = &counts->created,
		[FOLDER_RENAME] = &counts->renamed,
		[FOLDER_CLAIM] = &counts->claimed,
		[FOLDER_REMOVE] = &counts->removed,
	};

	for (size_t i = 0; plan != NULL && i < plan->count; i++) {
		const struct folder_change *c = &plan->changes[i];
		const char *error = NULL;

		if (apply[c->op](c, root_fd, &error) < 0) {
			obox_log(OBOX_LOG_WARNING, "split brain: folder %s not "
				 "%s here as the other writer has it: %s\n",
				 c->path, what[c->op], error);
			continue;
		}
		obox_log(OBOX_LOG_WARNING, "split brain: folder %s%s%s%s %s "
			 "here as the other writer has it\n", c->path,
			 c->from == NULL ? "" : " (was ",
			 c->from == NULL ? "" : c->from,
			 c->from == NULL ? "" : ")", what[c->op]);
		changed_add(changed_dirs, c->path);
		(void)keylist_add(names, c->path);
		if (c->from != NULL) {
			changed_add(changed_dirs, c->from);
			(void)keylist_add(names, c->from);
		}
		(*count[c->op])++;
	}
}
