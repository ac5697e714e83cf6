/* touched.c: the changed files of a user's tree (see touched.h). */
#include "touched.h"

#include <stdlib.h>
#include <string.h>

#define TOUCHED_MIN_SIZE 64

void touched_init(struct touched *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
}

void touched_deinit(struct touched *t)
{
	free(t->inos);
	free(t->gens);
	pthread_mutex_destroy(&t->lock);
}

static size_t slot_of(uint64_t ino, size_t size)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 17) & (size - 1);
}

/* the slot of ino, or of the empty slot where it would go */
static size_t find_slot(const uint64_t *inos, size_t size, uint64_t ino)
{
	size_t s = slot_of(ino, size);

	while (inos[s] != 0 && inos[s] != ino)
		s = (s + 1) & (size - 1);
	return s;
}

/* rebuild with room for count entries, keeping those after min_gen */
static bool rebuild(struct touched *t, size_t count, uint64_t min_gen)
{
	size_t size = TOUCHED_MIN_SIZE;
	uint64_t *inos, *gens;

	while (size < count * 2)
		size *= 2;
	inos = calloc(size, sizeof(*inos));
	gens = calloc(size, sizeof(*gens));
	if (inos == NULL || gens == NULL) {
		free(inos);
		free(gens);
		return false;
	}
	t->count = 0;
	for (size_t i = 0; i < t->size; i++) {
		if (t->inos[i] == 0 || t->gens[i] <= min_gen)
			continue;
		size_t s = find_slot(inos, size, t->inos[i]);

		inos[s] = t->inos[i];
		gens[s] = t->gens[i];
		t->count++;
	}
	free(t->inos);
	free(t->gens);
	t->inos = inos;
	t->gens = gens;
	t->size = size;
	return true;
}

void touched_note(struct touched *t, uint64_t ino, uint64_t gen)
{
	size_t s;

	if (ino == 0)
		return;
	pthread_mutex_lock(&t->lock);
	if (!t->overflow && (t->count + 1) * 2 > t->size &&
	    !rebuild(t, t->count + 1, 0)) {
		t->overflow = true;
		t->overflow_gen = gen;
	}
	if (!t->overflow) {
		s = find_slot(t->inos, t->size, ino);
		if (t->inos[s] == 0) {
			t->inos[s] = ino;
			t->count++;
		}
		if (t->gens[s] < gen)
			t->gens[s] = gen;
	} else if (t->overflow_gen < gen) {
		t->overflow_gen = gen;
	}
	pthread_mutex_unlock(&t->lock);
}

bool touched_since(struct touched *t, uint64_t ino, uint64_t gen)
{
	bool ret = true;
	size_t s;

	pthread_mutex_lock(&t->lock);
	if (!t->overflow) {
		ret = false;
		if (t->size > 0) {
			s = find_slot(t->inos, t->size, ino);
			ret = t->inos[s] == ino && t->gens[s] > gen;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void touched_prune(struct touched *t, uint64_t gen)
{
	size_t keep = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->size; i++)
		keep += t->inos[i] != 0 && t->gens[i] > gen;
	if (rebuild(t, keep, gen) && gen >= t->overflow_gen)
		t->overflow = false;
	pthread_mutex_unlock(&t->lock);
}

size_t touched_count(struct touched *t)
{
	size_t count;

	pthread_mutex_lock(&t->lock);
	count = t->count;
	pthread_mutex_unlock(&t->lock);
	return count;
}
