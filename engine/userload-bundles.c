/* userload-bundles.c: a root's tree from its bundles: the newest base
 * fetched and decoded, the newest diff of it that applies, stubs of other
 * users' keys dropped; and the mail watermark of what was applied. */
#include "userload-private.h"
#include "bundle.h"
#include "keys.h"
#include "log.h"
#include "objstore.h"
#include "objstore-fetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* a watermark this far ahead of the wall clock is not believed */
#define UL_MARK_MAX_AHEAD_US (86400ULL * 1000000)

/* the tree's watermark: and this machine's ids go past it from now on,
   so that the mails it stores are never below a watermark it knows of
   (its clock may be behind the writer's).  One from the far future (a
   wrong clock, a hostile bundle) is ignored: then the whole folder is
   listed, and the ids' clock is not dragged along. */
static void mark_from_info(struct ul_ctx *ctx, struct ul_mark *mark,
			   const struct bundle_info *info)
{
	uint64_t us = ids_us(info->mails_secs, info->mails_usecs);
	struct timeval tv;

	gettimeofday(&tv, NULL);
	if (us > ids_us((uint32_t)tv.tv_sec, (uint32_t)tv.tv_usec) +
	    UL_MARK_MAX_AHEAD_US) {
		obox_log(OBOX_LOG_WARNING, "userload(%s): a bundle's mail "
			 "watermark is more than a day ahead of this clock: "
			 "not used\n", ctx->user);
		mark->secs = mark->usecs = 0;
		return;
	}
	mark->secs = info->mails_secs;
	mark->usecs = info->mails_usecs;
	ids_clock_raise(us);
}

/* the bytes of bundle key: fetched ahead (ul_prefetch_root()) or now */
static int get_bundle_data(struct ul_ctx *ctx, const char *key,
			   void **data_r, size_t *size_r)
{
	int ret;

	if (ctx->fetcher != NULL &&
	    objstore_fetcher_take(ctx->fetcher, key, &ret, data_r,
				  size_r) > 0)
		return ret;
	return objstore_get(ctx->store, key, 0, OBJSTORE_TO_END,
			    USERLOAD_BUNDLE_MAX, data_r, size_r);
}

/* GET and decode key, expected to be named name.  Returns 1 with
   *bundle_r (and its stored bytes in *size_r), 0 if it is bad or gone
   (logged), -1 on a store error. */
