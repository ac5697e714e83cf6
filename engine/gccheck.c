/* gccheck.c: is another writer's bundle chain still referencing mail
 * objects about to be deleted (see gccheck.h)? */
#include "gccheck.h"
#include "bundle.h"
#include "keylist.h"
#include "keys.h"
#include "log.h"
#include "objstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct list_ctx {
	gccheck_ours_cb_t *ours;
	void *context;
	struct keylist foreign;
	bool failed;
};

static int list_cb(const struct objstore_list_entry *entry, void *context)
{
	struct list_ctx *ctx = context;
	const char *name = strrchr(entry->key, '/');
	struct bundle_name parsed;
	const char *error;

	if (entry->is_prefix || name == NULL ||
	    bundle_name_parse(name + 1, &parsed, &error) < 0 ||
	    ctx->ours(entry->key, ctx->context))
		return 0;
	if (!keylist_has(&ctx->foreign, entry->key) &&
	    keylist_add(&ctx->foreign, entry->key) < 0) {
		ctx->failed = true;
		return 1;
	}
	/* another writer's diff: its chain is its base (ours, maybe: it
	   loaded our chain and went on with it) with the diff applied, so
	   what the base references counts too (what the diff removes
	   is kept as well: reading more than needed only keeps more) */
	if (parsed.is_diff) {
		char base[BUNDLE_KEY_MAX + 1];

		if (bundle_key_base_of(entry->key, base, sizeof(base)) == 0 &&
		    !keylist_has(&ctx->foreign, base) &&
		    keylist_add(&ctx->foreign, base) < 0) {
			ctx->failed = true;
			return 1;
		}
	}
	return 0;
}

struct mark_ctx {
	const char *const *keys;
	size_t count;
	bool *referenced;
};

static void mark_cb(const char *key, void *context)
{
	struct mark_ctx *ctx = context;

	for (size_t i = 0; i < ctx->count; i++) {
		if (!ctx->referenced[i] && strcmp(ctx->keys[i], key) == 0)
			ctx->referenced[i] = true;
	}
}

/* mark the keys the bundle key references; 0 if it is gone, -1 on error */
static int read_bundle(struct objstore *store, const char *key,
		       struct mark_ctx *mark)
{
	struct bundle *bundle;
	const char *error;
	size_t size;
	void *data;
	int ret;

	if (objstore_get(store, key, 0, OBJSTORE_TO_END, BUNDLE_FETCH_MAX,
			 &data, &size) < 0) {
		if (errno == ENOENT)
			return 0;	/* condemned by its writer meanwhile */
		obox_log(OBOX_LOG_WARNING, "before deleting mails: reading "
			 "another writer's bundle %s failed: %s\n", key,
			 objstore_error());
		return -1;
	}
	ret = bundle_decode(data, size, BUNDLE_FETCH_MAX, &bundle, &error);
	free(data);
	if (ret < 0) {
		/* what it references is unknown: keep everything */
		obox_log(OBOX_LOG_WARNING, "before deleting mails: another "
			 "writer's bundle %s is invalid: %s\n", key, error);
		return -1;
	}
	bundle_foreach_stub_key(bundle, mark_cb, mark);
	bundle_free(&bundle);
	return 0;
}

int gccheck_referenced(struct objstore *store, const char *const *keys,
		       size_t count, gccheck_ours_cb_t *ours, void *context,
		       bool *referenced_r, struct gccheck_result *result_r)
{
	struct list_ctx lctx = { .ours = ours, .context = context };
	struct mark_ctx mark = {
		.keys = keys, .count = count, .referenced = referenced_r
	};
	char prefix[OBJSTORE_KEY_MAX + 1];
	int ret = 0;

	memset(result_r, 0, sizeof(*result_r));
	memset(referenced_r, 0, count * sizeof(*referenced_r));
	if (count == 0)
		return 0;
	if (keys_mail_idx_prefix(keys[0], prefix, sizeof(prefix)) < 0) {
		obox_log(OBOX_LOG_ERR, "before deleting %s: not a mail key\n",
			 keys[0]);
		return -1;
	}
	if (objstore_list(store, prefix, NULL, list_cb, &lctx) < 0 ||
	    lctx.failed) {
		obox_log(OBOX_LOG_WARNING, "before deleting mails: listing "
			 "%s failed: %s\n", prefix, lctx.failed ?
			 "out of memory" : objstore_error());
		keylist_clear(&lctx.foreign);
		return -1;
	}
	for (size_t i = 0; i < lctx.foreign.count && ret == 0; i++) {
		ret = read_bundle(store, lctx.foreign.keys[i], &mark);
		result_r->foreign_bundles++;
	}
	for (size_t i = 0; i < count; i++)
		result_r->kept += referenced_r[i] ? 1 : 0;
	keylist_clear(&lctx.foreign);
	return ret;
}

struct bases_ctx {
	gccheck_ours_cb_t *ours;
	void *context;
	const char *const *keys;
	size_t count;
	bool *held;
};

static int bases_cb(const struct objstore_list_entry *entry, void *context)
{
	struct bases_ctx *ctx = context;
	char base[BUNDLE_KEY_MAX + 1];

	if (entry->is_prefix ||
	    bundle_key_base_of(entry->key, base, sizeof(base)) < 0 ||
	    ctx->ours(entry->key, ctx->context))
		return 0;
	for (size_t i = 0; i < ctx->count; i++) {
		if (strcmp(ctx->keys[i], base) == 0)
			ctx->held[i] = true;
	}
	return 0;
}

int gccheck_bases_built_on(struct objstore *store, const char *const *keys,
			   size_t count, gccheck_ours_cb_t *ours,
			   void *context, bool *held_r)
{
	struct bases_ctx ctx = {
		.ours = ours, .context = context, .keys = keys,
		.count = count, .held = held_r
	};
	char prefix[BUNDLE_KEY_MAX + 1];
	const char *slash;

	memset(held_r, 0, count * sizeof(*held_r));
	if (count == 0)
		return 0;
	slash = strrchr(keys[0], '/');
	if (slash == NULL || (size_t)(slash - keys[0]) + 2 > sizeof(prefix)) {
		obox_log(OBOX_LOG_ERR, "before deleting %s: not a bundle key\n",
			 keys[0]);
		goto hold_all;
	}
	memcpy(prefix, keys[0], slash - keys[0] + 1);
	prefix[slash - keys[0] + 1] = '\0';
	if (objstore_list(store, prefix, NULL, bases_cb, &ctx) < 0) {
		obox_log(OBOX_LOG_WARNING, "before deleting bundles: listing "
			 "%s failed: %s\n", prefix, objstore_error());
		goto hold_all;
	}
	return 0;
hold_all:
	for (size_t i = 0; i < count; i++)
		held_r[i] = true;
	return -1;
}
