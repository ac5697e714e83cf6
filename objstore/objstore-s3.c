/* objstore-s3.c: placeholder until the s3 backend lands (work in progress). */
#include "objstore-private.h"
#include <stdlib.h>
static struct objstore *placeholder_alloc(void) { return calloc(1, sizeof(struct objstore)); }
static int placeholder_init(struct objstore *store, const char *location,
			    const struct objstore_settings *set, const char **error_r)
{ (void)store; (void)location; (void)set; *error_r = "s3 backend not built yet"; return -1; }
static void placeholder_deinit(struct objstore *store) { free(store); }
const struct objstore_class objstore_class_s3 = {
	.name = "s3", .alloc = placeholder_alloc, .init = placeholder_init,
	.deinit = placeholder_deinit,
};
