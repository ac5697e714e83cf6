/* userload-private.h: what userload.c (listing, bundles, trees) and
 * userload-rescan.c (putting mails back, owners, sdbox rebuild marks)
 * share. */
#ifndef OBOXFS_USERLOAD_PRIVATE_H
#define OBOXFS_USERLOAD_PRIVATE_H

#include "userload.h"
#include "lazydir.h"
#include "bundle.h"
#include "ids.h"
#include "keys.h"
#include "objstore.h"
#include "objstore-fetch.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* bundle GETs a load runs at once (ul_prefetch_root()), and fetched
   bundles held before they are used */
#define UL_FETCH_THREADS 4
#define UL_FETCH_HELD 8

/* a folder placed from its mails' metadata: HEADs tried at most */
#define PLACE_HEAD_TRIES 3

/* What a loaded tree says about the mails it misses (bundle.h): mail
   objects made before (secs, usecs) that it does not reference need not
   be listed.  Usable when secs is not 0 and single_writer (one base and
   no two diffs of one seq: another writer's mails are not covered). */
struct ul_mark {
	uint32_t secs, usecs;
	bool single_writer;
};

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
	/* the tree fetched during the listing (a big folder: see
	   userload-list.c), for load_root(); NULL if none was usable */
	struct bundle_tree *tree;
	bool tree_fetched;
	/* its idx/ was listed on its own: the main listing's bundle keys
	   of it are already known */
	bool bundles_listed;
	/* the listing stopped once at it to look at its bundles */
	bool skip_tried;
	/* its bundles were queued on ctx->fetcher (ul_prefetch_root()) */
	bool prefetched;
	/* the watermark of its tree (ul_load_tree()) */
	struct ul_mark mark;
	/* ul_load_tree() loaded one writer's chain whole (userload.h
	   struct userload_root): chain_base is a copy of its base when a
	   diff was applied (else load_root() keeps the tree written as
	   the base), load_root() keeps the tree written as chain_last */
	bool chain_ok;
	struct bundle_tree *chain_base, *chain_last;
	size_t chain_base_size, chain_base_idx;
	uint32_t chain_seq;
};

struct ul_ctx {
	struct objstore *store;
	const char *user;
	int dir_fd;
	char prefix[KEYS_PREFIX_MAX];	/* keys_user_prefix() */
	struct ul_root *roots;		/* [0] is the user root */
	size_t count, alloc;
	size_t *queue;			/* placed roots still to load */
	size_t queue_head, queue_count;
	size_t queue_prefetched;	/* queue[] below it: prefetched */
	size_t last_ref_root;		/* mark_referenced()'s last hit */
	char **rebuild_dirs;		/* dbox-Mails dirs that got mails */
	size_t rebuild_count;
	bool found;
	/* the listing stopped at root skip_root's mails (userload-list.c);
	   last_key: the last key it gave */
	bool skip_requested;
	size_t skip_root;
	char last_key[OBJSTORE_KEY_MAX + 1];
	/* entries the listings gave (userload-list.c) */
	size_t keys_listed;
	struct userload_stats stats;
	/* GETs of bundles run ahead (objstore-fetch.h); NULL until the
	   first ul_prefetch_root() */
	struct objstore_fetcher *fetcher;
	userload_skip_cb *skip;
	void *skip_context;
	/* lazy tables (NULL: none) and the directories whose tables are
	   written once every mail is back (paths from the user dir) */
	struct lazydir *lazy;
	struct lazydir_split *lazy_splits;
	size_t lazy_count;
};

/* userload-util.c: allocation (aborts when out of memory), errors, roots */
void *ul_xrealloc(void *p, size_t size);
char *ul_xstrdup(const char *s);
char *ul_path_join(const char *a, const char *b);
/* set *error_r and errno = err; returns -1 */
int ul_fail(const char **error_r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool ul_store_error_is_fatal(void);
bool ul_local_error_is_path(int err);
size_t ul_root_get(struct ul_ctx *ctx, const char *guid);
/* Is key a mail of this user?  Fills guid_r. */
bool ul_mail_key_parse(const struct ul_ctx *ctx, const char *key,
		       char guid_r[IDS_HEX_LEN + 1]);
int ul_dir_is_empty(int fd);
/* give root idx its path and queue it for loading */
void ul_place_root(struct ul_ctx *ctx, size_t idx, const char *path);
/* userload-bundles.c: the tree of root from its bundles: *tree_r NULL if
   it has none usable; *mark_r from the bundle(s) applied.  -1 only on a
   store error that fails the whole load. */
int ul_load_tree(struct ul_ctx *ctx, struct ul_root *root,
		 struct bundle_tree **tree_r, struct ul_mark *mark_r,
		 const char **error_r);
/* Queue the bundles ul_load_tree() will GET for root idx (its newest base
   and that base's diffs) on ctx->fetcher, so that they are fetched while
   the load does other work: once per root, nothing without bundles.
   Only for a root the load will load: the user root, a root placed
   (ul_process_queue()), the big folder the listing stopped at. */
void ul_prefetch_root(struct ul_ctx *ctx, size_t idx);
/* forget root's chain (chain_ok and the trees kept) */
void ul_chain_reset(struct ul_root *root);
/* userload-list.c: list the user's objects into ctx (bundle keys and mail
   keys per root), skipping the older mails of big folders */
int ul_list(struct ul_ctx *ctx, const char **error_r);
/* userload.c: load the queued roots */
int ul_process_queue(struct ul_ctx *ctx, const char **error_r);
/* userload-rescan.c: these never load a root: ul_place_from_mails() only
   queues it (the caller runs ul_process_queue()) */
int ul_place_from_mails(struct ul_ctx *ctx, size_t idx,
       const char **error_r);
int ul_put_back(struct ul_ctx *ctx, size_t idx, size_t m,
      const char **error_r);
int ul_fix_top_owner(struct ul_ctx *ctx, const char **error_r);
int ul_rebuild_sdbox_indexes(struct ul_ctx *ctx, const char **error_r);
int ul_dir_open_create(struct ul_ctx *ctx, const char *path);

#endif