static int fetch_bundle(struct ul_ctx *ctx, const char *key,
			const struct bundle_name *name,
			struct bundle **bundle_r, size_t *size_r,
			const char **error_r)
{
	struct bundle_name hdr_name;
	const char *error;
	size_t size;
	void *data;
	int ret;

	if (get_bundle_data(ctx, key, &data, &size) < 0) {
		if (ul_store_error_is_fatal())
			return ul_fail(error_r, EIO, "%s", objstore_error());
		obox_log(OBOX_LOG_ERR, "userload(%s): bundle %s: %s\n",
			 ctx->user, key, objstore_error());
		ctx->stats.bundles_rejected++;
		return 0;
	}
	ctx->stats.bundles_fetched++;
	*size_r = size;
	ret = bundle_decode(data, size, USERLOAD_BUNDLE_MAX, bundle_r, &error);
	free(data);
	if (ret < 0) {
		obox_log(OBOX_LOG_ERR, "userload(%s): corrupt bundle %s: %s\n",
			 ctx->user, key, error);
		ctx->stats.bundles_rejected++;
		return 0;
	}
	bundle_name_from_info(&(*bundle_r)->info, &hdr_name);
	if (bundle_name_cmp(&hdr_name, name) != 0) {
		char buf[BUNDLE_NAME_DIFF_LEN + 1];

		bundle_name_format(&hdr_name, buf, sizeof(buf));
		obox_log(OBOX_LOG_ERR, "userload(%s): corrupt bundle %s: its "
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

/* The diffs of base: fetched, applied newest first until one applies;
   *mark_r is updated from the one applied, root->chain_seq is the newest
   seq of them. */
static int apply_diffs(struct ul_ctx *ctx, struct ul_root *root,
		       const size_t *diff_idx, size_t diff_count,
		       struct bundle_tree *tree, struct ul_mark *mark_r,
		       const char **error_r)
{
	struct ul_diff *diffs = ul_xrealloc(NULL, diff_count * sizeof(*diffs));
	size_t n = 0, i;
	const char *error;
	int ret = 0;

	for (i = 0; i < diff_count && ret == 0; i++) {
		size_t k = diff_idx[i], size;

		diffs[n].key = root->bundle_keys[k];
		ret = fetch_bundle(ctx, root->bundle_keys[k], &root->names[k],
				   &diffs[n].bundle, &size, error_r);
		if (ret > 0) {
			if (diffs[n].bundle->info.seq > root->chain_seq)
				root->chain_seq = diffs[n].bundle->info.seq;
			n++;
			ret = 0;
		}
	}
	if (ret == 0 && n > 0) {
		qsort(diffs, n, sizeof(*diffs), ul_diff_cmp_desc);
		if (n > 1 && diffs[0].bundle->info.seq ==
		    diffs[1].bundle->info.seq) {
			obox_log(OBOX_LOG_WARNING, "userload(%s): diffs %s and "
				 "%s have the same seq (two writers): using "
				 "the first\n", ctx->user, diffs[0].key,
				 diffs[1].key);
			mark_r->single_writer = false;
		}
		for (i = 0; i < n; i++) {
			if (bundle_apply_diff(tree, diffs[i].bundle->diff,
					      &error) == 0) {
				mark_from_info(ctx, mark_r, &diffs[i].bundle->info);
				break;
			}
			obox_log(OBOX_LOG_ERR, "userload(%s): diff bundle %s "
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

/* Drop stubs whose key is not one of this user's mail objects; true if
   there were any. */
static bool tree_drop_foreign_stubs(struct ul_ctx *ctx,
				    struct bundle_tree **_tree)
{
	struct bundle_tree *tree = *_tree, *clean;
	char guid[IDS_HEX_LEN + 1];
	const char *error;
	size_t i, bad = 0;

	for (i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    !ul_mail_key_parse(ctx, e->key, guid))
			bad++;
	}
	if (bad == 0)
		return false;
	clean = bundle_tree_new();
	for (i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    !ul_mail_key_parse(ctx, e->key, guid)) {
			obox_log(OBOX_LOG_ERR, "userload(%s): dropping stub "
				 "%s: key %.200s is not a mail of this user\n",
				 ctx->user, e->path, e->key);
			continue;
		}
		if (bundle_tree_add(clean, e, &error) < 0)
			abort(); /* a checked tree's entries always add */
	}
	bundle_tree_free(_tree);
	*_tree = clean;
	return true;
}

void ul_prefetch_root(struct ul_ctx *ctx, size_t idx)
{
	struct ul_root *root = &ctx->roots[idx];
	size_t *diff_idx, diff_count;
	long base_idx;

	if (root->prefetched || root->bundle_count == 0)
		return;
	root->prefetched = true;
	diff_idx = ul_xrealloc(NULL, root->bundle_count * sizeof(*diff_idx));
	bundle_names_select(root->names, root->bundle_count, &base_idx,
			    diff_idx, &diff_count);
	if (base_idx >= 0) {
		if (ctx->fetcher == NULL)
			ctx->fetcher = objstore_fetcher_init(ctx->store,
				UL_FETCH_THREADS, UL_FETCH_HELD);
		objstore_fetcher_add(ctx->fetcher,
				     root->bundle_keys[base_idx],
				     USERLOAD_BUNDLE_MAX);
		for (size_t i = 0; i < diff_count; i++)
			objstore_fetcher_add(ctx->fetcher,
					     root->bundle_keys[diff_idx[i]],
					     USERLOAD_BUNDLE_MAX);
	}
	free(diff_idx);
}

int ul_load_tree(struct ul_ctx *ctx, struct ul_root *root,
		 struct bundle_tree **tree_r, struct ul_mark *mark_r,
		 const char **error_r)
{
	size_t *diff_idx, diff_count, bases = 0, base_size;
	struct bundle *base;
	long base_idx;
	int ret;

	*tree_r = NULL;
	memset(mark_r, 0, sizeof(*mark_r));
	if (root->bundle_count == 0)
		return 0;
	/* the base and its diffs in parallel */
	ul_prefetch_root(ctx, (size_t)(root - ctx->roots));
	for (size_t i = 0; i < root->bundle_count; i++)
		bases += root->names[i].is_diff ? 0 : 1;
	/* two bases: an old one not deleted yet, or another writer's */
	mark_r->single_writer = bases == 1;
	diff_idx = ul_xrealloc(NULL, root->bundle_count * sizeof(*diff_idx));
	bundle_names_select(root->names, root->bundle_count, &base_idx,
			    diff_idx, &diff_count);
	if (base_idx < 0) {
		obox_log(OBOX_LOG_ERR, "userload(%s): %s has diff bundles but "
			 "no base (e.g. %s)\n", ctx->user,
			 root->guid[0] == '\0' ? "the user root" : root->guid,
			 root->bundle_keys[0]);
		free(diff_idx);
		return 0;
	}
	ret = fetch_bundle(ctx, root->bundle_keys[base_idx],
			   &root->names[base_idx], &base, &base_size, error_r);
	if (ret <= 0) {
		/* its diffs fetched ahead are not wanted now */
		for (size_t i = 0; ctx->fetcher != NULL && i < diff_count; i++)
			objstore_fetcher_drop(ctx->fetcher,
					      root->bundle_keys[diff_idx[i]]);
		free(diff_idx);
		return ret;
	}
	*tree_r = base->tree;
	base->tree = NULL;
	mark_from_info(ctx, mark_r, &base->info);
	bundle_free(&base);
	/* one writer's chain: its base is kept for the uploader (a copy,
	   if a diff is applied to the tree) */
	ul_chain_reset(root);
	if (mark_r->single_writer) {
		root->chain_ok = true;
		root->chain_base_size = base_size;
		root->chain_base_idx = (size_t)base_idx;
		if (diff_count > 0)
			root->chain_base = bundle_tree_copy(*tree_r);
	}
	ret = apply_diffs(ctx, root, diff_idx, diff_count, *tree_r, mark_r,
			  error_r);
	free(diff_idx);
	if (ret < 0) {
		bundle_tree_free(tree_r);
		ul_chain_reset(root);
		return -1;
	}
	if (tree_drop_foreign_stubs(ctx, tree_r) || !mark_r->single_writer)
		ul_chain_reset(root);
	root->mark = *mark_r;
	return 0;
}

void ul_chain_reset(struct ul_root *root)
{
	root->chain_ok = false;
	bundle_tree_free(&root->chain_base);
	bundle_tree_free(&root->chain_last);
	root->chain_base_size = root->chain_base_idx = 0;
	root->chain_seq = 0;
}

