/* refs.c: the mail objects a decoded bundle references (its stubs' keys),
 * for whoever must know whether a chain in the store still needs an object
 * before deleting it (engine/gccheck.c). */
#include "bundle-private.h"

void bundle_foreach_stub_key(const struct bundle *bundle,
			     bundle_key_cb_t *cb, void *context)
{
	if (bundle->tree != NULL) {
		for (size_t i = 0; i < bundle->tree->count; i++) {
			const struct bundle_entry *e = &bundle->tree->entries[i];

			if (e->type == BUNDLE_ENTRY_STUB && e->key != NULL)
				cb(e->key, context);
		}
	}
	if (bundle->diff != NULL) {
		for (size_t i = 0; i < bundle->diff->record_count; i++) {
			const struct bundle_record *r =
				&bundle->diff->records[i];

			if (r->kind == BUNDLE_REC_STUB && r->e.key != NULL)
				cb(r->e.key, context);
		}
	}
}
