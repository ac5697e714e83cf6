/* userload-list.c: the listing a user load starts with: every bundle key
 * and mail key below the user's prefix, in one LIST, except the older
 * mails of big folders.
 *
 * A folder's mail keys sort before its idx/ bundles, and mail oids are
 * time-ordered (ids.h).  Once the listing has given UL_SKIP_MAILS mail
 * keys of one folder, it stops there, lists that folder's idx/ on its
 * own, fetches its tree (which the load needs anyway) and goes on from
 * the tree's mail watermark (bundle.h): the mails made before it are
 * either in the tree or released, so they are not listed.  A 20,000-mail
 * folder then costs no more requests than a 1,000-mail one, not 19 more
 * pages.  The first listing asks for UL_FIRST_PAGE_KEYS keys in its first
 * page (objstore_list_paced()), and a first folder whose mails fill that
 * page (after the user root's few bundle keys) is skipped at once, before
 * a second page is asked for.  Without a usable watermark (no bundle, an old bundle, two
 * writers) the listing goes on where it stopped, as if it had not.
 */
#include "userload-private.h"
#include "bundle.h"
#include "keys.h"
#include "log.h"
#include "objstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* about one S3 listing page: mail keys of one folder after which the
   listing skips to the folder's watermark */
#define UL_SKIP_MAILS 1000
/* the keys the first page of a load's listing asks for, and the mail keys
   after which it skips a folder whose mails are all it has given so far:
   a LIST page takes longer the more keys it has (1,000 keys on the local
   Swift: ~85 ms more than 100), so a user whose first folder has 1,000
   mails costs a page of 100 keys and a listing of that folder's idx/, not
   a page of 1,000 keys.  Only the first folder: a skip costs two small
   requests, which many folders of a few hundred mails would pay each. */
#define UL_FIRST_PAGE_KEYS 100

static void root_add_bundle(struct ul_root *root, const char *key,
			    const struct bundle_name *name)
{
	if (root->bundle_count == root->bundle_alloc) {
		root->bundle_alloc = root->bundle_alloc == 0 ? 4 :
			root->bundle_alloc * 2;
		root->bundle_keys = ul_xrealloc(root->bundle_keys,
			root->bundle_alloc * sizeof(*root->bundle_keys));
		root->names = ul_xrealloc(root->names,
			root->bundle_alloc * sizeof(*root->names));
	}
	root->bundle_keys[root->bundle_count] = ul_xstrdup(key);
	root->names[root->bundle_count++] = *name;
}

static void root_add_mail(struct ul_root *root, const char *key)
{
	if (root->mail_count == root->mail_alloc) {
		root->mail_alloc = root->mail_alloc == 0 ? 16 :
			root->mail_alloc * 2;
		root->mail_keys = ul_xrealloc(root->mail_keys,
			root->mail_alloc * sizeof(*root->mail_keys));
	}
	root->mail_keys[root->mail_count++] = ul_xstrdup(key);
}

static void add_bundle_key(struct ul_ctx *ctx, const char *guid,
			   const char *key, const char *name)
{
	struct bundle_name bname;
	const char *error;
	size_t idx;

	if (bundle_name_parse(name, &bname, &error) < 0) {
		obox_log(OBOX_LOG_WARNING, "userload(%s): ignoring %s: %s\n",
			 ctx->user, key, error);
		return;
	}
	idx = ul_root_get(ctx, guid);
	/* else known from its own idx/ listing */
	if (!ctx->roots[idx].bundles_listed)
		root_add_bundle(&ctx->roots[idx], key, &bname);
	ctx->found = true;
}

/* Root idx's mails are all the mails listed, and they fill the first
   page (the user root's bundles sort before them: skipped before a
   second page is asked for; half a page of mails at least, as a skip
   costs two small requests) or are a page's worth (many keys before
   them). */
static bool first_page_filled_by(const struct ul_ctx *ctx, size_t idx)
{
	size_t mails = ctx->roots[idx].mail_count;

	if (ctx->stats.mails_listed != mails)
		return false;
	return (ctx->keys_listed == UL_FIRST_PAGE_KEYS &&
		mails >= UL_FIRST_PAGE_KEYS / 2) ||
		mails >= UL_FIRST_PAGE_KEYS;
}

