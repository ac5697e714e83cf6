/* test_fs_userload_rescan.c: mail objects no stub references are put back
 * from their metadata (new/ and cur/, a renamed folder, a folder only the
 * mails know, a folder whose bundle no tree mentions, sdbox with the index
 * rebuild), with the right xattrs, size, mtime and owner; referenced mails
 * cost no HEAD. */
#include "test_fs_userload.h"
#include "putback.h"

#include <time.h>

TestSuite(fs_userload_rescan, .init = ul_init, .fini = ul_fini);

#define T0 1600000000

/* user root with Maildir (INBOX folder) holding one referenced stub */
static void make_inbox(void)
{
	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_mkdir(ul_src_fd, "Maildir/cur", NULL);
	ul_mkdir(ul_src_fd, "Maildir/new", NULL);
	ul_mkdir(ul_src_fd, "Maildir/tmp", NULL);
	ul_file(ul_src_fd, "Maildir/dovecot-uidlist", "3 V1 N2\n", T0);
	ul_stub(ul_src_fd, "Maildir/cur/1.M1:2,S", GUID_INBOX, OID(1),
		"mail1", T0);
	cr_assert_eq(fchownat(ul_src_fd, "Maildir/cur", 1234, 1235, 0), 0);
	cr_assert_eq(fchmodat(ul_src_fd, "Maildir/cur", 0770, 0), 0);
	ul_bundle_root("", NULL);
	ul_bundle_root("Maildir", GUID_INBOX);
}

Test(fs_userload_rescan, put_back_by_metadata)
{
	struct userload_stats stats;
	uint64_t req[OBJSTORE_OP_COUNT];
	time_t before = time(NULL);
	struct stat st;

	make_inbox();
	ul_put_mail(GUID_INBOX, OID(2), "mail22", "Maildir/new", "2.M2",
		    "1500000000");
	/* no mtime metadata (or a bad one): the object's Last-Modified */
	ul_put_mail(GUID_INBOX, OID(3), "mail333", "Maildir/cur", "3.M3:2,",
		    NULL);
	ul_put_mail(GUID_INBOX, OID(4), "mail4444", "Maildir/cur", "4.M4:2,",
		    "12x");
	/* a folder no tree knows: created from the metadata */
	ul_put_mail(GUID_SENT, OID(5), "mail55555", "Maildir/.Sent/cur",
		    "5.M5:2,S", "1500000005");
	ul_setup_store(NULL);

	cr_assert_eq(ul_load(&stats), 1);
	time_t after = time(NULL);

	ul_assert_stub("Maildir/cur/1.M1:2,S", GUID_INBOX, OID(1), 5, T0);
	ul_assert_stub("Maildir/new/2.M2", GUID_INBOX, OID(2), 6, 1500000000);
	ul_assert_stub("Maildir/cur/3.M3:2,", GUID_INBOX, OID(3), 7, 0);
	ul_assert_stub("Maildir/cur/4.M4:2,", GUID_INBOX, OID(4), 8, 0);
	ul_assert_stub("Maildir/.Sent/cur/5.M5:2,S", GUID_SENT, OID(5), 9,
		       1500000005);
	cr_assert_eq(fstatat(ul_dst_fd, "Maildir/cur/3.M3:2,", &st, 0), 0);
	cr_assert(st.st_mtime >= before - 2 && st.st_mtime <= after,
		  "mtime %jd not Last-Modified", (intmax_t)st.st_mtime);
	/* a stub put back: owner of its directory, its mode minus x */
	cr_assert_eq(st.st_uid, 1234);
	cr_assert_eq(st.st_gid, 1235);
	cr_assert_eq(st.st_mode & 07777, 0660);
	cr_assert_eq(st.st_size, 0);
	ul_assert_guid("Maildir/.Sent", GUID_SENT);
	cr_assert(ul_exists("Maildir/.Sent/new"));
	cr_assert(ul_exists("Maildir/.Sent/tmp"));
	/* new directories: the parent's owner and mode */
	cr_assert_eq(fstatat(ul_dst_fd, "Maildir/.Sent", &st, 0), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);

	cr_assert_eq(stats.mails_put_back, 4);
	cr_assert_eq(stats.mails_skipped, 0);
	cr_assert_eq(stats.folders_found, 2);
	/* 1 LIST, a GET per bundle, a HEAD per missing mail only */
	ul_request_counts(req);
	cr_assert_eq(req[OBJSTORE_OP_LIST], 1);
	cr_assert_eq(req[OBJSTORE_OP_GET], 2);
	cr_assert_eq(req[OBJSTORE_OP_HEAD], 4);
}

