/* objstore-bench.c: PUT/GET latency and throughput of one object store.
 *
 *   objstore-bench [--endpoint E] [--region R] [--credentials F]
 *                  [--threads N] [--count N] [--sizes 1024,102400] URL
 *
 * For each size, N threads PUT then GET --count objects in total (under a
 * fresh prefix), then the objects are deleted.  Prints median and p90
 * latency, requests/s and MB/s per operation.  A benchmark, run by hand (see
 * bench/README.md); not a test.
 */
#include "objstore.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct bench {
	struct objstore *store;
	char prefix[64];
	size_t size;
	unsigned int count;
	unsigned char *payload;
	double *latency_ms;	/* one per object */
	_Atomic unsigned int next;
	_Atomic unsigned int failures;
	bool get;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void *worker(void *context)
{
	struct bench *b = context;
	unsigned int i;
	char key[128];

	while ((i = atomic_fetch_add(&b->next, 1)) < b->count) {
		double start = now_ms();
		int ret;

		snprintf(key, sizeof(key), "%s/obj-%06u", b->prefix, i);
		if (b->get) {
			void *data;
			size_t size;

			ret = objstore_get(b->store, key, 0, OBJSTORE_TO_END,
					   b->size, &data, &size);
			if (ret == 0 && size != b->size)
				ret = -1;
			free(data);
		} else {
			ret = objstore_put(b->store, key, b->payload, b->size,
					   NULL, 0);
		}
		if (ret < 0) {
			fprintf(stderr, "%s\n", objstore_error());
			atomic_fetch_add(&b->failures, 1);
		}
		b->latency_ms[i] = now_ms() - start;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_phase(struct bench *b, unsigned int threads, const char *what)
{
	pthread_t tids[threads];
	double start, elapsed;

	atomic_store(&b->next, 0);
	atomic_store(&b->failures, 0);
	start = now_ms();
	for (unsigned int t = 0; t < threads; t++)
		pthread_create(&tids[t], NULL, worker, b);
	for (unsigned int t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	elapsed = now_ms() - start;
	qsort(b->latency_ms, b->count, sizeof(double), cmp_double);
	printf("%-4s %8zu B  %6u  %9.2f  %9.2f  %9.1f  %8.2f\n", what, b->size,
	       b->count, b->latency_ms[b->count / 2],
	       b->latency_ms[b->count * 9 / 10], b->count * 1000.0 / elapsed,
	       b->count * (double)b->size / 1048576.0 / (elapsed / 1000.0));
	return atomic_load(&b->failures) == 0 ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: objstore-bench [--endpoint E] [--region R] "
		"[--credentials F] [--threads N] [--count N] "
		"[--sizes S1,S2,...] URL\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "region", required_argument, NULL, 'r' },
		{ "credentials", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "sizes", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	struct objstore_settings set = { .no_fsync = false };
	unsigned int threads = 8, count = 200;
	char sizes_buf[256] = "1024,102400";
	const char *error;
	struct objstore *store;
	unsigned char rnd[8];
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e': set.endpoint = optarg; break;
		case 'r': set.region = optarg; break;
		case 'c': set.credentials_file = optarg; break;
		case 't': threads = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'n': count = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 's': snprintf(sizes_buf, sizeof(sizes_buf), "%s", optarg); break;
		default: usage();
		}
	}
	if (optind + 1 != argc || threads == 0 || threads > 256 || count == 0)
		usage();
	if (objstore_init(argv[optind], &set, &store, &error) < 0) {
		fprintf(stderr, "objstore-bench: %s\n", error);
		return 1;
	}

	printf("# %s, %u threads\n", argv[optind], threads);
	printf("%-4s %10s  %6s  %9s  %9s  %9s  %8s\n", "op", "size", "count",
	       "median_ms", "p90_ms", "req/s", "MB/s");
	for (char *tok = strtok(sizes_buf, ","); tok != NULL;
	     tok = strtok(NULL, ",")) {
		struct bench b = { .store = store, .count = count };
		const char **keys;

		b.size = strtoul(tok, NULL, 10);
		b.payload = malloc(b.size + 1);
		b.latency_ms = calloc(count, sizeof(double));
		keys = calloc(count, sizeof(*keys));
		if (b.payload == NULL || b.latency_ms == NULL || keys == NULL)
			return 1;
		if (getrandom(b.payload, b.size, 0) < 0 ||
		    getrandom(rnd, sizeof(rnd), 0) < 0)
			memset(b.payload, 'x', b.size);
		snprintf(b.prefix, sizeof(b.prefix),
			 "bench-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
			 rnd[2], rnd[3], rnd[4], rnd[5]);
		if (run_phase(&b, threads, "PUT") < 0)
			ret = 1;
		b.get = true;
		if (run_phase(&b, threads, "GET") < 0)
			ret = 1;
		for (unsigned int i = 0; i < count; i++) {
			char *key;

			if (asprintf(&key, "%s/obj-%06u", b.prefix, i) < 0)
				return 1;
			keys[i] = key;
		}
		if (objstore_delete_many(store, keys, count) < 0) {
			fprintf(stderr, "cleanup: %s\n", objstore_error());
			ret = 1;
		}
		for (unsigned int i = 0; i < count; i++)
			free((char *)keys[i]);
		free(keys);
		free(b.payload);
		free(b.latency_ms);
	}
	objstore_deinit(&store);
	return ret;
}
