/* keys.c: building and parsing the store keys of a user (see keys.h). */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define KEYS_MAILBOXES "mailboxes/"
#define KEYS_IDX "idx/"

/* snprintf() result check shared by the builders */
static int keys_check_len(int len, size_t size)
{
	if (len < 0 || (size_t)len >= size || len > OBJSTORE_KEY_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int keys_user_prefix(const char *user, char *buf, size_t size)
{
	char h1[3], h2[4];

	ids_user_hash(user, h1, h2);
	return keys_check_len(snprintf(buf, size, "%s/%s/%s", h1, h2, user),
			      size);
}

/* the root prefix followed by tail */
static int root_prefix_tail(const char *user_prefix, const char *guid,
			    const char *tail, char *buf, size_t size)
{
	int len;

	if (guid[0] == '\0')
		len = snprintf(buf, size, "%s%s", user_prefix, tail);
	else {
		len = snprintf(buf, size, "%s/" KEYS_MAILBOXES "%s%s",
			       user_prefix, guid, tail);
	}
	return keys_check_len(len, size);
}

int keys_root_prefix(const char *user_prefix, const char *guid, char *buf,
		     size_t size)
{
	return root_prefix_tail(user_prefix, guid, "", buf, size);
}

int keys_root_list_prefix(const char *user_prefix, const char *guid,
			  char *buf, size_t size)
{
	return root_prefix_tail(user_prefix, guid, "/", buf, size);
}

int keys_idx_prefix(const char *user_prefix, const char *guid, char *buf,
		    size_t size)
{
	return root_prefix_tail(user_prefix, guid, "/" KEYS_IDX, buf, size);
}

int keys_mail_list_start(const char *user_prefix, const char *guid,
			 uint32_t secs, uint32_t usecs, char *buf,
			 size_t size)
{
	char tail[1 + IDS_TIME_HEX_LEN + 1];

	if (guid[0] == '\0' || usecs >= 1000000) {
		errno = EINVAL;
		return -1;
	}
	tail[0] = '/';
	ids_time_prefix(secs, usecs, tail + 1);
	return root_prefix_tail(user_prefix, guid, tail, buf, size);
}

int keys_mail_key(const char *user, const char *folder_guid, const char *oid,
		  char *buf, size_t size)
{
	char prefix[KEYS_PREFIX_MAX];
	const char *error;
	int len;

	if (keys_user_prefix(user, prefix, sizeof(prefix)) < 0)
		return -1;
	len = snprintf(buf, size, "%s/" KEYS_MAILBOXES "%s/%s", prefix,
		       folder_guid, oid);
	if (keys_check_len(len, size) < 0)
		return -1;
	if (objstore_key_check(buf, &error) < 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

const char *keys_key_oid(const char *key)
{
	const char *p = strrchr(key, '/');

	p = p == NULL ? key : p + 1;
	return ids_is_hex_id(p) ? p : NULL;
}

int keys_mail_idx_prefix(const char *mail_key, char *buf, size_t size)
{
	const char *oid = keys_key_oid(mail_key);
	size_t mlen = strlen(KEYS_MAILBOXES), root_len;
	const char *guid;

	/* ".../mailboxes/<guid>/<oid>" */
	if (oid == NULL || (size_t)(oid - mail_key) < mlen + IDS_HEX_LEN + 2)
		goto invalid;
	guid = oid - 1 - IDS_HEX_LEN;
	root_len = (size_t)(oid - 1 - mail_key);
	if (guid[-1] != '/' || strncmp(guid - mlen, KEYS_MAILBOXES, mlen) != 0 ||
	    guid - mlen == mail_key || guid[-(long)mlen - 1] != '/')
		goto invalid;
	for (unsigned int i = 0; i < IDS_HEX_LEN; i++) {
		if (!((guid[i] >= '0' && guid[i] <= '9') ||
		      (guid[i] >= 'a' && guid[i] <= 'f')))
			goto invalid;
	}
	return keys_check_len(snprintf(buf, size, "%.*s/%s", (int)root_len,
				       mail_key, KEYS_IDX), size);
invalid:
	errno = EINVAL;
	return -1;
}

/* "idx/<name>" with no further '/': the name, else NULL */
static const char *idx_name(const char *rest)
{
	size_t len = strlen(KEYS_IDX);

	if (strncmp(rest, KEYS_IDX, len) != 0 || strchr(rest + len, '/') != NULL)
		return NULL;
	return rest + len;
}

enum keys_kind keys_parse(const char *user_prefix, const char *key,
			  struct keys_parsed *parsed_r)
{
	size_t prefix_len = strlen(user_prefix);
	const char *rest = key + prefix_len;

	memset(parsed_r, 0, sizeof(*parsed_r));
	if (strlen(key) > OBJSTORE_KEY_MAX ||
	    strncmp(key, user_prefix, prefix_len) != 0 || rest[0] != '/')
		return KEYS_OTHER;
	rest++;
	if ((parsed_r->name = idx_name(rest)) != NULL)
		return parsed_r->kind = KEYS_ROOT_BUNDLE;
	if (strncmp(rest, KEYS_MAILBOXES, strlen(KEYS_MAILBOXES)) != 0)
		return KEYS_OTHER;
	rest += strlen(KEYS_MAILBOXES);
	if (strlen(rest) <= IDS_HEX_LEN || rest[IDS_HEX_LEN] != '/')
		return KEYS_OTHER;
	memcpy(parsed_r->guid, rest, IDS_HEX_LEN);
	parsed_r->guid[IDS_HEX_LEN] = '\0';
	rest += IDS_HEX_LEN + 1;
	if (!ids_is_hex_id(parsed_r->guid))
		parsed_r->kind = KEYS_OTHER;
	else if ((parsed_r->name = idx_name(rest)) != NULL)
		parsed_r->kind = KEYS_FOLDER_BUNDLE;
	else if (ids_is_hex_id(rest)) {
		parsed_r->name = rest;
		parsed_r->kind = KEYS_MAIL;
	}
	if (parsed_r->kind == KEYS_OTHER)
		memset(parsed_r, 0, sizeof(*parsed_r));
	return parsed_r->kind;
}
