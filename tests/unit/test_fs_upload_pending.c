/* test_fs_upload_pending.c: mail objects released from a user's tree are
 * deleted only once an upload of the tree that no longer references them
 * has stored every root: a folder upload condemns its folder's objects
 * only, a failed upload (PUT refused) keeps them pending and in the store,
 * and a later upload condemns them. */
#include "test_fs_upload.h"

TestSuite(fs_upload_pending, .init = up_init, .fini = up_fini);

/* a mail of folder guid: stored, then its stub unlinked (released) */
static void release_mail(const char *stub_path, const char *guid,
			 const char *oid, char *key, size_t size)
{
	char full[4096];
	struct stat st;

	up_mail_key(guid, oid, key, size);
	up_put_object(key);
	users_change_begin(up_users, up_user);
	snprintf(full, sizeof(full), UP_USER "/%s", stub_path);
	cr_assert_eq(fstatat(up_meta_fd, full, &st, AT_SYMLINK_NOFOLLOW), 0);
	users_touched(up_user, st.st_ino);	/* as a front end tells it */
	cr_assert_eq(unlinkat(up_meta_fd, full, 0), 0);
	cr_assert_eq(objgc_release(up_gc, key), 0);
	users_change_end(up_user);
}

Test(fs_upload_pending, folder_upload_condemns_its_folder_only)
{
	char inbox_key[512], sent_key[512];
	struct objgc_stats gs;

	up_make_tree();
	up_changed();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);

	release_mail(STUB1, GUID_INBOX, OID(1), inbox_key, sizeof(inbox_key));
	release_mail(STUB2, GUID_SENT, OID(2), sent_key, sizeof(sent_key));
	gs = up_gc_stats();
	cr_assert_eq(gs.pending, 2);

	/* flushing before any upload deletes nothing */
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert(up_object_exists(inbox_key));
	cr_assert(up_object_exists(sent_key));

	cr_assert_eq(upload_user(up_ctx, up_user, "Maildir"), 0);
	gs = up_gc_stats();
	cr_assert_eq(gs.pending, 1, "the .Sent mail was taken too");
	cr_assert_eq(gs.condemned, 1);
	cr_assert_eq(up_stats().diffs, 1);
	/* a folder upload does not make the user clean */
	cr_assert(users_is_dirty(up_user));
	cr_assert(up_dirty_marker_exists());

	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(inbox_key));
	cr_assert(up_object_exists(sent_key));

	/* the stored INBOX diff no longer has the stub */
	struct up_bundles b;
	struct bundle *base, *diff;
	const char *error;

	up_assert_bundles(GUID_INBOX, 1, &b);
	base = up_get_bundle(b.base);
	diff = up_get_bundle(b.diffs[0]);
	cr_assert_eq(bundle_apply_diff(base->tree, diff->diff, &error), 0,
		     "%s", error);
	cr_assert_null(bundle_tree_find(base->tree,
					STUB1 + strlen("Maildir/")));
	bundle_free(&diff);
	bundle_free(&base);

	/* the full upload takes the rest */
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	gs = up_gc_stats();
	cr_assert_eq(gs.pending, 0);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(sent_key));
	cr_assert_not(users_is_dirty(up_user));
	cr_assert_not(up_dirty_marker_exists());
}

Test(fs_upload_pending, nested_folder_upload)
{
	char sent_key[512];

	up_make_tree();
	up_changed();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	release_mail(STUB2, GUID_SENT, OID(2), sent_key, sizeof(sent_key));
	cr_assert_eq(upload_user(up_ctx, up_user, "Maildir/.Sent"), 0);
	cr_assert_eq(up_gc_stats().condemned, 1);
	/* only .Sent was looked at */
	cr_assert_eq(up_stats().diffs, 1);
	cr_assert_eq(up_stats().unchanged, 0);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(sent_key));
}

