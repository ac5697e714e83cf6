/* objstore-fault.c: a pass-through layer that injects failures and latency
 * into the store it wraps (store->parent), for tests; modelled on Dovecot's
 * fs-randomfail.  Configured by a spec string (settings->fault):
 *
 *   ops=put,get|all;error=transient;rate=0.3;latency_ms=20;fail_after=5;
 *   seed=42;when=before
 *
 * ops: which operations are affected (put,get,head,list,delete,copy or all;
 *      default all), separated by ',' or '+' (a mount option cannot hold
 *      a bare comma: -o fault=ops=put+get).
 * error: the error injected: transient|throttled|auth|permanent|notfound
 *      (default transient).
 * rate: probability 0..1 that an affected operation fails (default 1).
 * fail_after: the first N affected operations succeed (default 0).
 * latency_ms: delay added to every affected operation (default 0).
 * seed: seed of the random sequence (default: from the clock).
 * when: before = fail without calling the wrapped store; after = let the
 *      wrapped store do the operation, then report failure anyway (like a
 *      reply lost on the network).  Default before.
 */
#include "objstore-private.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fault_store {
	struct objstore store;
	unsigned int ops_mask;
	enum objstore_error error;
	double rate;
	unsigned int latency_ms;
	uint64_t fail_after;
	bool after;

	pthread_mutex_t lock;
	uint64_t rng_state;
	uint64_t matched;
};

static const char *const op_keys[OBJSTORE_OP_COUNT] = {
	[OBJSTORE_OP_PUT] = "put",
	[OBJSTORE_OP_GET] = "get",
	[OBJSTORE_OP_HEAD] = "head",
	[OBJSTORE_OP_LIST] = "list",
	[OBJSTORE_OP_DELETE] = "delete",
	[OBJSTORE_OP_COPY] = "copy",
};

static const struct {
	const char *name;
	enum objstore_error error;
} error_keys[] = {
	{ "transient", OBJSTORE_ERR_TRANSIENT },
	{ "throttled", OBJSTORE_ERR_THROTTLED },
	{ "auth", OBJSTORE_ERR_AUTH },
	{ "permanent", OBJSTORE_ERR_PERMANENT },
	{ "notfound", OBJSTORE_ERR_NOT_FOUND },
};

/* splitmix64: small, fast and the same everywhere for a given seed */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int parse_uint64(const char *str, uint64_t max, uint64_t *num_r)
{
	char *end;

	if (str[0] < '0' || str[0] > '9')
		return -1;
	errno = 0;
	unsigned long long num = strtoull(str, &end, 10);

	if (errno != 0 || *end != '\0' || num > max)
		return -1;
	*num_r = num;
	return 0;
}

static int parse_ops(struct fault_store *fs, char *value)
{
	char *save = NULL, *op;

	fs->ops_mask = 0;
	for (op = strtok_r(value, ",+", &save); op != NULL;
	     op = strtok_r(NULL, ",+", &save)) {
		unsigned int i;

		if (strcmp(op, "all") == 0) {
			fs->ops_mask = (1U << OBJSTORE_OP_COUNT) - 1;
			continue;
		}
		for (i = 0; i < OBJSTORE_OP_COUNT; i++) {
			if (strcmp(op, op_keys[i]) == 0)
				break;
		}
		if (i == OBJSTORE_OP_COUNT)
			return -1;
		fs->ops_mask |= 1U << i;
	}
	return fs->ops_mask == 0 ? -1 : 0;
}

