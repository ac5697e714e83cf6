/* uploader.h: when index uploads happen (CONTRACT.md section 5): a
 * background thread that uploads
 *   - every interval, each user with changes (then deletes condemned
 *     objects, objgc_flush()),
 *   - a folder, when the daemon counted upload_deliveries deliveries to it
 *     (uploader_request_folder()),
 *   - every user with changes on request (uploader_request_all(), e.g. from
 *     SIGUSR1; async-signal-safe),
 *   - and every user with changes at uploader_stop() (unmount).
 * Folder uploads run on 4 worker threads (one user's uploads are
 * serialized by its upload_lock); the main thread does the passes and the
 * metacache cap.  Uploads never block the FUSE operations beyond the
 * snapshot (users.h).
 */
#ifndef OBOXFS_UPLOADER_H
#define OBOXFS_UPLOADER_H

#include <stdbool.h>
#include <stdint.h>

struct upload_ctx;
struct users;
struct ouser;
struct uploader;

struct uploader_stats {
	uint64_t full_passes;	/* passes over all users completed */
	uint64_t folder_uploads;	/* delivery-triggered uploads done */
	unsigned int dirty_users;	/* users with changes not uploaded */
	unsigned int queued;		/* folder uploads waiting or running */
};

struct metacache;

/* interval: seconds between passes (0: only on request/unmount); metacache (may
   be NULL): its cap is enforced every few seconds from the thread */
int uploader_start(struct upload_ctx *ctx, struct users *users,
		   unsigned int interval, struct metacache *metacache,
		   struct uploader **uploader_r, const char **error_r);
/* Stop the thread; final: run a last pass over all users and flush. */
void uploader_stop(struct uploader **uploader, bool final);

void uploader_request_folder(struct uploader *uploader, struct ouser *user,
			     const char *folder_path);
/* async-signal-safe */
void uploader_request_all(struct uploader *uploader);

/* uploader may be NULL (not started): its counters are 0 */
/* One pass over all users in the calling thread: upload those with
   changes, split-check the others accessed since accessed_since (monotonic
   seconds; INT64_MAX: none), delete what became garbage.  What the thread
   does every interval; obox_upload_now() without a thread.  Returns 0, or
   -1 if some upload or delete failed (logged). */
int uploader_pass(struct upload_ctx *ctx, struct users *users,
		  int64_t accessed_since);

void uploader_get_stats(struct uploader *uploader, struct users *users,
			struct uploader_stats *stats_r);

#endif
