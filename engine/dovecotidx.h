/* dovecotidx.h: what the engine reads of Dovecot's own index files, in
 * Dovecot 2.3's formats:
 *  - the UIDs an sdbox folder has given out, from its dovecot.index
 *    header and its transaction logs (dovecot.index.log and the rotated
 *    .log.2): a mail put back (putback.c) must not take a UID Dovecot gave
 *    before (a client that saw that UID expunged would take the new mail
 *    for the old one);
 *  - a maildir folder's mailbox GUID, from its dovecot-uidlist header
 *    ("3 V<uidvalidity> N<next uid> G<guid>"): a folder's first mail
 *    names the folder's objects by it (mailstore.c), so that two writers
 *    of a split brain, each storing the first mail of a folder that was
 *    empty when they split, name it alike and their merge finds it one
 *    folder (splitbrain.c); and a merge (splitfolders.c) reads it from
 *    each side's bundle tree to find a folder empty at the split that one
 *    side renamed and the other gave its first mail.
 *
 * The files may be half-written or damaged, or come from a bundle of the
 * store: they are read as untrusted input, with bounds; what cannot be
 * parsed is skipped (a record that does not fit ends a log's reading).
 *
 * No shared state: every call works on its arguments only.
 */
#ifndef OBOXFS_DOVECOTIDX_H
#define OBOXFS_DOVECOTIDX_H

#include <stddef.h>
#include <stdint.h>

/* The lowest UID above every UID dir_fd's index files give or record
   (the index header's next_uid, the logs' appends, UID changes and
   next_uid header updates): 0 if there is no index file, or none says
   anything.  Returns 0 with *next_uid_r, or -1 with errno (a file that
   exists could not be read). */
int dovecotidx_next_uid(int dir_fd, uint32_t *next_uid_r);

/* The part of it for one log file's bytes (data, size), for fuzz/:
   raises *next_uid to what the log records. */
void dovecotidx_log_next_uid(const unsigned char *data, size_t size,
			     uint32_t *next_uid);

/* dir_fd's dovecot-uidlist mailbox GUID (32 lowercase hex digits) into
   guid_r: 1 if there is one, 0 if there is no such file or field (or it
   is not 32 hex digits), -1 with errno (the file could not be read). */
int dovecotidx_maildir_guid(int dir_fd, char guid_r[33]);

/* The same from a dovecot-uidlist's bytes (data, size: a bundle tree's
   copy of the file; only the first line is read, at most 1 KiB): 1 with
   guid_r, or 0 if there is no such field. */
int dovecotidx_uidlist_guid(const unsigned char *data, size_t size,
			    char guid_r[33]);

/* An sdbox folder's mailbox GUID (its index's "dbox-hdr" extension: in
   dovecot.index, and in the logs after it, where a new folder has it
   alone) into guid_r (32 lowercase hex digits), from dbox_fd's files (its
   dbox-Mails): 1, 0 if none says one (or it is all zeros), -1 with errno
   (a file could not be read). */
int dovecotidx_sdbox_guid(int dbox_fd, char guid_r[33]);
/* The same from the files' bytes (a bundle tree's copies; any NULL). */
int dovecotidx_sdbox_guid_parse(const unsigned char *index, size_t index_size,
				const unsigned char *log2, size_t log2_size,
				const unsigned char *log, size_t log_size,
				char guid_r[33]);

#endif
