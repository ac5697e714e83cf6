/* fsops-stats.c: the text of the read-only virtual file
 * MOUNTPOINT/.oboxfs-stats: one "name value" line per counter, object-store
 * requests by operation first, then mail storing and the mail cache (the
 * cachedir lines, "oboxfs_mailcache_hits_total N" etc., see docs/caches.md).
 * Each open() takes a snapshot.  The file is not listed by readdir and its
 * name is not a valid user name.
 */
#include "fs.h"
#include "mailcache.h"
#include "mailstore.h"
#include "metacache.h"
#include "objgc.h"
#include "objstore.h"
#include "upload.h"
#include "uploader.h"
#include "users.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

char *fs_stats_text(struct oboxfs *fs, size_t *len_r)
{
	struct objstore_stats os;
	struct cachedir_stats mcs;
	char mcs_text[1024];
	struct mailstore_stats mss;
	struct objgc_stats gcs;
	struct upload_stats ups;
	struct uploader_stats uls;
	struct metacache_stats mcs2;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	objstore_get_stats(fs->store, &os);
	mailcache_get_stats(fs->mc, &mcs);
	mailstore_get_stats(fs->ms, &mss);
	for (unsigned int op = 0; op < OBJSTORE_OP_COUNT; op++) {
		const char *name = objstore_op_name((enum objstore_op)op);

		fputs("requests_", f);
		for (; *name != '\0'; name++)
			fputc(tolower((unsigned char)*name), f);
		fprintf(f, " %" PRIu64 "\n", os.requests[op]);
	}
	fprintf(f, "retries %" PRIu64 "\n", os.retries);
	fprintf(f, "errors %" PRIu64 "\n", os.errors);
	fprintf(f, "bytes_out %" PRIu64 "\n", os.bytes_out);
	fprintf(f, "bytes_in %" PRIu64 "\n", os.bytes_in);
	fprintf(f, "mails_stored %" PRIu64 "\n", mss.mails_stored);
	fprintf(f, "mail_bytes_stored %" PRIu64 "\n", mss.bytes_stored);
	fprintf(f, "mails_unstubbed %" PRIu64 "\n", mss.mails_unstubbed);
	fprintf(f, "mails_relocated %" PRIu64 "\n", mss.mails_relocated);
	objgc_get_stats(fs->gc, &gcs);
	fprintf(f, "objects_released %" PRIu64 "\n", gcs.released);
	fprintf(f, "objects_pending_delete %" PRIu64 "\n", gcs.pending);
	fprintf(f, "objects_condemned %" PRIu64 "\n", gcs.condemned);
	fprintf(f, "objects_deleted %" PRIu64 "\n", gcs.deleted);
	upload_get_stats(fs->upctx, &ups);
	uploader_get_stats(fs->uploader, fs->users, &uls);
	fprintf(f, "index_users %u\n", users_count(fs->users));
	fprintf(f, "index_dirty_users %u\n", uls.dirty_users);
	fprintf(f, "index_upload_passes %" PRIu64 "\n", uls.full_passes);
	fprintf(f, "index_folder_uploads %" PRIu64 "\n", uls.folder_uploads);
	fprintf(f, "index_uploads_queued %u\n", uls.queued);
	fprintf(f, "index_upload_failures %" PRIu64 "\n", ups.failures);
	fprintf(f, "index_roots_unchanged %" PRIu64 "\n", ups.unchanged);
	fprintf(f, "index_bases_stored %" PRIu64 "\n", ups.bases);
	fprintf(f, "index_diffs_stored %" PRIu64 "\n", ups.diffs);
	fprintf(f, "index_bundle_bytes_stored %" PRIu64 "\n", ups.bytes);
	fprintf(f, "index_last_base_bytes %" PRIu64 "\n", ups.last_base_bytes);
	fprintf(f, "index_last_diff_bytes %" PRIu64 "\n", ups.last_diff_bytes);
	fprintf(f, "index_split_checks %" PRIu64 "\n", ups.split_checks);
	fprintf(f, "index_split_brains %" PRIu64 "\n", ups.split_brains);
	fprintf(f, "index_split_mails_merged %" PRIu64 "\n",
		ups.split_mails_merged);
	fprintf(f, "index_users_loaded %" PRIu64 "\n",
		atomic_load(&fs->users_loaded));
	fprintf(f, "index_mails_put_back %" PRIu64 "\n",
		atomic_load(&fs->mails_put_back));
	cachedir_stats_format(&mcs, mcs_text, sizeof(mcs_text));
	fputs(mcs_text, f);
	metacache_get_stats(fs->metacache, fs->users, &mcs2);
	fprintf(f, "oboxfs_metacache_cap_bytes %" PRIu64 "\n", mcs2.cap);
	fprintf(f, "oboxfs_metacache_bytes %" PRIu64 "\n", mcs2.used);
	fprintf(f, "oboxfs_metacache_users %u\n", mcs2.users_cached);
	fprintf(f, "oboxfs_metacache_evictions_total %" PRIu64 "\n",
		mcs2.evictions);
	fprintf(f, "oboxfs_metacache_evicted_bytes_total %" PRIu64 "\n",
		mcs2.evicted_bytes);
	fprintf(f, "oboxfs_metacache_over_cap_total %" PRIu64 "\n",
		mcs2.over_cap_busy);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*len_r = len;
	return text;
}