static int parse_param(struct fault_store *fs, const char *key, char *value,
		       bool *seeded)
{
	uint64_t num;
	char *end;

	if (strcmp(key, "ops") == 0)
		return parse_ops(fs, value);
	if (strcmp(key, "error") == 0) {
		for (unsigned int i = 0; i < sizeof(error_keys) /
			     sizeof(error_keys[0]); i++) {
			if (strcmp(value, error_keys[i].name) == 0) {
				fs->error = error_keys[i].error;
				return 0;
			}
		}
		return -1;
	}
	if (strcmp(key, "rate") == 0) {
		if ((value[0] < '0' || value[0] > '9') && value[0] != '.')
			return -1;
		errno = 0;
		fs->rate = strtod(value, &end);
		return errno != 0 || *end != '\0' || !(fs->rate >= 0.0) ||
			fs->rate > 1.0 ? -1 : 0;
	}
	if (strcmp(key, "latency_ms") == 0) {
		if (parse_uint64(value, 3600 * 1000, &num) < 0)
			return -1;
		fs->latency_ms = (unsigned int)num;
		return 0;
	}
	if (strcmp(key, "fail_after") == 0)
		return parse_uint64(value, UINT64_MAX, &fs->fail_after);
	if (strcmp(key, "seed") == 0) {
		*seeded = true;
		return parse_uint64(value, UINT64_MAX, &fs->rng_state);
	}
	if (strcmp(key, "when") == 0) {
		if (strcmp(value, "before") == 0)
			fs->after = false;
		else if (strcmp(value, "after") == 0)
			fs->after = true;
		else
			return -1;
		return 0;
	}
	return -2;
}

static int fault_parse(struct fault_store *fs, const char *spec,
		       const char **error_r)
{
	static _Thread_local char errbuf[512];
	char *copy, *save = NULL, *param;
	bool seeded = false;
	int ret = 0;

	if ((copy = strdup(spec)) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	for (param = strtok_r(copy, ";", &save); param != NULL && ret == 0;
	     param = strtok_r(NULL, ";", &save)) {
		char *value = strchr(param, '=');

		if (value == NULL) {
			snprintf(errbuf, sizeof(errbuf), "invalid fault spec "
				 "'%.200s': '%.100s' is not key=value",
				 spec, param);
			ret = -1;
			break;
		}
		*value++ = '\0';
		ret = parse_param(fs, param, value, &seeded);
		if (ret == -2) {
			snprintf(errbuf, sizeof(errbuf), "invalid fault spec "
				 "'%.200s': unknown key '%.100s'", spec, param);
		} else if (ret < 0) {
			snprintf(errbuf, sizeof(errbuf), "invalid fault spec "
				 "'%.200s': bad value for '%.100s'", spec,
				 param);
		}
	}
	free(copy);
	if (ret < 0) {
		*error_r = errbuf;
		return -1;
	}
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		fs->rng_state = (uint64_t)ts.tv_sec * 1000000000ULL +
			(uint64_t)ts.tv_nsec;
	}
	return 0;
}

/* Apply latency and decide whether this operation fails.  Returns true if
   the failure is to be injected. */
static bool fault_decide(struct fault_store *fs, enum objstore_op op)
{
	bool fail = false;

	if ((fs->ops_mask & (1U << op)) == 0)
		return false;
	if (fs->latency_ms > 0) {
		struct timespec ts = {
			.tv_sec = fs->latency_ms / 1000,
			.tv_nsec = (long)(fs->latency_ms % 1000) * 1000000L,
		};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR) ;
	}
	pthread_mutex_lock(&fs->lock);
	if (++fs->matched > fs->fail_after) {
		/* 53 random bits -> [0, 1) */
		double r = (double)(rng_next(&fs->rng_state) >> 11) /
			(double)(1ULL << 53);

		fail = r < fs->rate;
	}
	pthread_mutex_unlock(&fs->lock);
	return fail;
}

static int fault_inject(struct fault_store *fs, enum objstore_op op,
			const char *key)
{
	return objstore_set_error(fs->error, "%s(%s) failed: injected %s "
				  "error (fault injection%s)",
				  objstore_op_name(op), key,
				  objstore_error_name(fs->error),
				  fs->after ? ", after the operation" : "");
}

/* run before the parent call: returns -1 if the failure is injected now,
   1 if it is to be injected after the call, 0 if no failure */
