/* mailstore.h: turning a file into a stored mail (a stub) and back.
 *
 * mailstore_store() is how a mail becomes durable (CONTRACT.md section 5):
 * it PUTs the file's bytes as a new object
 *     <h1>/<h2>/<user>/mailboxes/<folder-guid>/<oid>
 * with metadata path=<directory relative to the user dir>, name=<file
 * name> and mtime=<the file's mtime, decimal seconds>, copies the bytes into the mail cache and turns the metacache file
 * itself into a stub (xattrs set, truncated to 0), so the inode keeps its
 * identity (the kernel's view of it stays valid across the rename that
 * follows).  The folder GUID is kept as BUNDLE_XATTR_GUID on the folder's
 * metacache directory, created with the folder's first mail: a maildir
 * folder's Dovecot mailbox GUID (its dovecot-uidlist's, dovecotidx.h),
 * which two writers of a split brain that both store a first mail of a
 * folder empty at the split share, else a new random one.
 *
 * Objects belong to one user and folder: mailstore_relocate() decides
 * when a stub moving to another folder needs a new object.
 *
 * A maildir tmp/ file may be stored before it is a mail (at its fsync,
 * store_on_fsync: mailfile.c) at a place from mailstore_tmp_place(): its
 * object is its folder's, with path metadata "<folder>/tmp", and its stub
 * is marked STUB_XATTR_UNNAMED (stub.h) until the rename into new/ or cur/
 * that follows, which then keeps the object (mailstore_relocate(): same
 * user and folder) and needs no request.  An unnamed object that loses
 * its file (mailstore_drop()) is deleted at once.
 *
 * Conversions of one inode are serialized with mailstore_lock_inode()
 * (exclusive, a per-inode lock: see inolock.h); writes through a handle
 * hold mailstore_lock_inode_shared(), so no write can slip in between the
 * PUT of a file's bytes and its truncation to a stub.
 */
#ifndef OBOXFS_MAILSTORE_H
#define OBOXFS_MAILSTORE_H

#include "ids.h"
#include "mailpath.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct objstore;
struct mailcache;
struct objgc;
struct stub;
struct mailstore;

struct mailstore_stats {
	uint64_t mails_stored, bytes_stored, mails_unstubbed, mails_relocated;
	/* of mails_stored: maildir tmp/ files stored at their fsync */
	uint64_t mails_stored_at_fsync;
	/* objects that never had a mail name deleted when their file went
	   (a save Dovecot aborted, a tmp/ file rewritten after its fsync) */
	uint64_t unnamed_discarded;
};

/* Where a mail name is: classified once (mailstore_place()) and carried
   through the store, relocate and delivery steps of one operation. */
struct mail_place {
	const char *dir;	/* the directory, relative to the tree root */
	const char *name;	/* the entry name */
	const char *user_dir;	/* dir relative to the user dir (in dir) */
	char user[MAILPATH_NAME_MAX + 1];
	/* the folder directory relative to the user dir ("" for the user
	   dir itself) */
	char folder[PATH_MAX];
	char guid[IDS_HEX_LEN + 1];	/* the folder's GUID */
	/* a delivery: into a maildir "new" directory or an sdbox u.N */
	bool is_delivery;
	/* not a mail location but a maildir tmp/ entry
	   (mailstore_tmp_place()) */
	bool is_tmp;
};

/* meta_fd: the metacache root directory (O_PATH is enough). */
struct mailstore *mailstore_init(struct objstore *store, struct mailcache *mc,
				 struct objgc *gc, int meta_fd);
void mailstore_deinit(struct mailstore **ms);

void mailstore_lock_inode(struct mailstore *ms, ino_t ino);
void mailstore_lock_inode_shared(struct mailstore *ms, ino_t ino);
void mailstore_unlock_inode(struct mailstore *ms, ino_t ino);

/* Classify the entry name in directory dir (relative to the tree root;
   both must stay valid while place_r is used).  Returns 1 with place_r
   filled if it is a mail location (the folder's GUID is created if
   missing), 0 if it is not, -1 with errno: ENAMETOOLONG if the path or
   name cannot be kept as object metadata, EINVAL for a bad dir, else the
   error of the folder GUID. */
int mailstore_place(struct mailstore *ms, const char *dir, const char *name,
		    struct mail_place *place_r);

/* The same for an entry of a maildir tmp/ directory (mailpath.h): 1 with
   place_r->is_tmp, 0 if dir is not one, -1 with errno. */
int mailstore_tmp_place(struct mailstore *ms, const char *dir,
			const char *name, struct mail_place *place_r);

/* Store the regular file open read-write as fd as the mail at place.
   A file that already is a stub is left alone.  The object of the stub
   the file was before being rewritten (STUB_XATTR_OLDKEY) is released
   once the new one is stored (deleted at once if it never had a mail
   name: STUB_XATTR_UNNAMED).  Stored at a tmp/ place (place->is_tmp), the
   stub is marked STUB_XATTR_UNNAMED; at a mail location the mark is
   removed first.  Call with the inode locked (exclusive).
   Returns 0, or -1 with
   errno: EIO if the store failed (then nothing changed), ENAMETOOLONG if
   the path or name cannot be kept as object metadata, EINVAL if dir/name is
   not a mail location. */
int mailstore_store(struct mailstore *ms, int fd,
		    const struct mail_place *place);
/* A stub (old) gets the name at place, a mail location.  If
   that is another user's or another folder's (a COPY/MOVE between folders,
   a delivery to several users sharing one file), the mail is stored again
   under the new folder, with new metadata, as new_r (from the mail cache:
   objstore_copy() cannot replace metadata) and 1 is returned; the caller
   points a stub at new_r and releases old when its last name goes.
   Returns 0 if the stub may keep its object, -1 with errno on failure
   (EIO: the store failed). */
int mailstore_relocate(struct mailstore *ms, const struct stub *old,
		       const struct mail_place *place, struct stub *new_r);
/* The object key lost its last reference (the last name of its stub
   went, or its file was stored again): released (objgc_release()), or
   deleted at once if unnamed (it never had a mail name, so no bundle
   lists it: objgc_discard()). */
void mailstore_drop(struct mailstore *ms, const char *key, bool unnamed);
/* A stub stored from tmp/ got its first mail name, at place, keeping its
   object: the delivery callback is told if that is a delivery. */
void mailstore_named(struct mailstore *ms, const struct mail_place *place);

/* Turn the stub open read-write as fd back into a plain file holding the
   mail's bytes (or empty if !keep_content).  Its object is not released
   yet: its key is kept as STUB_XATTR_OLDKEY until the new content is
   stored (mailstore_store()) or the last name goes (fs_unlink_at()).  A
   plain file is left alone.  Call with the inode locked (exclusive).
   Returns 0 or -1 with errno. */
int mailstore_unstub(struct mailstore *ms, int fd, bool keep_content);

/* The GUID of the folder directory folder (relative to the tree root),
   creating it if missing.  Returns 0 or -1 with errno. */
int mailstore_folder_guid(struct mailstore *ms, const char *folder,
			  char guid_r[33]);

/* Called after a delivery (place->is_delivery) was stored. */
typedef void mailstore_delivery_cb(const struct mail_place *place,
				   void *context);
void mailstore_set_delivery_callback(struct mailstore *ms,
				     mailstore_delivery_cb *callback,
				     void *context);

void mailstore_get_stats(struct mailstore *ms, struct mailstore_stats *stats_r);

#endif
