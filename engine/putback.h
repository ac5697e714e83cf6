/* putback.h: putting a mail back from the store as a stub (CONTRACT.md
 * section 6): the one rule set used by a load's rescan (userload-rescan.c)
 * and by the split-brain merge (splitbrain.c).
 *
 * A mail object carries its place as metadata (untrusted): "path" (its
 * mail directory relative to the user dir, e.g. "Maildir/.Sent/cur"),
 * "name" (its file name) and "mtime" (decimal seconds; the object's
 * Last-Modified if missing or not 1-18 digits).  The mail-location rules
 * (cur/new/dbox-Mails, u.N names) are mailpath.h's.
 *
 * A mail stored at its fsync in a maildir tmp/ (mailfile.c,
 * store_on_fsync) has a "path" ending in "tmp": it is put back into the
 * folder's new/ under the same name.  Dovecot renames tmp/X to
 * new/X,S=<size>,W=<vsize> (or cur/X,S=..,W=..:2,FLAGS): the fields are
 * optional, X alone is a valid maildir name, and a mail in no bundle is a
 * new one to Dovecot anyway; so an acknowledged delivery comes back; a crash between the fsync and the
 * rename brings back a delivery the MTA was not told of (at least once,
 * like a crash between a PUT and its reply).  An aborted save (tmp/ file
 * unlinked or rewritten) has its object deleted at once (mailnames.c),
 * so it never comes back.
 *
 * Owner and mode rule: a directory created here gets its parent's owner
 * (when running as root) and permission bits; a stub gets its directory's
 * owner (when root) and the directory's permission bits without x.
 *
 * No shared state: every call works on its arguments only.
 */
#ifndef OBOXFS_PUTBACK_H
#define OBOXFS_PUTBACK_H

#include "mailpath.h"
#include "objstore.h"

#include <stdint.h>
#include <time.h>

struct putback_mail {
	struct objstore_stat st;	/* the HEAD: owns the strings below */
	const char *path;		/* "path" metadata */
	const char *name;		/* "name" metadata */
	/* the last segment of path ("new" for "tmp") */
	const char *dir_name;
	/* which mail directory that is (never MAILPATH_DIR_TMP) */
	enum mailpath_dir dir;
	time_t mtime;
};

/* HEAD key and check its metadata.  Returns 1 with mail_r (free it with
   putback_mail_free()); 0 if the metadata is unusable: logged as
   "<who>: mail <key> not put back: <reason>", nothing kept; -1 if the
   HEAD failed (objstore_error(); not logged: the caller decides). */
int putback_head(struct objstore *store, const char *key, const char *who,
		 struct putback_mail *mail_r);
void putback_mail_free(struct putback_mail *mail);

/* Open parent_fd/name as a directory, creating it if missing (owner and
   mode rule above).  Returns an fd or -1 with errno. */
int putback_subdir_open(int parent_fd, const char *name);

enum putback_stage {
	PUTBACK_STAGE_DIR,	/* opening/creating the mail directory */
	PUTBACK_STAGE_STUB,	/* creating the stub */
};

/* Create the stub of mail (object key) in folder_fd's mail directory
   (mail->dir_name, created if missing; a maildir folder gets all of cur,
   new and tmp).  An sdbox mail whose u.N name is taken by another mail
   (two writers gave one UID to different mails: a split brain), or whose
   UID N Dovecot gave here before (below the folder's next UID, from its
   index files: dovecotidx.h; a client saw that mail expunged), gets the
   name above every u.<digits> of its directory and every UID given here,
   into renamed_r (MAILPATH_NAME_MAX + 1 bytes; "" when its own name was
   free): Dovecot's rebuild gives it that UID.  Returns 1 if created; 0 if
   the name exists (a maildir name, or an sdbox name that is a stub of
   this very key: nothing changed); -1 with errno and *stage_r saying
   what failed (nothing of the stub left behind). */
int putback_create(int folder_fd, const struct putback_mail *mail,
		   const char *key, enum putback_stage *stage_r,
		   char *renamed_r);

/* Make Dovecot rebuild an sdbox folder's index from its u.N files (after
   mails were put back), keeping UIDs, UIDVALIDITY, flags and keywords:
   append an FSCKD header update to dovecot.index.log, or (no log) set the
   FSCKD flag in dovecot.index, or (no index at all: a folder loaded from
   its mails alone) make a dovecot.index.log of that record alone, owned
   as the directory, with its mode bits less x.  Returns 1 if marked, 0
   if dovecot.index is too short to be an index or a log appeared while
   this ran (nothing marked), -1 with errno. */
int putback_sdbox_force_rebuild(int dbox_mails_dir_fd);
/* the header of a dovecot.index.log Dovecot 2.3 reads */
#define PUTBACK_SDBOX_LOG_HDR_SIZE 40
/* the dovecot.index.log record it appends (a header update setting
   the index's FSCKD flag), for a front end appending it as Dovecot's
   processes do, under the log's lock (splitbrain.c) */
#define PUTBACK_SDBOX_FSCKD_SIZE 16
extern const unsigned char putback_sdbox_fsckd[PUTBACK_SDBOX_FSCKD_SIZE];

#endif