static int fault_begin(struct objstore *store, enum objstore_op op,
		       const char *key)
{
	struct fault_store *fs = (struct fault_store *)store;

	if (!fault_decide(fs, op))
		return 0;
	if (!fs->after)
		return fault_inject(fs, op, key);
	return 1;
}

static int fault_end(struct objstore *store, int state, int ret,
		     enum objstore_op op, const char *key)
{
	if (state == 1 && ret == 0)
		return fault_inject((struct fault_store *)store, op, key);
	return ret;
}

#define FAULT_CALL(op, key, call) do { \
	int state_ = fault_begin(store, op, key); \
	if (state_ < 0) \
		return -1; \
	return fault_end(store, state_, (call), op, key); \
} while (0)

static int fault_put(struct objstore *store, const char *key,
		     const struct objstore_source *src,
		     const struct objstore_meta *meta, unsigned int meta_count)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_PUT, key,
		   p->class->v.put(p, key, src, meta, meta_count));
}

static int fault_get(struct objstore *store, const char *key, uint64_t offset,
		     uint64_t length, struct objstore_sink *sink)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_GET, key,
		   p->class->v.get(p, key, offset, length, sink));
}

static int fault_head(struct objstore *store, const char *key,
		      struct objstore_stat *stat_r)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_HEAD, key, p->class->v.head(p, key, stat_r));
}

static int fault_list(struct objstore *store, const char *prefix,
		      const char *delimiter, const char *start_after,
		      unsigned int first_page_keys,
		      objstore_list_cb *callback, void *context)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_LIST, prefix,
		   p->class->v.list(p, prefix, delimiter, start_after,
				    first_page_keys, callback, context));
}

static int fault_delete(struct objstore *store, const char *key)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_DELETE, key, p->class->v.delete_key(p, key));
}

static int parent_delete_many(struct objstore *p, const char *const *keys,
			      unsigned int count)
{
	if (p->class->v.delete_many != NULL)
		return p->class->v.delete_many(p, keys, count);
	for (unsigned int i = 0; i < count; i++) {
		if (p->class->v.delete_key(p, keys[i]) < 0)
			return -1;
	}
	return 0;
}

/* one decision per call, like one batch request */
static int fault_delete_many(struct objstore *store, const char *const *keys,
			     unsigned int count)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_DELETE, keys[0],
		   parent_delete_many(p, keys, count));
}

static int fault_copy(struct objstore *store, const char *src_key,
		      const char *dst_key)
{
	struct objstore *p = store->parent;

	FAULT_CALL(OBJSTORE_OP_COPY, dst_key,
		   p->class->v.copy(p, src_key, dst_key));
}

static struct objstore *fault_alloc(void)
{
	struct fault_store *fs = calloc(1, sizeof(*fs));

	if (fs == NULL)
		return NULL;
	pthread_mutex_init(&fs->lock, NULL);
	fs->ops_mask = (1U << OBJSTORE_OP_COUNT) - 1;
	fs->error = OBJSTORE_ERR_TRANSIENT;
	fs->rate = 1.0;
	return &fs->store;
}

static int fault_init(struct objstore *store, const char *location,
		      const struct objstore_settings *set, const char **error_r)
{
	struct fault_store *fs = (struct fault_store *)store;

	(void)set;
	if (store->parent == NULL) {
		*error_r = "fault injection layer without a store to wrap";
		return -1;
	}
	return fault_parse(fs, location, error_r);
}

static void fault_deinit(struct objstore *store)
{
	struct fault_store *fs = (struct fault_store *)store;

	pthread_mutex_destroy(&fs->lock);
	free(fs);
}

const struct objstore_class objstore_class_fault = {
	.name = "fault",
	.alloc = fault_alloc,
	.init = fault_init,
	.deinit = fault_deinit,
	.v = {
		.put = fault_put,
		.get = fault_get,
		.head = fault_head,
		.list = fault_list,
		.delete_key = fault_delete,
		.delete_many = fault_delete_many,
		.copy = fault_copy,
	},
};
