/* upload-private.h: the per-root upload state, shared by upload.c and
 * splitbrain.c. */
#ifndef OBOXFS_UPLOAD_PRIVATE_H
#define OBOXFS_UPLOAD_PRIVATE_H

#include "upload.h"
#include "bundle.h"
#include "ids.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* protected by the user's upload_lock */
struct upload_root {
	struct upload_root *next;
	char guid[IDS_HEX_LEN + 1];	/* "" for the user root */
	struct bundle_tree *base;	/* the stored base (is_base) */
	size_t base_size;
	struct bundle_name base_name;
	struct bundle_tree *last;	/* last stored diff's tree, or NULL */
	uint32_t seq;
	char **keys;			/* live bundle keys */
	size_t key_count;
	bool seen;
	/* monotonic seconds of the last split-brain check */
	int64_t split_checked;
	/* where the root was at its last upload (relative to the user dir),
	   or NULL */
	char *path;
};

/* The root with guid ("" user root), created if missing (NULL: out of
   memory). */
struct upload_root *upload_root_get(struct ouser *user, const char *guid);
int upload_root_add_key(struct upload_root *root, const char *key);

/* splitbrain.c: after root (at path, relative to the user dir) was
   stored in a full pass, at most every ctx->split_check_interval: list the
   root's bundles; bundles this machine did not write mean another machine
   serves the user too (CONTRACT.md section 6).  Then the mails of the
   folder that no local stub references are put back (maildir; logged for
   sdbox), the other writer's bundles are condemned with the next base,
   which is forced.  Call with user->upload_lock held.  Returns true if
   another writer was found (the root needs uploading again). */
bool splitbrain_check(struct upload_ctx *ctx, struct ouser *user,
		      const char *guid, const char *path);

#endif
