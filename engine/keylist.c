/* keylist.c: a growable array of store keys (see keylist.h). */
#include "keylist.h"

#include <stdlib.h>
#include <string.h>

int keylist_push(struct keylist *list, char *key)
{
	if (list->count == list->alloc) {
		size_t alloc = list->alloc == 0 ? 64 : list->alloc * 2;
		char **keys = realloc(list->keys, alloc * sizeof(*keys));

		if (keys == NULL)
			return -1;
		list->keys = keys;
		list->alloc = alloc;
	}
	list->keys[list->count++] = key;
	return 0;
}

int keylist_add(struct keylist *list, const char *key)
{
	char *copy = strdup(key);

	if (copy == NULL || keylist_push(list, copy) < 0) {
		free(copy);
		return -1;
	}
	return 0;
}

bool keylist_has(const struct keylist *list, const char *key)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->keys[i], key) == 0)
			return true;
	}
	return false;
}

static int key_cmp(const void *p1, const void *p2)
{
	const char *const *a = p1, *const *b = p2;

	return strcmp(*a, *b);
}

void keylist_sort(struct keylist *list)
{
	if (list->count > 1)
		qsort(list->keys, list->count, sizeof(*list->keys), key_cmp);
}

bool keylist_sorted_has(const struct keylist *list, const char *key)
{
	return list->count > 0 &&
		bsearch(&key, list->keys, list->count, sizeof(*list->keys),
			key_cmp) != NULL;
}

void keylist_clear(struct keylist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->keys[i]);
	free(list->keys);
	memset(list, 0, sizeof(*list));
}
