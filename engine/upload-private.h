/* upload-private.h: what upload.c asks of splitbrain.c. */
#ifndef OBOXFS_UPLOAD_PRIVATE_H
#define OBOXFS_UPLOAD_PRIVATE_H

#include "upload.h"

#include <stdbool.h>

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
