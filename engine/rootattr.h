/* rootattr.h: the tree root's owner and mode, kept in the store.
 *
 * The mount root is the metacache's own directory, not part of any user's
 * tree, so without this every machine (and every empty cache dir) showed
 * it as root:root 0755 and Dovecot, running as the mail user, could not
 * create a new user's directory until an operator chowned it again.  A
 * chown or chmod of the root is stored as one small object
 * (keys_root_attr_key()), read back at each obox_init() and applied to
 * the root, unless the root_uid/root_gid/root_mode settings override it.
 * The object is untrusted input: parsed strictly, ignored (logged) when
 * invalid.
 */
#ifndef OBOXFS_ROOTATTR_H
#define OBOXFS_ROOTATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;
struct obox;

struct rootattr {
	uint32_t uid, gid;
	uint32_t mode;		/* permission bits (07777) */
};

/* text form of attr into buf (at least ROOTATTR_TEXT_MAX bytes); returns
   its length */
#define ROOTATTR_TEXT_MAX 96
size_t rootattr_format(const struct rootattr *attr, char *buf);
/* Parse the untrusted text of size bytes.  Returns 0, or -1 with a
   static *error_r. */
int rootattr_parse(const char *text, size_t size, struct rootattr *attr_r,
		   const char **error_r);

/* GET the stored attributes: 1 with *attr_r, 0 if none are stored (or
   they are invalid: logged), -1 on a store error (logged). */
int rootattr_load(struct objstore *store, struct rootattr *attr_r);
/* PUT attr.  Returns 0 or -1 (logged). */
int rootattr_store(struct objstore *store, const struct rootattr *attr);

/* At obox_init(): the root directory gets the owner and mode the settings
   give (root_*_set), else what the store keeps, else keeps its own.
   Failures are logged (the mount goes on). */
void rootattr_apply(struct obox *obox);

#endif
