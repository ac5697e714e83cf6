/* posix-meta.c: object metadata of the file:// store.  It is kept as a JSON
 * object {"name": "value" | {"hex": "..."}} (hex for values that are not
 * UTF-8) in the user.oboxfs.meta xattr.  What is read back is validated
 * like any untrusted input: strict JSON, no duplicates, no NUL bytes, and
 * the names/values/sizes objstore_meta_check() allows. */
#include "posix-meta.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

char *posix_meta_encode(const struct objstore_meta *meta,
			unsigned int meta_count)
{
	json_t *obj = json_object();
	char *ret;

	if (obj == NULL)
		return NULL;
	for (unsigned int i = 0; i < meta_count; i++) {
		json_t *val = json_string(meta[i].value);

		if (val == NULL) {
			/* not UTF-8: keep the bytes hex-encoded */
			size_t len = strlen(meta[i].value);
			char hex[OBJSTORE_META_VALUE_MAX * 2 + 1];

			if (len > OBJSTORE_META_VALUE_MAX) {
				json_decref(obj);
				return NULL;
			}
			for (size_t j = 0; j < len; j++)
				sprintf(hex + j * 2, "%02x",
					(unsigned char)meta[i].value[j]);
			hex[len * 2] = '\0';
			val = json_pack("{s:s}", "hex", hex);
		}
		if (val == NULL ||
		    json_object_set_new(obj, meta[i].name, val) < 0) {
			json_decref(obj);
			return NULL;
		}
	}
	ret = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	return ret;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* decode lowercase hex into a NUL-terminated string without NUL bytes */
static int hex_decode(const char *hex, char *out, size_t out_size)
{
	size_t len = strlen(hex);

	if (len % 2 != 0 || len / 2 >= out_size)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_value(hex[i * 2]), lo = hex_value(hex[i * 2 + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -1;
		out[i] = (char)(hi * 16 + lo);
	}
	out[len / 2] = '\0';
	return 0;
}

int posix_meta_decode(const char *buf, size_t size, struct objstore_stat *stat,
		      const char **reason_r)
{
	struct objstore_meta meta[OBJSTORE_META_MAX_PAIRS];
	char values[OBJSTORE_META_MAX_PAIRS][OBJSTORE_META_VALUE_MAX + 1];
	unsigned int count = 0;
	json_error_t jerr;
	const char *name;
	json_t *root, *val;
	int ret = -1;

	root = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		*reason_r = "not valid JSON";
		return -1;
	}
	if (!json_is_object(root)) {
		*reason_r = "not a JSON object";
		goto out;
	}
	if (json_object_size(root) > OBJSTORE_META_MAX_PAIRS) {
		*reason_r = "too many metadata pairs";
		goto out;
	}
	json_object_foreach(root, name, val) {
		const char *str;

		if (json_is_string(val)) {
			str = json_string_value(val);
			if (strlen(str) != json_string_length(val) ||
			    strlen(str) > OBJSTORE_META_VALUE_MAX) {
				*reason_r = "metadata value has NUL or "
					"is too long";
				goto out;
			}
			meta[count].value = str;
		} else if (json_is_object(val) && json_object_size(val) == 1 &&
			   json_is_string(json_object_get(val, "hex"))) {
			str = json_string_value(json_object_get(val, "hex"));
			if (hex_decode(str, values[count],
				       sizeof(values[count])) < 0) {
				*reason_r = "bad hex metadata value";
				goto out;
			}
			meta[count].value = values[count];
		} else {
			*reason_r = "metadata value is not a string";
			goto out;
		}
		meta[count++].name = name;
	}
	if (objstore_meta_check(meta, count, reason_r) < 0)
		goto out;
	if (objstore_stat_set_meta(stat, meta, count) < 0) {
		*reason_r = "out of memory";
		goto out;
	}
	ret = 0;
out:
	json_decref(root);
	return ret;
}
