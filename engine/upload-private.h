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
/* splitbrain.c: the folders this machine deleted whose keys are still its
   garbage (user->roots.gone), each at most every split_check_interval:
   one LIST of its bundles; a folder another writer changed meanwhile is
   made again here with that writer's tree (splitfolders_plan_gone()).
   Call with user->upload_lock held.  Returns true if one was made (the
   user needs uploading again). */
bool splitbrain_check_gone(struct upload_ctx *ctx, struct ouser *user);

#endif
