/* stats.c: the engine's counters as text (obox_stats_text()), what the
 * FUSE front end shows as the read-only virtual file
 * MOUNTPOINT/.oboxfs-stats: one "name value" line per counter, object-store
 * requests by operation first, then mail storing and the mail cache (the
 * cachedir lines, "oboxfs_mailcache_hits_total N" etc., see docs/caches.md).
 */
#include "obox-private.h"
#include "lazydir.h"
#include "mailcache.h"
#include "mailstore.h"
#include "metacache.h"
#include "mailmissing.h"
#include "objgc.h"
#include "objstore.h"
#include "upload.h"
#include "uploader.h"
#include "users.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

struct stat_line {
	const char *name;
	uint64_t value;
};

static void print_lines(FILE *f, const struct stat_line *lines, size_t count)
{
	for (size_t i = 0; i < count; i++)
		fprintf(f, "%s %" PRIu64 "\n", lines[i].name, lines[i].value);
}

char *obox_stats_text(struct obox *obox, size_t *len_r)
{
	struct objstore_stats os;
	struct cachedir_stats mcs;
	char mcs_text[1024];
	struct mailstore_stats mss;
	struct objgc_stats gcs;
	struct mailmissing_stats mms;
	struct upload_stats ups;
	struct uploader_stats uls;
	struct metacache_stats mts;
	struct lazydir_stats lzs;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	objstore_get_stats(obox->store, &os);
	mailcache_get_stats(obox->mailcache, &mcs);
	mailstore_get_stats(obox->ms, &mss);
	for (unsigned int op = 0; op < OBJSTORE_OP_COUNT; op++) {
		const char *name = objstore_op_name((enum objstore_op)op);

		fputs("requests_", f);
		for (; *name != '\0'; name++)
			fputc(tolower((unsigned char)*name), f);
		fprintf(f, " %" PRIu64 "\n", os.requests[op]);
	}
	objgc_get_stats(obox->gc, &gcs);
	mailmissing_get_stats(obox->missing, &mms);
	upload_get_stats(&obox->upctx, &ups);
	uploader_get_stats(obox->uploader, obox->users, &uls);
	metacache_get_stats(obox->metacache, obox->users, &mts);
	lazydir_stats_get(obox->lazy, &lzs);
	const struct stat_line lines[] = {
		{ "retries", os.retries },
		{ "errors", os.errors },
		{ "bytes_out", os.bytes_out },
		{ "bytes_in", os.bytes_in },
		{ "mails_stored", mss.mails_stored },
		{ "mail_bytes_stored", mss.bytes_stored },
		{ "mails_unstubbed", mss.mails_unstubbed },
		{ "mails_relocated", mss.mails_relocated },
		{ "mails_stored_at_fsync", mss.mails_stored_at_fsync },
		{ "mails_unnamed_discarded", mss.unnamed_discarded },
		{ "mails_missing", mms.missing },
		{ "mails_missing_dropped", mms.dropped },
		{ "objects_released", gcs.released },
		{ "objects_pending_delete", gcs.pending },
		{ "objects_condemned", gcs.condemned },
		{ "objects_deleted", gcs.deleted },
		{ "objects_delete_checks", gcs.delete_checks },
		{ "objects_kept_referenced", gcs.kept_referenced },
		{ "index_bases_held", gcs.bundles_held },
		{ "index_users", users_count(obox->users) },
		{ "index_dirty_users", uls.dirty_users },
		{ "index_upload_passes", uls.full_passes },
		{ "index_folder_uploads", uls.folder_uploads },
		{ "index_uploads_queued", uls.queued },
		{ "index_upload_failures", ups.failures },
		{ "index_roots_unchanged", ups.unchanged },
		{ "index_scan_files_read", ups.scan_files_read },
		{ "index_scan_files_reused", ups.scan_files_reused },
		{ "index_snapshot_usecs", ups.snapshot_usecs },
		{ "index_snapshot_max_usecs", ups.snapshot_max_usecs },
		{ "index_bases_stored", ups.bases },
		{ "index_diffs_stored", ups.diffs },
		{ "index_bundle_bytes_stored", ups.bytes },
		{ "index_last_base_bytes", ups.last_base_bytes },
		{ "index_last_diff_bytes", ups.last_diff_bytes },
		{ "index_split_checks", ups.split_checks },
		{ "index_split_check_keys", ups.split_check_keys },
		{ "index_split_brains", ups.split_brains },
		{ "index_split_mails_merged", ups.split_mails_merged },
		{ "index_split_mails_dropped", ups.split_mails_dropped },
		{ "index_split_flags_merged", ups.split_flags_merged },
		{ "index_split_folders_merged", ups.split_folders_merged },
		{ "index_split_mails_expunged", ups.split_mails_expunged },
		{ "index_split_bundles_read", ups.split_bundles_read },
		{ "index_users_loaded", atomic_load(&obox->users_loaded) },
		{ "index_mails_put_back", atomic_load(&obox->mails_put_back) },
		{ "index_load_mails_listed",
		  atomic_load(&obox->load_mails_listed) },
		{ "index_load_folders_list_skipped",
		  atomic_load(&obox->load_folders_list_skipped) },
		{ "index_load_bundles_fetched_ahead",
		  atomic_load(&obox->load_bundles_fetched_ahead) },
		{ "index_load_usecs", atomic_load(&obox->load_usecs) },
		{ "index_load_mails_before_mark",
		  atomic_load(&obox->load_mails_before_mark) },
		{ "index_load_write_usecs",
		  atomic_load(&obox->load_write_usecs) },
		{ "index_lazy_tables_written", lzs.tables_written },
		{ "index_lazy_stubs_made", lzs.stubs_made },
		{ "index_lazy_dirs_expanded", lzs.dirs_expanded },
		{ "index_lazy_tables_bad", lzs.tables_bad },
	};
	const struct stat_line metacache_lines[] = {
		{ "oboxfs_metacache_cap_bytes", mts.cap },
		{ "oboxfs_metacache_bytes", mts.used },
		{ "oboxfs_metacache_users", mts.users_cached },
		{ "oboxfs_metacache_evictions_total", mts.evictions },
		{ "oboxfs_metacache_evicted_bytes_total", mts.evicted_bytes },
		{ "oboxfs_metacache_over_cap_total", mts.over_cap_busy },
		{ "oboxfs_metacache_walks_total", mts.walks },
	};

	print_lines(f, lines, sizeof(lines) / sizeof(lines[0]));
	cachedir_stats_format(&mcs, mcs_text, sizeof(mcs_text));
	fputs(mcs_text, f);
	print_lines(f, metacache_lines,
		    sizeof(metacache_lines) / sizeof(metacache_lines[0]));
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*len_r = len;
	return text;
}
