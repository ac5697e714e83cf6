/* mailpath.h: what a path in the tree is (pure functions, no I/O).
 *
 * Paths are relative to the mount root, without leading or trailing '/':
 * "" is the root, "user@example.com" a user directory,
 * "user@example.com/Maildir/.Sent/cur" a directory below it.
 *
 * Mail locations (CONTRACT.md section 3):
 *   maildir: any entry directly in a directory named "cur" or "new";
 *            the folder is the directory containing cur/new,
 *   sdbox:   an entry named "u.<digits>" directly in a directory named
 *            "dbox-Mails"; the folder is the directory containing it.
 * Both need the cur/new/dbox-Mails directory to be below a user directory
 * (the folder may be the user directory itself).
 *
 * Not a mail location, but a mail's place before it is one:
 *   maildir tmp: any entry directly in a directory named "tmp" (below a
 *            user directory); the folder is the directory containing tmp.
 *            Dovecot writes a mail there, fsync()s it and renames it into
 *            new/ (keeping the base name) or cur/ (base name + ":2,FLAGS").
 */
#ifndef OBOXFS_MAILPATH_H
#define OBOXFS_MAILPATH_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define MAILPATH_NAME_MAX 255
/* The name of the virtual statistics file in the mount root. */
#define MAILPATH_STATS_NAME ".oboxfs-stats"

struct mailpath {
	/* the user: dir[0 .. user_len) ("" for the root) */
	size_t user_len;
	/* the entry is a mail location (see above) */
	bool is_mail;
	/* is_mail, and a new mail arriving: in a maildir "new" directory,
	   or an sdbox "u.<digits>" file */
	bool is_delivery;
	/* not is_mail: an entry of a maildir "tmp" directory (see above) */
	bool is_maildir_tmp;
	/* if is_mail or is_maildir_tmp: the folder directory is
	   dir[0 .. folder_len) */
	size_t folder_len;
	/* dir relative to the user directory ("" for the user dir itself);
	   points into dir */
	const char *user_dir;
};

/* Return 0 if name may be a user (top-level) directory name, else -1 with a
   reason in *error_r.  Refused: empty, ".", "..", a leading '.', '/',
   control characters, more than 255 bytes, or anything objstore_key_check()
   rejects as a key segment. */
int mailpath_user_name_check(const char *name, const char **error_r);

/* Classify the entry name in directory dir.  Returns 0, or -1 with errno =
   EINVAL if dir is not a canonical relative path. */
int mailpath_classify(const char *dir, const char *name,
		      struct mailpath *mp_r);

/* True if name is "u.<digits>" (an sdbox mail file name). */
bool mailpath_is_sdbox_mail_name(const char *name);
/* The UID of an sdbox mail name "u.<digits>" into *uid_r: false if name
   is not one, or its number is 0 or above 2^32 - 1. */
bool mailpath_sdbox_uid(const char *name, uint32_t *uid_r);

/* the name of an sdbox folder's mail directory */
#define MAILPATH_DBOX_MAILS "dbox-Mails"

/* Which mail directory a directory named name is */
enum mailpath_dir {
	MAILPATH_DIR_OTHER = 0,
	MAILPATH_DIR_CUR,		/* maildir "cur" */
	MAILPATH_DIR_NEW,		/* maildir "new" */
	MAILPATH_DIR_DBOX_MAILS,	/* sdbox "dbox-Mails" */
	MAILPATH_DIR_TMP,		/* maildir "tmp" (not a mail location) */
};
enum mailpath_dir mailpath_mail_dir(const char *name);
/* Return 0 if name (untrusted) may be a mail's name in a mail directory of
   kind dir, else -1 with a reason in *error_r: empty, ".", "..", '/', over
   MAILPATH_NAME_MAX bytes, not "u.<digits>" in dbox-Mails, or dir not a
   mail directory (MAILPATH_DIR_TMP included: a name to be in tmp/ is
   checked as one of new/). */
int mailpath_mail_name_check(enum mailpath_dir dir, const char *name,
			     const char **error_r);

/* Maildir names carry a mail's flags: "<base>:2,<flags>" in cur/ (flags
   sorted, one letter each: system flags D F P R S T, keyword letters
   a-z), "<base>" in new/.  a and b (untrusted) name one mail (the caller
   knows: one object key; their bases may differ: Dovecot adds
   ",S=<size>,W=<vsize>" to a delivery's name, a mail put back has the
   name it was stored under): write into out "<a's base>:2,<the union of
   both names' flags>" and return 1 if b has flags a lacks; else copy a
   into out and return 0; -1 if either is no maildir name (or carries
   other letters) or out (size bytes) is too small.  Keyword letters index a folder's
   dovecot-keywords, which is each machine's own: b's letters must have
   been mapped to a's file first (maildirkw.h). */
int mailpath_maildir_flags_union(const char *a, const char *b, char *out,
				 size_t size);
/* True if the maildir names a and b (untrusted; "<base>" in new/ or
   "<base>:2,<flags>" in cur/) carry the same set of flag letters (a mail
   moved from new/ to cur/ without flags, or renamed by Dovecot adding
   ",S=" fields, is unchanged); false if they differ or either is no
   maildir name. */
bool mailpath_maildir_same_flags(const char *a, const char *b);

#endif