Test(fs_userload_rescan, renamed_folder_gets_its_mails)
{
	struct userload_stats stats;

	/* .Sent was renamed to .Archive after its mail was stored */
	ul_mkdir(ul_src_fd, "Maildir", NULL);
	ul_mkdir(ul_src_fd, "Maildir/.Archive", GUID_SENT);
	ul_mkdir(ul_src_fd, "Maildir/.Archive/cur", NULL);
	ul_bundle_root("", NULL);
	ul_bundle_root("Maildir/.Archive", GUID_SENT);
	ul_put_mail(GUID_SENT, OID(1), "m1", "Maildir/.Sent/cur", "1.M1:2,",
		    "1500000001");
	ul_put_mail(GUID_SENT, OID(2), "m22", "Maildir/.Sent/new", "2.M2",
		    "1500000002");

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_stub("Maildir/.Archive/cur/1.M1:2,", GUID_SENT, OID(1), 2,
		       1500000001);
	ul_assert_stub("Maildir/.Archive/new/2.M2", GUID_SENT, OID(2), 3,
		       1500000002);
	cr_assert(ul_exists("Maildir/.Archive/tmp"));
	cr_assert(!ul_exists("Maildir/.Sent"));
	cr_assert_eq(stats.mails_put_back, 2);
}

Test(fs_userload_rescan, folder_bundle_in_no_tree)
{
	char key[OBJSTORE_KEY_MAX + 1];
	struct userload_stats stats;
	uint64_t req[OBJSTORE_OP_COUNT];

	/* the folder has a bundle but the user root has none */
	ul_mkdir(ul_src_fd, "Maildir", NULL);
	ul_mkdir(ul_src_fd, "Maildir/.Sent", GUID_SENT);
	ul_mkdir(ul_src_fd, "Maildir/.Sent/cur", NULL);
	ul_file(ul_src_fd, "Maildir/.Sent/dovecot.index", "idx", T0);
	ul_stub(ul_src_fd, "Maildir/.Sent/cur/1.M1:2,S", GUID_SENT, OID(1),
		"m1", T0);
	ul_bundle_root("Maildir/.Sent", GUID_SENT);
	/* the mail object carries its metadata (mailstore does) */
	ul_mail_key(key, sizeof(key), GUID_SENT, OID(1));
	cr_assert_eq(objstore_delete(ul_store, key), 0);
	ul_put_mail(GUID_SENT, OID(1), "m1", "Maildir/.Sent/cur", "1.M1:2,S",
		    NULL);
	ul_setup_store(NULL);

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_guid("Maildir/.Sent", GUID_SENT);
	ul_assert_stub("Maildir/.Sent/cur/1.M1:2,S", GUID_SENT, OID(1), 2, T0);
	cr_assert(ul_exists("Maildir/.Sent/dovecot.index"));
	cr_assert_eq(stats.roots_loaded, 1);
	cr_assert_eq(stats.mails_put_back, 0);
	/* one HEAD to learn where the folder is */
	ul_request_counts(req);
	cr_assert_eq(req[OBJSTORE_OP_HEAD], 1);
	ul_assert_log("loaded into Maildir/.Sent");
}

