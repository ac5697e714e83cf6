/* names.c: building, parsing (untrusted listings) and ordering the object
 * names of base and diff bundles (CONTRACT section 4). */
#include "bundle-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#define NAME_PREFIX "bundle."

void bundle_id_hex_format(const unsigned char *id, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < BUNDLE_ID_SIZE; i++) {
		out[i * 2] = hex[id[i] >> 4];
		out[i * 2 + 1] = hex[id[i] & 15];
	}
	out[BUNDLE_ID_SIZE * 2] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* exactly len lowercase hex digits into a number */
static bool hex_u32(const char *s, size_t len, uint32_t *v_r)
{
	uint32_t v = 0;

	for (size_t i = 0; i < len; i++) {
		int d = hex_digit(s[i]);

		if (d < 0)
			return false;
		v = (v << 4) | (uint32_t)d;
	}
	*v_r = v;
	return true;
}

bool bundle_id_hex_parse(const char *s, unsigned char *id)
{
	for (size_t i = 0; i < BUNDLE_ID_SIZE; i++) {
		int hi = hex_digit(s[i * 2]), lo = hex_digit(s[i * 2 + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

void bundle_name_format(const struct bundle_name *name, char *buf,
			size_t size)
{
	char base_hex[33], diff_hex[33];

	bundle_id_hex_format(name->base_id, base_hex);
	if (!name->is_diff) {
		snprintf(buf, size, NAME_PREFIX "%08x.%05x.%s", name->secs,
			 name->usecs, base_hex);
		return;
	}
	bundle_id_hex_format(name->diff_id, diff_hex);
	snprintf(buf, size, NAME_PREFIX "%08x.%05x.%s-%s", name->secs,
		 name->usecs, base_hex, diff_hex);
}

void bundle_name_from_info(const struct bundle_info *info,
			   struct bundle_name *name_r)
{
	memset(name_r, 0, sizeof(*name_r));
	if (info->kind == BUNDLE_KIND_DIFF) {
		name_r->is_diff = true;
		name_r->secs = info->base_secs;
		name_r->usecs = info->base_usecs;
		memcpy(name_r->base_id, info->base_id, BUNDLE_ID_SIZE);
		memcpy(name_r->diff_id, info->id, BUNDLE_ID_SIZE);
	} else {
		name_r->secs = info->secs;
		name_r->usecs = info->usecs;
		memcpy(name_r->base_id, info->id, BUNDLE_ID_SIZE);
	}
}

bool bundle_name_parent(const struct bundle_info *info,
			struct bundle_name *name_r)
{
	memset(name_r, 0, sizeof(*name_r));
	if (info->kind != BUNDLE_KIND_BASE || !info->has_parent)
		return false;
	name_r->is_diff = info->parent_is_diff;
	name_r->secs = info->parent_secs;
	name_r->usecs = info->parent_usecs;
	memcpy(name_r->base_id, info->parent_base_id, BUNDLE_ID_SIZE);
	if (info->parent_is_diff)
		memcpy(name_r->diff_id, info->parent_diff_id, BUNDLE_ID_SIZE);
	return true;
}

void bundle_info_set_parent(struct bundle_info *info,
			    const struct bundle_name *name)
{
	info->has_parent = true;
	info->parent_is_diff = name->is_diff;
	info->parent_secs = name->secs;
	info->parent_usecs = name->usecs;
	memcpy(info->parent_base_id, name->base_id, BUNDLE_ID_SIZE);
	memset(info->parent_diff_id, 0, BUNDLE_ID_SIZE);
	if (name->is_diff)
		memcpy(info->parent_diff_id, name->diff_id, BUNDLE_ID_SIZE);
}

int bundle_name_parse(const char *name, struct bundle_name *name_r,
		      const char **error_r)
{
	size_t len = strnlen(name, BUNDLE_NAME_DIFF_LEN + 1);
	const char *p = name + strlen(NAME_PREFIX);

	memset(name_r, 0, sizeof(*name_r));
	if ((len != BUNDLE_NAME_BASE_LEN && len != BUNDLE_NAME_DIFF_LEN) ||
	    strncmp(name, NAME_PREFIX, strlen(NAME_PREFIX)) != 0 ||
	    !hex_u32(p, 8, &name_r->secs) || p[8] != '.' ||
	    !hex_u32(p + 9, 5, &name_r->usecs) || p[14] != '.' ||
	    name_r->usecs >= 1000000 || !bundle_id_hex_parse(p + 15, name_r->base_id)) {
		*error_r = bundle_error("invalid bundle name '%.*s'",
					(int)(len > 100 ? 100 : len), name);
		return -1;
	}
	if (len == BUNDLE_NAME_DIFF_LEN) {
		p += 15 + 32;
		if (p[0] != '-' || !bundle_id_hex_parse(p + 1, name_r->diff_id)) {
			*error_r = bundle_error("invalid diff bundle name "
						"'%.*s'", (int)len, name);
			return -1;
		}
		name_r->is_diff = true;
	}
	return 0;
}

int bundle_key_build(const char *prefix, const struct bundle_name *name,
		     char *buf, size_t size, const char **error_r)
{
	char n[BUNDLE_NAME_DIFF_LEN + 1];
	int len;

	bundle_name_format(name, n, sizeof(n));
	len = snprintf(buf, size, "%s/idx/%s", prefix, n);
	if (len < 0 || (size_t)len >= size || (size_t)len > BUNDLE_KEY_MAX) {
		*error_r = bundle_error("bundle key for %s too long", prefix);
		return -1;
	}
	return 0;
}

int bundle_key_base_of(const char *diff_key, char *buf, size_t size)
{
	const char *slash = strrchr(diff_key, '/'), *error;
	char n[BUNDLE_NAME_DIFF_LEN + 1];
	struct bundle_name name;
	int len;

	if (slash == NULL || bundle_name_parse(slash + 1, &name, &error) < 0 ||
	    !name.is_diff)
		return -1;
	name.is_diff = false;
	bundle_name_format(&name, n, sizeof(n));
	len = snprintf(buf, size, "%.*s/%s", (int)(slash - diff_key),
		       diff_key, n);
	return len < 0 || (size_t)len >= size ? -1 : 0;
}

int bundle_name_cmp(const struct bundle_name *a, const struct bundle_name *b)
{
	int cmp;

	if (a->secs != b->secs)
		return a->secs < b->secs ? -1 : 1;
	if (a->usecs != b->usecs)
		return a->usecs < b->usecs ? -1 : 1;
	cmp = memcmp(a->base_id, b->base_id, BUNDLE_ID_SIZE);
	if (cmp != 0)
		return cmp < 0 ? -1 : 1;
	if (a->is_diff != b->is_diff)
		return a->is_diff ? 1 : -1;
	cmp = a->is_diff ? memcmp(a->diff_id, b->diff_id, BUNDLE_ID_SIZE) : 0;
	return cmp < 0 ? -1 : cmp > 0;
}

static int name_idx_cmp(const void *p1, const void *p2, void *context)
{
	const struct bundle_name *names = context;

	return bundle_name_cmp(&names[*(const size_t *)p1],
			       &names[*(const size_t *)p2]);
}

void bundle_names_select(const struct bundle_name *names, size_t count,
			 long *base_idx_r, size_t *diff_idx_r,
			 size_t *diff_count_r)
{
	long base = -1;
	size_t n = 0;

	for (size_t i = 0; i < count; i++) {
		if (!names[i].is_diff &&
		    (base < 0 || bundle_name_cmp(&names[i], &names[base]) > 0))
			base = (long)i;
	}
	*base_idx_r = base;
	*diff_count_r = 0;
	if (base < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		const struct bundle_name *d = &names[i];

		if (!d->is_diff || d->secs != names[base].secs ||
		    d->usecs != names[base].usecs ||
		    memcmp(d->base_id, names[base].base_id,
			   BUNDLE_ID_SIZE) != 0)
			continue;
		diff_idx_r[n++] = i;
	}
	if (n > 1)
		qsort_r(diff_idx_r, n, sizeof(*diff_idx_r), name_idx_cmp,
			(void *)names);
	*diff_count_r = n;
}

int bundle_diff_info_cmp(const struct bundle_info *a,
			 const struct bundle_info *b)
{
	int cmp;

	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	if (a->secs != b->secs)
		return a->secs < b->secs ? -1 : 1;
	if (a->usecs != b->usecs)
		return a->usecs < b->usecs ? -1 : 1;
	cmp = memcmp(a->id, b->id, BUNDLE_ID_SIZE);
	return cmp < 0 ? -1 : cmp > 0;
}

int bundle_id_generate(unsigned char id[BUNDLE_ID_SIZE])
{
	size_t done = 0;

	while (done < BUNDLE_ID_SIZE) {
		ssize_t ret = getrandom(id + done, BUNDLE_ID_SIZE - done, 0);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -1;
		done += (size_t)ret;
	}
	return 0;
}
