/* mailpath.c: classification of tree paths into users, folders and mails. */
#include "mailpath.h"
#include "objstore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

int mailpath_user_name_check(const char *name, const char **error_r)
{
	size_t len = strlen(name);
	const char *error;

	if (len == 0) {
		*error_r = "empty user name";
		return -1;
	}
	if (len > MAILPATH_NAME_MAX) {
		*error_r = "user name longer than 255 bytes";
		return -1;
	}
	if (name[0] == '.') {
		*error_r = "user name starts with '.'";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/') {
			*error_r = "'/' in user name";
			return -1;
		}
		if (c < 0x20 || c == 0x7f) {
			*error_r = "control character in user name";
			return -1;
		}
	}
	if (objstore_key_check(name, &error) < 0) {
		*error_r = error;
		return -1;
	}
	return 0;
}

bool mailpath_is_sdbox_mail_name(const char *name)
{
	if (strncmp(name, "u.", 2) != 0 || name[2] == '\0')
		return false;
	for (const char *p = name + 2; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
	}
	return true;
}

bool mailpath_sdbox_uid(const char *name, uint32_t *uid_r)
{
	uint64_t uid = 0;

	if (!mailpath_is_sdbox_mail_name(name) || strlen(name) > 2 + 10)
		return false;
	for (const char *p = name + 2; *p != '\0'; p++)
		uid = uid * 10 + (uint64_t)(*p - '0');
	if (uid == 0 || uid > UINT32_MAX)
		return false;
	*uid_r = (uint32_t)uid;
	return true;
}

enum mailpath_dir mailpath_mail_dir(const char *name)
{
	if (strcmp(name, "cur") == 0)
		return MAILPATH_DIR_CUR;
	if (strcmp(name, "new") == 0)
		return MAILPATH_DIR_NEW;
	if (strcmp(name, MAILPATH_DBOX_MAILS) == 0)
		return MAILPATH_DIR_DBOX_MAILS;
	if (strcmp(name, "tmp") == 0)
		return MAILPATH_DIR_TMP;
	return MAILPATH_DIR_OTHER;
}

int mailpath_mail_name_check(enum mailpath_dir dir, const char *name,
			     const char **error_r)
{
	if (dir == MAILPATH_DIR_OTHER) {
		*error_r = "not a cur, new, tmp or dbox-Mails directory";
		return -1;
	}
	if (name[0] == '\0' || strlen(name) > MAILPATH_NAME_MAX ||
	    strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		*error_r = "invalid name";
		return -1;
	}
	if (dir == MAILPATH_DIR_DBOX_MAILS &&
	    !mailpath_is_sdbox_mail_name(name)) {
		*error_r = "not an sdbox mail name (u.N)";
		return -1;
	}
	return 0;
}

static bool dir_is_canonical(const char *dir)
{
	size_t len = strlen(dir);
	const char *seg = dir;

	if (len == 0)
		return true;
	if (dir[0] == '/' || dir[len - 1] == '/')
		return false;
	for (const char *p = dir;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		size_t seglen = (size_t)(p - seg);

		if (seglen == 0 || (seglen == 1 && seg[0] == '.') ||
		    (seglen == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		if (*p == '\0')
			return true;
		seg = p + 1;
	}
}

int mailpath_classify(const char *dir, const char *name,
		      struct mailpath *mp_r)
{
	const char *slash, *last;
	size_t dir_len = strlen(dir);

	memset(mp_r, 0, sizeof(*mp_r));
	if (!dir_is_canonical(dir)) {
		errno = EINVAL;
		return -1;
	}
	mp_r->user_dir = dir + dir_len;
	if (dir_len == 0)
		return 0;

	slash = strchr(dir, '/');
	mp_r->user_len = slash == NULL ? dir_len : (size_t)(slash - dir);
	if (slash == NULL) {
		/* entries directly in the user directory are never mails */
		return 0;
	}
	mp_r->user_dir = slash + 1;

	last = strrchr(dir, '/') + 1;
	enum mailpath_dir kind = mailpath_mail_dir(last);

	if (kind == MAILPATH_DIR_CUR || kind == MAILPATH_DIR_NEW ||
	    (kind == MAILPATH_DIR_DBOX_MAILS &&
	     mailpath_is_sdbox_mail_name(name))) {
		mp_r->is_mail = true;
		mp_r->is_delivery = kind != MAILPATH_DIR_CUR;
		mp_r->folder_len = (size_t)(last - 1 - dir);
	} else if (kind == MAILPATH_DIR_TMP) {
		mp_r->is_maildir_tmp = true;
		mp_r->folder_len = (size_t)(last - 1 - dir);
	}
	return 0;
}

/* the length of name's base, and its flags after ":2," ("" if none);
   -1 if it has an info part of another kind */
static ssize_t maildir_split(const char *name, const char **flags_r)
{
	const char *colon = strchr(name, ':');

	if (colon == NULL) {
		*flags_r = "";
		return (ssize_t)strlen(name);
	}
	if (strncmp(colon, ":2,", 3) != 0 || strchr(colon + 3, ':') != NULL)
		return -1;
	*flags_r = colon + 3;
	return colon - name;
}

static bool is_system_flag(char c)
{
	return strchr("DFPRST", c) != NULL && c != '\0';
}

int mailpath_maildir_flags_union(const char *a, const char *b, char *out,
				 size_t size)
{
	/* set by maildir_split() (gcc -O2 cannot tell) */
	const char *fa = "", *fb = "";
	ssize_t la = maildir_split(a, &fa), lb = maildir_split(b, &fb);
	bool have[128] = { false }, adds = false;
	size_t len;
	int n;

	if (la <= 0 || lb <= 0)
		return -1;
	for (const char *p = fa; *p != '\0'; p++) {
		if ((unsigned char)*p >= 128 ||
		    !(is_system_flag(*p) || (*p >= 'a' && *p <= 'z')))
			return -1;
		have[(unsigned char)*p] = true;
	}
	for (const char *p = fb; *p != '\0'; p++) {
		if ((unsigned char)*p >= 128 ||
		    !(is_system_flag(*p) || (*p >= 'a' && *p <= 'z')))
			return -1;
		if (!have[(unsigned char)*p]) {
			have[(unsigned char)*p] = true;
			adds = true;
		}
	}
	if (!adds) {
		if (strlen(a) >= size)
			return -1;
		memcpy(out, a, strlen(a) + 1);
		return 0;
	}
	n = snprintf(out, size, "%.*s:2,", (int)la, a);
	if (n < 0 || (size_t)n >= size)
		return -1;
	len = (size_t)n;
	for (unsigned int c = 'A'; c <= 'z'; c++) {
		if (!have[c])
			continue;
		if (len + 1 >= size)
			return -1;
		out[len++] = (char)c;
	}
	out[len] = '\0';
	return 1;
}

bool mailpath_maildir_same_flags(const char *a, const char *b)
{
	/* set by maildir_split() (gcc -O2 cannot tell) */
	const char *fa = "", *fb = "";
	bool in_a[128] = { false }, in_b[128] = { false };

	if (maildir_split(a, &fa) <= 0 || maildir_split(b, &fb) <= 0)
		return false;
	for (const char *p = fa; *p != '\0'; p++) {
		if ((unsigned char)*p >= 128)
			return false;
		in_a[(unsigned char)*p] = true;
	}
	for (const char *p = fb; *p != '\0'; p++) {
		if ((unsigned char)*p >= 128)
			return false;
		in_b[(unsigned char)*p] = true;
	}
	return memcmp(in_a, in_b, sizeof(in_a)) == 0;
}
