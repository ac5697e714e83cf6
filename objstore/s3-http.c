/* s3-http.c: libcurl plumbing for the S3 backend.  Up to max_connections
 * requests run at once (callers beyond that wait); idle easy handles are kept
 * in a pool so their connections are reused, and a CURLSH shares the DNS
 * cache and TLS sessions between them.  Safe to call from many threads. */
#include "s3-http.h"
#include "s3-private.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S3_HTTP_BODY_MAX (64 * 1024 * 1024)
#define S3_HTTP_HEADERS_MAX 200
#define SMALL_BODY_MAX (1024 * 1024)

struct s3_http {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int max_connections, busy;
	CURL **idle;
	unsigned int idle_count;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

struct transfer {
	const struct s3_http_request *req;
	struct s3_http_response *resp;
	CURL *curl;
	uint64_t read_offset;
	uint64_t skipped, kept;
	size_t body_alloc;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_result;

static void curl_global_once(void)
{
	curl_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *handle, curl_lock_data data,
		       curl_lock_access access, void *context)
{
	struct s3_http *http = context;

	(void)handle; (void)access;
	pthread_mutex_lock(&http->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *context)
{
	struct s3_http *http = context;

	(void)handle;
	pthread_mutex_unlock(&http->share_locks[data]);
}

int s3_http_init(unsigned int max_connections, struct s3_http **http_r,
		 const char **error_r)
{
	struct s3_http *http;

	*http_r = NULL;
	pthread_once(&curl_once, curl_global_once);
	if (curl_global_result != CURLE_OK) {
		*error_r = "curl_global_init() failed";
		return -1;
	}
	http = calloc(1, sizeof(*http));
	if (http == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	http->max_connections = max_connections;
	http->idle = calloc(max_connections, sizeof(*http->idle));
	http->share = curl_share_init();
	if (http->idle == NULL || http->share == NULL) {
		free(http->idle);
		if (http->share != NULL)
			curl_share_cleanup(http->share);
		free(http);
		*error_r = "out of memory";
		return -1;
	}
	pthread_mutex_init(&http->lock, NULL);
	pthread_cond_init(&http->cond, NULL);
	for (unsigned int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&http->share_locks[i], NULL);
	curl_share_setopt(http->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(http->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(http->share, CURLSHOPT_USERDATA, http);
	curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(http->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	*http_r = http;
	return 0;
}

void s3_http_deinit(struct s3_http **_http)
{
	struct s3_http *http = *_http;

	if (http == NULL)
		return;
	*_http = NULL;
	for (unsigned int i = 0; i < http->idle_count; i++)
		curl_easy_cleanup(http->idle[i]);
	free(http->idle);
	curl_share_cleanup(http->share);
	for (unsigned int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&http->share_locks[i]);
	pthread_cond_destroy(&http->cond);
	pthread_mutex_destroy(&http->lock);
	free(http);
}

/* wait for a free slot; reuse an idle handle if there is one */
static CURL *handle_get(struct s3_http *http)
{
	CURL *curl = NULL;

	pthread_mutex_lock(&http->lock);
	while (http->busy >= http->max_connections)
		pthread_cond_wait(&http->cond, &http->lock);
	http->busy++;
	if (http->idle_count > 0)
		curl = http->idle[--http->idle_count];
	pthread_mutex_unlock(&http->lock);
	if (curl == NULL)
		curl = curl_easy_init();
	else
		curl_easy_reset(curl);
	if (curl == NULL) {
		pthread_mutex_lock(&http->lock);
		http->busy--;
		pthread_cond_signal(&http->cond);
		pthread_mutex_unlock(&http->lock);
	}
	return curl;
}

static void handle_put(struct s3_http *http, CURL *curl, bool keep)
{
	pthread_mutex_lock(&http->lock);
	if (keep && http->idle_count < http->max_connections) {
		http->idle[http->idle_count++] = curl;
		curl = NULL;
	}
	http->busy--;
	pthread_cond_signal(&http->cond);
	pthread_mutex_unlock(&http->lock);
	if (curl != NULL)
		curl_easy_cleanup(curl);
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *context)
{
	struct transfer *t = context;
	const struct objstore_source *src = t->req->body;
	size_t want = size * nitems;
	uint64_t left = src->size - t->read_offset;
	ssize_t ret;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (src->data != NULL) {
		memcpy(buf, (const unsigned char *)src->data + t->read_offset,
		       want);
		ret = (ssize_t)want;
	} else {
		do {
			ret = pread(src->fd, buf, want,
				    (off_t)t->read_offset);
		} while (ret < 0 && errno == EINTR);
		if (ret <= 0) {
			t->resp->body_read_failed = true;
			t->resp->body_read_errno = ret < 0 ? errno : EIO;
			return CURL_READFUNC_ABORT;
		}
	}
	t->read_offset += (uint64_t)ret;
	t->resp->bytes_out += (uint64_t)ret;
	return (size_t)ret;
}

static int seek_cb(void *context, curl_off_t offset, int origin)
{
	struct transfer *t = context;

	if (origin != SEEK_SET || offset < 0 ||
	    (uint64_t)offset > t->req->body->size)
		return CURL_SEEKFUNC_CANTSEEK;
	t->read_offset = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t write_body(struct transfer *t, const char *data, size_t size)
{
	struct s3_http_response *resp = t->resp;

	if (resp->body_size + size > S3_HTTP_BODY_MAX)
		return 0;
	if (resp->body_size + size + 1 > t->body_alloc) {
		size_t alloc = t->body_alloc == 0 ? 4096 : t->body_alloc;
		char *body;

		while (alloc < resp->body_size + size + 1)
			alloc *= 2;
		body = realloc(resp->body, alloc);
		if (body == NULL)
			return 0;
		resp->body = body;
		t->body_alloc = alloc;
	}
	memcpy(resp->body + resp->body_size, data, size);
	resp->body_size += size;
	resp->body[resp->body_size] = '\0';
	return size;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *context)
{
	struct transfer *t = context;
	size_t total = size * nmemb, n = total;
	long status = 0;

	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
	t->resp->bytes_in += total;
	if (t->req->sink == NULL || status < 200 || status > 299)
		return write_body(t, data, total);

	if (status == 200 && (t->req->range_skip > 0 ||
			      t->req->range_length != UINT64_MAX)) {
		/* the server ignored our Range: cut it out ourselves */
		if (t->skipped < t->req->range_skip) {
			uint64_t skip = t->req->range_skip - t->skipped;

			if (skip > n)
				skip = n;
			t->skipped += skip;
			data += skip;
			n -= (size_t)skip;
		}
		if (t->kept + n > t->req->range_length)
			n = (size_t)(t->req->range_length - t->kept);
		t->kept += n;
	}
	if (n > 0 && objstore_sink_write(t->req->sink, data, n) < 0) {
		t->resp->sink_failed = true;
		return 0;
	}
	return total;
}

int s3_http_response_add_header(struct s3_http_response *resp,
				const char *data, size_t len)
{
	struct s3_http_header *hdrs, *h;
	const char *colon, *value;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new status line (100-continue, redirect): forget the
		   previous headers */
		for (unsigned int i = 0; i < resp->header_count; i++) {
			free(resp->headers[i].name);
			free(resp->headers[i].value);
		}
		resp->header_count = 0;
		return 0;
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	colon = memchr(data, ':', len);
	if (colon == NULL || colon == data)
		return 0;
	if (resp->header_count >= S3_HTTP_HEADERS_MAX)
		return 0;
	hdrs = realloc(resp->headers, (resp->header_count + 1) *
		       sizeof(*hdrs));
	if (hdrs == NULL)
		return -1;
	resp->headers = hdrs;
	h = &hdrs[resp->header_count];
	value = colon + 1;
	while (value < data + len && (*value == ' ' || *value == '\t'))
		value++;
	size_t vlen = (size_t)(data + len - value);

	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		vlen--;
	h->name = strndup(data, (size_t)(colon - data));
	h->value = strndup(value, vlen);
	if (h->name == NULL || h->value == NULL) {
		free(h->name);
		free(h->value);
		return -1;
	}
	for (char *p = h->name; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	resp->header_count++;
	return 0;
}

static size_t header_cb(char *data, size_t size, size_t nitems,
			void *context)
{
	struct transfer *t = context;
	size_t total = size * nitems;

	return s3_http_response_add_header(t->resp, data, total) < 0 ?
		0 : total;
}

const char *s3_http_response_header(const struct s3_http_response *resp,
				    const char *name)
{
	for (unsigned int i = 0; i < resp->header_count; i++) {
		if (strcmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	}
	return NULL;
}

void s3_http_response_free(struct s3_http_response *resp)
{
	for (unsigned int i = 0; i < resp->header_count; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	free(resp->headers);
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

int s3_http_perform(struct s3_http *http, const struct s3_http_request *req,
		    struct s3_http_response *resp_r)
{
	struct transfer t;
	CURL *curl;
	long low_speed_time;
	bool keep;

	memset(resp_r, 0, sizeof(*resp_r));
	memset(&t, 0, sizeof(t));
	t.req = req;
	t.resp = resp_r;
	curl = handle_get(http);
	if (curl == NULL) {
		resp_r->curl_code = CURLE_OUT_OF_MEMORY;
		strcpy(resp_r->curl_error, "curl_easy_init() failed");
		return -1;
	}
	t.curl = curl;
	curl_easy_setopt(curl, CURLOPT_URL, req->url);
	curl_easy_setopt(curl, CURLOPT_SHARE, http->share);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, resp_r->curl_error);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
			 req->connect_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	/* abort a transfer that stalls (below 1 byte/s) well before the
	   total timeout when the total is long */
	low_speed_time = req->timeout_ms / 2000;
	if (low_speed_time < 1)
		low_speed_time = 1;
	if (low_speed_time > 30)
		low_speed_time = 30;
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, low_speed_time);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	if (req->tls_insecure) {
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (req->ca_file != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);

	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->method, "PUT") == 0 ||
		   strcmp(req->method, "POST") == 0) {
		uint64_t size = req->body != NULL ? req->body->size : 0;

		if (req->body != NULL && req->body->data != NULL &&
		    size <= SMALL_BODY_MAX) {
			/* small memory bodies go out with the headers in one
			   write: a separate body packet costs a delayed-ACK
			   round trip on some servers */
			curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)size);
			curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
					 req->body->data);
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST,
					 req->method);
			resp_r->bytes_out += size;
		} else if (req->body != NULL) {
			curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
			curl_easy_setopt(curl, CURLOPT_READDATA, &t);
			curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, seek_cb);
			curl_easy_setopt(curl, CURLOPT_SEEKDATA, &t);
		}
		if (req->body != NULL && req->body->data != NULL &&
		    size <= SMALL_BODY_MAX) {
			/* set above */
		} else if (strcmp(req->method, "PUT") == 0) {
			curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)size);
		} else {
			curl_easy_setopt(curl, CURLOPT_POST, 1L);
			curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)size);
		}
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
	}

	resp_r->curl_code = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp_r->status);
	if (resp_r->curl_code != CURLE_OK && resp_r->curl_error[0] == '\0') {
		strncpy(resp_r->curl_error,
			curl_easy_strerror(resp_r->curl_code),
			sizeof(resp_r->curl_error) - 1);
	}
	/* don't leave the handle pointing at our stack */
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	keep = resp_r->curl_code == CURLE_OK;
	handle_put(http, curl, keep);
	return resp_r->curl_code == CURLE_OK ? 0 : -1;
}