static int list_cb(const struct objstore_list_entry *entry, void *context)
{
	struct ul_ctx *ctx = context;
	struct keys_parsed parsed;
	size_t idx;

	ctx->keys_listed++;
	switch (entry->is_prefix ? KEYS_OTHER :
		keys_parse(ctx->prefix, entry->key, &parsed)) {
	case KEYS_ROOT_BUNDLE:
	case KEYS_FOLDER_BUNDLE:
		add_bundle_key(ctx, parsed.guid, entry->key, parsed.name);
		return 0;
	case KEYS_MAIL:
		idx = ul_root_get(ctx, parsed.guid);
		root_add_mail(&ctx->roots[idx], entry->key);
		ctx->found = true;
		ctx->stats.mails_listed++;
		if (!ctx->roots[idx].skip_tried &&
		    (ctx->roots[idx].mail_count >= UL_SKIP_MAILS ||
		     first_page_filled_by(ctx, idx))) {
			/* keys are at most OBJSTORE_KEY_MAX (keys_parse()) */
			ctx->roots[idx].skip_tried = true;
			ctx->skip_requested = true;
			ctx->skip_root = idx;
			snprintf(ctx->last_key, sizeof(ctx->last_key), "%s",
				 entry->key);
			return 1;
		}
		return 0;
	case KEYS_OTHER:
		break;
	}
	obox_log(OBOX_LOG_DEBUG, "userload(%s): ignoring object %s\n",
		 ctx->user, entry->key);
	return 0;
}

/* a listing of one root's idx/ */
struct idx_list_ctx {
	struct ul_ctx *ctx;
	size_t idx;
};

static int idx_list_cb(const struct objstore_list_entry *entry,
		       void *context)
{
	struct idx_list_ctx *ictx = context;
	struct ul_ctx *ctx = ictx->ctx;
	struct ul_root *root = &ctx->roots[ictx->idx];
	struct keys_parsed parsed;
	struct bundle_name bname;
	const char *error;

	if (entry->is_prefix ||
	    keys_parse(ctx->prefix, entry->key, &parsed) != KEYS_FOLDER_BUNDLE ||
	    strcmp(parsed.guid, root->guid) != 0)
		return 0;	/* the main listing logs what it ignores */
	if (bundle_name_parse(parsed.name, &bname, &error) < 0)
		return 0;
	root_add_bundle(root, entry->key, &bname);
	return 0;
}

/* The listing stopped at the mails of root idx: list its bundles, fetch
   its tree and say where the listing goes on (start_buf: after the last
   key listed, or at the tree's watermark if that is further). */
static int skip_old_mails(struct ul_ctx *ctx, size_t idx,
			  char start_buf[OBJSTORE_KEY_MAX + 1],
			  const char **error_r)
{
	struct idx_list_ctx ictx = { .ctx = ctx, .idx = idx };
	char idx_prefix[KEYS_PREFIX_MAX], mark_key[OBJSTORE_KEY_MAX + 1];
	struct ul_root *root = &ctx->roots[idx];
	struct ul_mark mark;

	memcpy(start_buf, ctx->last_key, OBJSTORE_KEY_MAX + 1);
	/* the user root's bundles (its keys sort first: all listed) are
	   fetched while this folder's idx/ is listed */
	if (idx != 0)
		ul_prefetch_root(ctx, 0);
	if (keys_idx_prefix(ctx->prefix, root->guid, idx_prefix,
			    sizeof(idx_prefix)) < 0)
		return 0;
	if (objstore_list(ctx->store, idx_prefix, NULL, idx_list_cb,
			  &ictx) < 0)
		return ul_fail(error_r, EIO, "%s", objstore_error());
	root = &ctx->roots[idx];
	root->bundles_listed = true;
	if (root->bundle_count == 0)
		return 0;
	ctx->found = true;
	if (ul_load_tree(ctx, root, &root->tree, &mark, error_r) < 0)
		return -1;
	root->tree_fetched = true;
	if (root->tree == NULL || mark.secs == 0 || !mark.single_writer ||
	    keys_mail_list_start(ctx->prefix, root->guid, mark.secs,
				 mark.usecs, mark_key, sizeof(mark_key)) < 0)
		return 0;
	if (strcmp(mark_key, start_buf) > 0) {
		memcpy(start_buf, mark_key, sizeof(mark_key));
		ctx->stats.folders_list_skipped++;
	}
	return 0;
}

int ul_list(struct ul_ctx *ctx, const char **error_r)
{
	char list_prefix[KEYS_PREFIX_MAX], start_buf[OBJSTORE_KEY_MAX + 1];
	const char *start = NULL;

	if (keys_root_list_prefix(ctx->prefix, "", list_prefix,
				  sizeof(list_prefix)) < 0)
		return ul_fail(error_r, EINVAL, "user name too long");
	for (;;) {
		int ret;

		ctx->skip_requested = false;
		/* a resumed listing goes on with full pages */
		ret = objstore_list_paced(ctx->store, list_prefix, start,
					  start == NULL ? UL_FIRST_PAGE_KEYS :
					  0, list_cb, ctx);
		if (ret < 0)
			return ul_fail(error_r, EIO, "%s", objstore_error());
		if (!ctx->skip_requested)
			return 0;
		if (skip_old_mails(ctx, ctx->skip_root, start_buf,
				   error_r) < 0)
			return -1;
		start = start_buf;
	}
}
