/* objgc.c: releasing unreferenced mail objects (immediate delete for now). */
#include "objgc.h"
#include "mailcache.h"
#include "objstore.h"

#include <fuse_log.h>
#include <stdatomic.h>
#include <stdlib.h>

struct objgc {
	struct objstore *store;
	struct mailcache *mc;
	atomic_uint_fast64_t released;
};

struct objgc *objgc_init(struct objstore *store, struct mailcache *mc)
{
	struct objgc *gc = calloc(1, sizeof(*gc));

	if (gc == NULL)
		return NULL;
	gc->store = store;
	gc->mc = mc;
	atomic_init(&gc->released, 0);
	return gc;
}

void objgc_deinit(struct objgc **_gc)
{
	free(*_gc);
	*_gc = NULL;
}

int objgc_release(struct objgc *gc, const char *key)
{
	mailcache_remove(gc->mc, key);
	if (objstore_delete(gc->store, key) < 0) {
		fuse_log(FUSE_LOG_ERR, "releasing mail object failed "
			 "(object leaked): %s\n", objstore_error());
		return -1;
	}
	atomic_fetch_add(&gc->released, 1);
	return 0;
}

uint64_t objgc_released_count(struct objgc *gc)
{
	return atomic_load(&gc->released);
}
