/* fuzz_names: the names and paths that come from users (FUSE lookups) or
 * from the store (listed keys, bundle names, paths in bundles and object
 * metadata).  The first byte picks the parser, the rest is its input:
 *   0  a user name: obox_user_name_check(); a valid one has a user
 *      prefix that is a valid key (keys_user_prefix())
 *   1  a directory and an entry name (split at the first NUL):
 *      mailpath_classify()
 *   2  a mail's name in a mail directory (second byte: which):
 *      mailpath_mail_name_check(), mailpath_mail_dir(),
 *      mailpath_is_sdbox_mail_name()
 *   3  a listed key of user "user@example.com": keys_parse(),
 *      keys_key_oid(), keys_mail_idx_prefix(), and a bundle key's name
 *      through bundle_name_parse()
 *   4  a bundle name: bundle_name_parse(); a valid one formats back to
 *      itself and builds a key
 *   5  a path of a bundle entry (raw bytes, NULs included):
 *      bundle_path_check()
 *   6  a store key: objstore_key_check()
 *   7  a folder's dovecot-keywords as another writer's bundle gives it
 *      (raw bytes): maildirkw_parse(); the list formatted and parsed
 *      again is the same, and each name's letter is its own */
#include "bundle.h"
#include "keys.h"
#include "maildirkw.h"
#include "mailpath.h"
#include "obox.h"
#include "objstore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void user_name(const char *s)
{
	char prefix[KEYS_PREFIX_MAX];
	const char *error;
	int ret = obox_user_name_check(s, &error);

	if (ret != mailpath_user_name_check(s, &error))
		abort();
	if (ret < 0)
		return;
	if (keys_user_prefix(s, prefix, sizeof(prefix)) < 0) {
		fprintf(stderr, "valid user '%s' has no prefix\n", s);
		abort();
	}
	if (objstore_key_check(prefix, &error) < 0) {
		fprintf(stderr, "valid user '%s': prefix is no key: %s\n", s,
			error);
		abort();
	}
}

static void classify(const char *s, size_t len)
{
	size_t dlen = strlen(s);
	const char *name = dlen < len ? s + dlen + 1 : "";
	struct mailpath mp;

	if (mailpath_classify(s, name, &mp) == 0) {
		if (mp.user_len > dlen ||
		    ((mp.is_mail || mp.is_maildir_tmp) &&
		     mp.folder_len > dlen) ||
		    (mp.is_mail && mp.is_maildir_tmp))
			abort();
	}
}

static void mail_name(const char *s, size_t len)
{
	const char *error;

	if (len == 0)
		return;
	(void)mailpath_mail_name_check((enum mailpath_dir)((s[0] & 7) %
				       (MAILPATH_DIR_TMP + 1)), s + 1, &error);
	(void)mailpath_mail_dir(s + 1);
	(void)mailpath_is_sdbox_mail_name(s + 1);
}

static void name_check(const char *s)
{
	struct bundle_name name;
	const char *error;
	char buf[BUNDLE_NAME_DIFF_LEN + 1], key[BUNDLE_KEY_MAX + 1];

	if (bundle_name_parse(s, &name, &error) < 0)
		return;
	bundle_name_format(&name, buf, sizeof(buf));
	if (strcmp(buf, s) != 0) {
		fprintf(stderr, "bundle name '%s' formats as '%s'\n", s, buf);
		abort();
	}
	if (bundle_key_build("b5/899/user@example.com", &name, key,
			     sizeof(key), &error) < 0)
		abort();
}

static void key_parse(const char *s)
{
	char prefix[KEYS_PREFIX_MAX], buf[OBJSTORE_KEY_MAX + 1];
	struct keys_parsed parsed;
	enum keys_kind kind;

	if (keys_user_prefix("user@example.com", prefix, sizeof(prefix)) < 0)
		abort();
	kind = keys_parse(prefix, s, &parsed);
	if (kind != parsed.kind)
		abort();
	if ((kind == KEYS_ROOT_BUNDLE || kind == KEYS_FOLDER_BUNDLE) &&
	    parsed.name != NULL)
		name_check(parsed.name);
	(void)keys_key_oid(s);
	(void)keys_mail_idx_prefix(s, buf, sizeof(buf));
}

static void keywords(const char *text, size_t len)
{
	struct maildirkw kw = { 0 }, again = { 0 };
	size_t out_len;
	char *out;

	maildirkw_parse(&kw, text, len);
	out = maildirkw_format(&kw, &out_len);
	if (out == NULL)
		abort();
	maildirkw_parse(&again, out, out_len);
	for (unsigned int i = 0; i < MAILDIRKW_MAX; i++) {
		const char *name = kw.names[i];

		if ((name == NULL) != (again.names[i] == NULL) ||
		    (name != NULL && strcmp(name, again.names[i]) != 0)) {
			fprintf(stderr, "keyword %u did not survive a format\n",
				i);
			abort();
		}
		/* a name given twice answers with its first letter */
		if (name != NULL &&
		    maildirkw_letter(&kw, name, false) > (char)('a' + i))
			abort();
	}
	if (kw.changed)
		abort();
	free(out);
	maildirkw_clear(&kw);
	maildirkw_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *error;
	char *s;
	size_t len;

	if (size == 0)
		return 0;
	len = size - 1;
	s = malloc(len + 1);
	memcpy(s, data + 1, len);
	s[len] = '\0';
	switch (data[0] % 8) {
	case 0:
		user_name(s);
		break;
	case 1:
		classify(s, len);
		break;
	case 2:
		mail_name(s, len);
		break;
	case 3:
		key_parse(s);
		break;
	case 4:
		name_check(s);
		break;
	case 5:
		(void)bundle_path_check(s, len, &error);
		break;
	case 6:
		(void)objstore_key_check(s, &error);
		break;
	case 7:
		keywords((const char *)data + 1, len);
		break;
	}
	free(s);
	return 0;
}
