/* keylist.h: a growable array of malloc()ed store keys (objgc's pending
 * and condemned keys, the split-brain check's listings). */
#ifndef OBOXFS_KEYLIST_H
#define OBOXFS_KEYLIST_H

#include <stdbool.h>
#include <stddef.h>

struct keylist {
	char **keys;
	size_t count, alloc;
};

/* Append key, taking it (freed by keylist_clear()).  Returns 0, or -1 when
   out of memory (key is then not taken). */
int keylist_push(struct keylist *list, char *key);
/* Append a copy of key.  Returns 0 or -1 (out of memory). */
int keylist_add(struct keylist *list, const char *key);
/* Linear search. */
bool keylist_has(const struct keylist *list, const char *key);
/* Sort by byte order, for keylist_sorted_has(): a binary search. */
void keylist_sort(struct keylist *list);
bool keylist_sorted_has(const struct keylist *list, const char *key);
/* Free every key and the array; the list is empty again. */
void keylist_clear(struct keylist *list);

#endif
