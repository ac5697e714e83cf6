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

void keylist_clear(struct keylist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->keys[i]);
	free(list->keys);
	memset(list, 0, sizeof(*list));
}
