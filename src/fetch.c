/* SPDX-License-Identifier: MIT */
/*
 * fetch: remote media for inlining; see fetch.h. One easy handle per
 * fetch: these are rare (a client that sends image URLs to a provider
 * that only takes inline data) and must not share the provider pool.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "fetch.h"
#include "util.h"

struct fetch_state {
	const struct fetch_opts *opts;
	struct buf *data;
	bool too_large;
	bool refused;
};

static bool private_v4(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
	       (a >> 16) == 0xa9fe ||           /* 169.254/16 link-local */
	       (a >> 20) == 0xac1 ||            /* 172.16/12 */
	       (a >> 16) == 0xc0a8 ||           /* 192.168/16 */
	       (a >> 22) == (0x64400000u >> 22) || /* 100.64/10 CGNAT */
	       (a >> 28) >= 0xe;                /* multicast, reserved */
}

static bool private_addr(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		return private_v4(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		const unsigned char *b = in6->sin6_addr.s6_addr;
		uint32_t v4;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(&v4, b + 12, 4);
			return private_v4(ntohl(v4));
		}
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		       IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ||
		       IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr) ||
		       IN6_IS_ADDR_MULTICAST(&in6->sin6_addr) ||
		       (b[0] & 0xfe) == 0xfc; /* fc00::/7 unique local */
	}
	return true;
}

/* Decide on the address curl is about to connect to (after DNS). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose,
				 struct curl_sockaddr *a)
{
	struct fetch_state *st = ud;

	(void)purpose;
	if (!st->opts->allow_private && private_addr(&a->addr)) {
		st->refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct fetch_state *st = ud;

	if (buf_append(st->data, p, size * n) < 0) {
		st->too_large = true;
		return 0;
	}
	return size * n;
}

int fetch_media(void *ud, const char *url, struct buf *data, char *mime,
		size_t mimelen, struct api_error *err)
{
	const struct fetch_opts *opts = ud;
	struct fetch_state st = { .opts = opts, .data = data };
	CURL *c;
	CURLcode rc;
	long status = 0;
	char *ctype = NULL;
	int ret = -1;

	mime[0] = '\0';
	if (!has_prefix_ci(url, "http://") && !has_prefix_ci(url, "https://")) {
		apierr_set(err, 400, "invalid_request_error", "invalid_image_url",
			   "messages", "image_url must be an http(s) or data: URL");
		return -1;
	}
	buf_free(data);
	buf_init(data, opts->max_bytes);
	c = curl_easy_init();
	if (!c) {
		apierr_set(err, 500, "server_error", NULL, NULL,
			   "cannot start an image download");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, opts->timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)opts->max_bytes);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &st);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "llm-bridge/" PACKAGE_VERSION);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	if (st.refused) {
		apierr_set(err, 400, "invalid_request_error", "image_url_refused",
			   "messages", "image_url points to a private or "
			   "loopback address, which this gateway does not fetch");
	} else if (st.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		apierr_set(err, 400, "invalid_request_error", "image_too_large",
			   "messages", "the image at image_url is larger than "
			   "%zu bytes", opts->max_bytes);
	} else if (rc != CURLE_OK || status < 200 || status > 299) {
		apierr_set(err, 400, "invalid_request_error",
			   "image_url_unreachable", "messages",
			   "cannot download image_url (%s)",
			   rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error");
	} else if (!ctype || (!has_prefix_ci(ctype, "image/") &&
			      !has_prefix_ci(ctype, "application/pdf") &&
			      !has_prefix_ci(ctype, "audio/"))) {
		apierr_set(err, 400, "invalid_request_error", "invalid_image_url",
			   "messages", "image_url did not return an image");
	} else {
		size_t n = strcspn(ctype, "; ");
		snprintf(mime, mimelen, "%.*s", (int)n, ctype);
		ret = 0;
	}
	curl_easy_cleanup(c);
	return ret;
}