static void assert_file_bytes(const char *path, const char *content,
			      size_t size)
{
	char buf[256];
	int fd = openat(ul_dst_fd, path, O_RDONLY);
	ssize_t len;

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	len = read(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_eq(len, (ssize_t)size, "%s: %zd bytes", path, len);
	cr_assert_eq(memcmp(buf, content, size), 0);
}

static void assert_file(const char *path, const char *content)
{
	assert_file_bytes(path, content, strlen(content));
}

Test(fs_userload_rescan, sdbox_put_back_and_index_rebuild)
{
	struct userload_stats stats;

	ul_mkdir(ul_src_fd, "sdbox", NULL);
	ul_mkdir(ul_src_fd, "sdbox/mailboxes", NULL);
	ul_mkdir(ul_src_fd, "sdbox/mailboxes/INBOX", GUID_INBOX);
	ul_mkdir(ul_src_fd, "sdbox/mailboxes/INBOX/dbox-Mails", NULL);
	ul_file(ul_src_fd, "sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index",
		"index", T0);
	ul_file(ul_src_fd,
		"sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index.log", "log",
		T0);
	ul_file(ul_src_fd,
		"sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index.log.2", "log2",
		T0);
	ul_stub(ul_src_fd, "sdbox/mailboxes/INBOX/dbox-Mails/u.1", GUID_INBOX,
		OID(1), "m1", T0);
	/* a second folder that gets nothing back keeps its index */
	ul_mkdir(ul_src_fd, "sdbox/mailboxes/Sent", GUID_SENT);
	ul_mkdir(ul_src_fd, "sdbox/mailboxes/Sent/dbox-Mails", NULL);
	ul_file(ul_src_fd, "sdbox/mailboxes/Sent/dbox-Mails/dovecot.index",
		"sent index", T0);
	ul_bundle_root("", NULL);
	ul_bundle_root("sdbox/mailboxes/INBOX", GUID_INBOX);
	ul_bundle_root("sdbox/mailboxes/Sent", GUID_SENT);
	ul_put_mail(GUID_INBOX, OID(2), "m22",
		    "sdbox/mailboxes/INBOX/dbox-Mails", "u.2", "1500000002");

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_stub("sdbox/mailboxes/INBOX/dbox-Mails/u.1", GUID_INBOX,
		       OID(1), 2, T0);
	ul_assert_stub("sdbox/mailboxes/INBOX/dbox-Mails/u.2", GUID_INBOX,
		       OID(2), 3, 1500000002);
	/* the index files stay; the log gets a header update setting
	   FSCKD, so Dovecot rebuilds the index from the u.N files */
	assert_file("sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index",
		    "index");
	assert_file_bytes("sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index.log",
			  "log\x80\x80\x80\x84\x20\x00\x00\x10"
			  "\x14\x00\x04\x00\x04\x00\x00\x00", 3 + 16);
	assert_file("sdbox/mailboxes/INBOX/dbox-Mails/dovecot.index.log.2",
		    "log2");
	/* no maildir subdirectories in an sdbox folder */
	cr_assert(!ul_exists("sdbox/mailboxes/INBOX/cur"));
	assert_file("sdbox/mailboxes/Sent/dbox-Mails/dovecot.index",
		    "sent index");
	cr_assert_eq(stats.mails_put_back, 1);
}

/* no index at all (a folder loaded from its mails alone): a new
   dovecot.index.log of a 2.3 header and the FSCKD record, so that
   Dovecot's first open rebuilds the index from the u.N files (checked
   with a real Dovecot by test_dovecot_sdbox_folder_from_mails) */
Test(fs_userload_rescan, sdbox_force_rebuild_without_any_index)
{
	int fd = objtest_mkdir_open(ul_tmp, "dbox");
	unsigned char log[PUTBACK_SDBOX_LOG_HDR_SIZE +
			  PUTBACK_SDBOX_FSCKD_SIZE + 1];
	uint32_t u32;
	uint16_t u16;
	int lfd;

	cr_assert_eq(putback_sdbox_force_rebuild(fd), 1);
	lfd = openat(fd, "dovecot.index.log", O_RDONLY);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(read(lfd, log, sizeof(log)), (ssize_t)sizeof(log) - 1);
	close(lfd);
	cr_assert_eq(log[0], 1);	/* major */
	cr_assert_eq(log[1], 3);	/* minor */
	memcpy(&u16, log + 2, 2);
	cr_assert_eq(u16, PUTBACK_SDBOX_LOG_HDR_SIZE);
	memcpy(&u32, log + 4, 4);
	cr_assert_neq(u32, 0, "an index id");
	memcpy(&u32, log + 8, 4);
	cr_assert_eq(u32, 1, "file_seq");
	cr_assert_eq(memcmp(log + PUTBACK_SDBOX_LOG_HDR_SIZE,
			    putback_sdbox_fsckd, PUTBACK_SDBOX_FSCKD_SIZE), 0);
	/* a second mark appends to it */
	cr_assert_eq(putback_sdbox_force_rebuild(fd), 1);
	struct stat st;

	cr_assert_eq(fstatat(fd, "dovecot.index.log", &st, 0), 0);
	cr_assert_eq(st.st_size, PUTBACK_SDBOX_LOG_HDR_SIZE +
		     2 * PUTBACK_SDBOX_FSCKD_SIZE);
	close(fd);
}

Test(fs_userload_rescan, sdbox_force_rebuild_without_logs)
{
	int fd = objtest_mkdir_open(ul_tmp, "dbox");

	cr_assert_eq(mkdirat(fd, "dovecot.index.log", 0700), 0);
	/* a directory where the log should be: the error is reported */
	cr_assert_eq(putback_sdbox_force_rebuild(fd), -1);
	cr_assert_eq(errno, EISDIR);
	close(fd);
}

Test(fs_userload_rescan, sdbox_force_rebuild_index_only)
{
	int fd = objtest_mkdir_open(ul_tmp, "dbox");
	unsigned char hdr[32], back[32];
	int ifd;

	/* an index without a log: the flag is set in its header */
	memset(hdr, 0x11, sizeof(hdr));
	hdr[20] = 0x02;
	ifd = openat(fd, "dovecot.index", O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(ifd, 0);
	cr_assert_eq(write(ifd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	close(ifd);
	cr_assert_eq(putback_sdbox_force_rebuild(fd), 1);
	ifd = openat(fd, "dovecot.index", O_RDONLY);
	cr_assert_eq(read(ifd, back, sizeof(back)), (ssize_t)sizeof(back));
	close(ifd);
	cr_assert_eq(back[20], 0x06, "flags byte %#x", back[20]);
	back[20] = 0x02;
	cr_assert_eq(memcmp(back, hdr, sizeof(hdr)), 0);
	/* too short to be an index: left alone */
	ifd = openat(fd, "dovecot.index", O_WRONLY);
	cr_assert_eq(ftruncate(ifd, 10), 0);
	close(ifd);
	cr_assert_eq(putback_sdbox_force_rebuild(fd), 0);
	close(fd);
}

/* the caller's garbage: mail OID(5) */
static bool skip_oid5(const char *key, void *context)
{
	(void)context;
	return strstr(key, OID(5)) != NULL;
}

/* a folder no tree names, with bundles (another writer's chain of it,
   split brain), whose mails this machine deleted (garbage here): its
   bundles are not loaded (their stubs would name objects about to go);
   its mails that are not garbage come back by the rescan */
Test(fs_userload_rescan, folder_in_no_tree_with_garbage_here)
{
	struct userload_stats stats;
	const char *error = "";

	make_inbox();
	/* .Gone: made after the bundles above, so in no tree of them */
	ul_mkdir(ul_src_fd, "Maildir/.Gone", GUID_GONE);
	ul_mkdir(ul_src_fd, "Maildir/.Gone/cur", NULL);
	ul_stub(ul_src_fd, "Maildir/.Gone/cur/5.M5:2,", GUID_GONE, OID(5),
		"mail5", T0);
	ul_stub(ul_src_fd, "Maildir/.Gone/cur/6.M6:2,S", GUID_GONE, OID(6),
		"mail66", T0);
	ul_bundle_root("Maildir/.Gone", GUID_GONE);
	ul_put_mail(GUID_GONE, OID(5), "mail5", "Maildir/.Gone/cur", "5.M5:2,",
		    "1500000005");
	ul_put_mail(GUID_GONE, OID(6), "mail66", "Maildir/.Gone/cur",
		    "6.M6:2,", "1500000006");
	ul_setup_store(NULL);

	cr_assert_eq(userload_load_filtered(ul_store, UL_USER, ul_dst_fd,
					    skip_oid5, NULL, &stats, NULL,
					    &error), 1, "%s", error);
	cr_assert_not(ul_exists("Maildir/.Gone/cur/5.M5:2,"),
		      "a stub of a mail deleted here");
	/* by its metadata's name, not the bundle's (not loaded) */
	ul_assert_stub("Maildir/.Gone/cur/6.M6:2,", GUID_GONE, OID(6), 6,
		       1500000006);
	cr_assert_not(ul_exists("Maildir/.Gone/cur/6.M6:2,S"));
	cr_assert_eq(stats.mails_skipped, 1);
	ul_assert_log("this machine deleted mails of it");
}