Test(fs_upload_pending, not_a_folder_uploads_everything)
{
	char key[512];

	up_make_tree();
	up_changed();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	release_mail(STUB2, GUID_SENT, OID(2), key, sizeof(key));
	/* cur/ has no guid: the whole user is uploaded */
	cr_assert_eq(upload_user(up_ctx, up_user, "Maildir/cur"), 0);
	cr_assert_eq(up_gc_stats().pending, 0);
	cr_assert_eq(up_gc_stats().condemned, 1);
	cr_assert_not(users_is_dirty(up_user));
	/* and a folder that does not exist (any more) */
	cr_assert_eq(upload_user(up_ctx, up_user, "Maildir/.Gone"), 0);
	cr_assert_eq(up_stats().failures, 0);
}

Test(fs_upload_pending, failed_put_keeps_released_objects)
{
	struct objstore_settings set = {
		.no_fsync = true, .fault = "ops=put;error=permanent;rate=1",
	};
	struct upload_ctx fctx;
	struct objstore *fstore;
	const char *error;
	char url[4200], key[512];
	struct up_bundles b;

	up_make_tree();
	up_changed();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	up_assert_bundles(GUID_INBOX, 0, &b);

	/* the same store, refusing every PUT */
	snprintf(url, sizeof(url), "file://%s/store", up_dir);
	cr_assert_eq(objstore_init(url, &set, &fstore, &error), 0, "%s",
		     error);
	cr_assert_eq(upload_ctx_init(&fctx, fstore, up_gc, up_cs, up_meta_fd),
		     0);

	release_mail(STUB1, GUID_INBOX, OID(1), key, sizeof(key));
	cr_assert_eq(upload_user(&fctx, up_user, NULL), -1);
	struct upload_stats fstats;

	upload_get_stats(&fctx, &fstats);
	cr_assert_eq(fstats.failures, 1);
	cr_assert_eq(fstats.passes, 0);
	cr_assert_eq(up_gc_stats().pending, 1);
	cr_assert_eq(up_gc_stats().condemned, 0);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert(up_object_exists(key));
	cr_assert(users_is_dirty(up_user));
	cr_assert(up_dirty_marker_exists());
	/* nothing new stored, nothing superseded */
	up_assert_bundles(GUID_INBOX, 0, &b);

	/* a folder upload fails the same way */
	cr_assert_eq(upload_user(&fctx, up_user, "Maildir"), -1);
	cr_assert_eq(up_gc_stats().pending, 1);
	upload_ctx_deinit(&fctx);
	objstore_deinit(&fstore);

	/* the next upload on a working store condemns it */
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	cr_assert_eq(up_gc_stats().pending, 0);
	cr_assert_eq(up_gc_stats().condemned, 1);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(key));
	up_assert_bundles(GUID_INBOX, 1, &b);
	cr_assert_not(users_is_dirty(up_user));
}

Test(fs_upload_pending, failed_first_upload_then_success)
{
	struct objstore_settings set = {
		.no_fsync = true,
		/* the first PUT works, the others fail: some roots are
		   stored, not all */
		.fault = "ops=put;error=permanent;rate=1;fail_after=1",
	};
	struct upload_ctx fctx;
	struct objstore *fstore;
	const char *error;
	char url[4200];
	struct up_bundles b;

	up_make_tree();
	up_changed();
	snprintf(url, sizeof(url), "file://%s/store", up_dir);
	cr_assert_eq(objstore_init(url, &set, &fstore, &error), 0, "%s",
		     error);
	cr_assert_eq(upload_ctx_init(&fctx, fstore, up_gc, up_cs, up_meta_fd),
		     0);
	cr_assert_eq(upload_user(&fctx, up_user, NULL), -1);
	upload_ctx_deinit(&fctx);
	objstore_deinit(&fstore);
	cr_assert(users_is_dirty(up_user));

	/* the retry stores the rest; every root ends with one base */
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	cr_assert_eq(objgc_flush(up_gc), 0);
	up_assert_bundles(NULL, 0, &b);
	up_assert_bundles(GUID_INBOX, 0, &b);
	up_assert_bundles(GUID_SENT, 0, &b);
	cr_assert_eq(up_state_lines(), 3);
	cr_assert_not(users_is_dirty(up_user));
}
