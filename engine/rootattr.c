/* rootattr.c: the tree root's owner and mode in the store (rootattr.h).
 * Stored form (ASCII, one line each, nothing else):
 *   oboxfs-root 1
 *   uid <decimal>
 *   gid <decimal>
 *   mode <4 octal digits>
 */
#include "rootattr.h"
#include "obox-private.h"
#include "keys.h"
#include "log.h"
#include "objstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOTATTR_MAGIC "oboxfs-root 1\n"

size_t rootattr_format(const struct rootattr *attr, char *buf)
{
	int len = snprintf(buf, ROOTATTR_TEXT_MAX, ROOTATTR_MAGIC
			   "uid %" PRIu32 "\ngid %" PRIu32 "\nmode %04o\n",
			   attr->uid, attr->gid, attr->mode & 07777);

	return len < 0 ? 0 : (size_t)len;
}

/* "<name> <digits>\n" at *p (base 10 or 8): the value; advances *p */
static int parse_line(const char **p, const char *end, const char *name,
		      int base, uint64_t max, uint64_t *value_r)
{
	size_t name_len = strlen(name);
	const char *s = *p;
	uint64_t v = 0;
	size_t digits = 0;

	if ((size_t)(end - s) < name_len + 1 ||
	    memcmp(s, name, name_len) != 0 || s[name_len] != ' ')
		return -1;
	for (s += name_len + 1; s < end && *s >= '0' && *s < '0' + base; s++) {
		v = v * (uint64_t)base + (uint64_t)(*s - '0');
		if (++digits > 10 || v > max)
			return -1;
	}
	if (digits == 0 || s >= end || *s != '\n')
		return -1;
	*p = s + 1;
	*value_r = v;
	return 0;
}

int rootattr_parse(const char *text, size_t size, struct rootattr *attr_r,
		   const char **error_r)
{
	const char *p = text, *end = text + size;
	size_t magic_len = strlen(ROOTATTR_MAGIC);
	uint64_t uid, gid, mode;

	if (size < magic_len || memcmp(text, ROOTATTR_MAGIC, magic_len) != 0) {
		*error_r = "not an oboxfs root attribute object";
		return -1;
	}
	p += magic_len;
	/* uid/gid (uint32_t)-1 means "no change" to chown(): refused */
	if (parse_line(&p, end, "uid", 10, UINT32_MAX - 1, &uid) < 0 ||
	    parse_line(&p, end, "gid", 10, UINT32_MAX - 1, &gid) < 0 ||
	    parse_line(&p, end, "mode", 8, 07777, &mode) < 0 || p != end) {
		*error_r = "invalid uid, gid or mode line";
		return -1;
	}
	attr_r->uid = (uint32_t)uid;
	attr_r->gid = (uint32_t)gid;
	attr_r->mode = (uint32_t)mode;
	return 0;
}

int rootattr_load(struct objstore *store, struct rootattr *attr_r)
{
	const char *error;
	size_t size;
	void *data;
	int ret;

	if (objstore_get(store, KEYS_ROOT_ATTR, 0, OBJSTORE_TO_END,
			 ROOTATTR_TEXT_MAX, &data, &size) < 0) {
		if (objstore_errcode() == OBJSTORE_ERR_NOT_FOUND)
			return 0;
		obox_log(OBOX_LOG_WARNING, "reading the root's owner and mode "
			 "(%s) failed: %s\n", KEYS_ROOT_ATTR,
			 objstore_error());
		return -1;
	}
	ret = rootattr_parse(data, size, attr_r, &error);
	free(data);
	if (ret < 0) {
		obox_log(OBOX_LOG_WARNING, "%s: %s: ignored\n",
			 KEYS_ROOT_ATTR, error);
		return 0;
	}
	return 1;
}

int rootattr_store(struct objstore *store, const struct rootattr *attr)
{
	char text[ROOTATTR_TEXT_MAX];
	size_t len = rootattr_format(attr, text);

	if (objstore_put(store, KEYS_ROOT_ATTR, text, len, NULL, 0) < 0) {
		obox_log(OBOX_LOG_ERR, "storing the root's owner and mode "
			 "(%s) failed: %s (other machines do not see the "
			 "change)\n", KEYS_ROOT_ATTR, objstore_error());
		return -1;
	}
	return 0;
}

/* --- the tree root of an engine --- */

/* chown/chmod the root directory to what is set or stored */
void rootattr_apply(struct obox *obox)
{
	const struct obox_settings *set = &obox->set;
	struct rootattr attr;
	struct stat st;
	int stored;

	stored = rootattr_load(obox->store, &attr);
	if (stat(obox->meta_path, &st) < 0) {
		obox_log(OBOX_LOG_ERR, "stat(%s) failed: %s\n",
			 obox->meta_path, strerror(errno));
		return;
	}
	if (stored <= 0) {
		attr.uid = (uint32_t)st.st_uid;
		attr.gid = (uint32_t)st.st_gid;
		attr.mode = (uint32_t)st.st_mode & 07777;
	}
	if (set->root_uid_set)
		attr.uid = set->root_uid;
	if (set->root_gid_set)
		attr.gid = set->root_gid;
	if (set->root_mode_set)
		attr.mode = set->root_mode & 07777;
	if ((attr.uid != (uint32_t)st.st_uid ||
	     attr.gid != (uint32_t)st.st_gid) &&
	    lchown(obox->meta_path, attr.uid, attr.gid) < 0) {
		obox_log(OBOX_LOG_ERR, "chown(%s, %u, %u) failed: %s\n",
			 obox->meta_path, attr.uid, attr.gid,
			 strerror(errno));
	}
	if (attr.mode != ((uint32_t)st.st_mode & 07777) &&
	    chmod(obox->meta_path, attr.mode) < 0) {
		obox_log(OBOX_LOG_ERR, "chmod(%s, %04o) failed: %s\n",
			 obox->meta_path, attr.mode, strerror(errno));
	}
}

int obox_root_attr_changed(struct obox *obox)
{
	struct rootattr attr;
	struct stat st;

	if (stat(obox->meta_path, &st) < 0)
		return errno;
	attr.uid = (uint32_t)st.st_uid;
	attr.gid = (uint32_t)st.st_gid;
	attr.mode = (uint32_t)st.st_mode & 07777;
	return rootattr_store(obox->store, &attr) < 0 ? EIO : 0;
}
