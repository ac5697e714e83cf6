/* objgc.h: the one place mail objects are deleted.
 *
 * Every mail object that loses its last reference (the last name of a stub
 * unlinked or replaced, a stub rewritten) goes through objgc_release().
 * For now it deletes the object at once; the bundles work will defer the
 * delete until an index bundle that no longer references it is stored
 * (CONTRACT.md section 5).
 */
#ifndef OBOXFS_OBJGC_H
#define OBOXFS_OBJGC_H

#include <stdint.h>

struct objstore;
struct mailcache;
struct objgc;

struct objgc *objgc_init(struct objstore *store, struct mailcache *mc);
void objgc_deinit(struct objgc **gc);

/* The object key is no longer referenced: delete it and its cached copy.
   Failures are logged (the object leaks; it is never referenced again).
   Returns 0 or -1. */
int objgc_release(struct objgc *gc, const char *key);

uint64_t objgc_released_count(struct objgc *gc);

#endif
