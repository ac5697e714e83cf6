/* splitflags.c: a split-brain merge's flag union of maildir mails (see
 * splitflags.h). */
#include "splitflags.h"
#include "bundle.h"
#include "log.h"
#include "mailpath.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GET and decode key; NULL if it cannot be had (logged) */
static struct bundle *fetch(struct objstore *store, const char *key,
			    unsigned int *gets_r)
{
	struct bundle *bundle;
	const char *error;
	size_t size;
	void *data;
	int ret;

	(*gets_r)++;
	if (objstore_get(store, key, 0, OBJSTORE_TO_END, BUNDLE_FETCH_MAX,
			 &data, &size) < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: reading the other "
			 "writer's bundle %s failed: %s\n", key,
			 objstore_error());
		return NULL;
	}
	ret = bundle_decode(data, size, BUNDLE_FETCH_MAX, &bundle, &error);
	free(data);
	if (ret < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: the other writer's "
			 "bundle %s is invalid: %s\n", key, error);
		return NULL;
	}
	return bundle;
}

static bool same_base(const struct bundle_name *a, const struct bundle_name *b)
{
	return a->secs == b->secs && a->usecs == b->usecs &&
	       memcmp(a->base_id, b->base_id, sizeof(a->base_id)) == 0;
}

/* No base among names[0..n) (all diffs): the key of the newest base they
   are diffs of (the diff key without its "-<diff id>"), with the indexes
   of its diffs in diff_idx / *diff_count_r; NULL if none. */
static char *diffs_base(const struct keylist *foreign,
			const struct bundle_name *names, const size_t *map,
			size_t n, size_t *diff_idx, size_t *diff_count_r)
{
	const size_t suffix = 1 + 2 * BUNDLE_ID_SIZE;	/* "-<32 hex>" */
	size_t newest = n;
	const char *key;

	*diff_count_r = 0;
	for (size_t i = 0; i < n; i++) {
		if (names[i].is_diff && (newest == n ||
		    bundle_name_cmp(&names[i], &names[newest]) > 0))
			newest = i;
	}
	if (newest == n)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (names[i].is_diff && same_base(&names[i], &names[newest]))
			diff_idx[(*diff_count_r)++] = i;
	}
	key = foreign->keys[map[newest]];
	if (strlen(key) <= suffix)
		return NULL;
	return strndup(key, strlen(key) - suffix);
}

struct bundle_tree *splitflags_other_tree(struct objstore *store,
					  const struct keylist *foreign,
					  unsigned int *gets_r)
{
	struct bundle_name *names;
	struct bundle *base = NULL, *best = NULL;
	struct bundle_tree *tree = NULL;
	size_t *diff_idx, diff_count = 0, *map;
	const char *error;
	char *base_key;
	size_t n = 0;
	long base_idx;

	*gets_r = 0;
	if (foreign->count == 0)
		return NULL;
	names = calloc(foreign->count, sizeof(*names));
	map = calloc(foreign->count, sizeof(*map));
	diff_idx = calloc(foreign->count, sizeof(*diff_idx));
	if (names == NULL || map == NULL || diff_idx == NULL)
		goto out;
	for (size_t i = 0; i < foreign->count; i++) {
		const char *slash = strrchr(foreign->keys[i], '/');

		if (slash != NULL &&
		    bundle_name_parse(slash + 1, &names[n], &error) == 0)
			map[n++] = i;
	}
	bundle_names_select(names, n, &base_idx, diff_idx, &diff_count);
	if (base_idx >= 0) {
		base = fetch(store, foreign->keys[map[base_idx]], gets_r);
	} else if ((base_key = diffs_base(foreign, names, map, n, diff_idx,
					  &diff_count)) != NULL) {
		/* only diffs: of a base both writers loaded */
		base = fetch(store, base_key, gets_r);
		free(base_key);
	}
	if (base == NULL || base->tree == NULL)
		goto out;
	/* diffs are cumulative from their base: the current one suffices */
	for (size_t i = 0; i < diff_count; i++) {
		struct bundle *diff = fetch(store, foreign->keys[map[diff_idx[i]]],
					    gets_r);

		if (diff == NULL || diff->diff == NULL) {
			bundle_free(&diff);
			continue;
		}
		if (best == NULL ||
		    bundle_diff_info_cmp(&diff->info, &best->info) > 0) {
			bundle_free(&best);
			best = diff;
		} else {
			bundle_free(&diff);
		}
	}
	tree = base->tree;
	base->tree = NULL;
	if (best != NULL &&
	    bundle_apply_diff(tree, best->diff, &error) < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: the other writer's "
			 "diff does not apply: %s: its base is used\n", error);
	}
out:
	bundle_free(&best);
	bundle_free(&base);
	free(names);
	free(map);
	free(diff_idx);
	return tree;
}

struct key_name {
	const char *key, *path;
};

static int key_name_cmp(const void *p1, const void *p2)
{
	const struct key_name *a = p1, *b = p2;

	return strcmp(a->key, b->key);
}

unsigned int splitflags_merge(int folder_fd, const struct keylist *keys,
			      const struct keylist *paths,
			      const struct bundle_tree *other, bool dirs[2])
{
	struct key_name *index;
	unsigned int renamed = 0;
	size_t n = 0;

	if (other == NULL || keys->count == 0)
		return 0;
	index = calloc(other->count + 1, sizeof(*index));
	if (index == NULL)
		return 0;
	for (size_t i = 0; i < other->count; i++) {
		const struct bundle_entry *e = &other->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    (strncmp(e->path, "cur/", 4) == 0 ||
		     strncmp(e->path, "new/", 4) == 0)) {
			index[n].key = e->key;
			index[n++].path = e->path;
		}
	}
	qsort(index, n, sizeof(*index), key_name_cmp);
	for (size_t i = 0; i < keys->count; i++) {
		struct key_name want = { .key = keys->keys[i] }, *found;
		const char *local = paths->keys[i];
		char name[MAILPATH_NAME_MAX + 1], target[PATH_MAX];

		found = bsearch(&want, index, n, sizeof(*index), key_name_cmp);
		if (found == NULL ||
		    mailpath_maildir_flags_union(local + 4, found->path + 4,
						 name, sizeof(name)) != 1)
			continue;
		snprintf(target, sizeof(target), "cur/%s", name);
		/* never over another file: the name is new, or skip */
		if (renameat2(folder_fd, local, folder_fd, target,
			      RENAME_NOREPLACE) < 0) {
			obox_log(OBOX_LOG_WARNING, "split brain: rename(%s, %s) "
				 "failed: %s\n", local, target,
				 strerror(errno));
			continue;
		}
		dirs[local[0] == 'c' ? 0 : 1] = true;
		dirs[0] = true;
		renamed++;
	}
	free(index);
	return renamed;
}
