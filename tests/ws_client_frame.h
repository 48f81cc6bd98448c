/* SPDX-License-Identifier: MIT */
/*
 * A WebSocket frame as a client sends it (RFC 6455, 5.2): FIN, the
 * opcode, the payload length in its shortest form, the masking key and
 * the masked payload. Shared by the benchmark clients (tests/bench) and
 * the soak driver (tests/soak), which build no daemon code.
 */
#ifndef LB_TESTS_WS_CLIENT_FRAME_H
#define LB_TESTS_WS_CLIENT_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The most a frame adds to its payload. */
#define WS_CLIENT_FRAME_HEAD_MAX 14

/* Frame p[0..n) into out, which holds n + WS_CLIENT_FRAME_HEAD_MAX bytes;
 * returns the frame's length. */
static inline size_t ws_client_frame(unsigned char *out, int opcode,
				     const char *p, size_t n,
				     const unsigned char mask[4])
{
	size_t h = 0;

	out[h++] = (unsigned char)(0x80 | opcode);
	if (n < 126) {
		out[h++] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		out[h++] = 0x80 | 126;
		out[h++] = (unsigned char)(n >> 8);
		out[h++] = (unsigned char)n;
	} else {
		out[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			out[h++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	memcpy(out + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		out[h + i] = (unsigned char)p[i] ^ mask[i % 4];
	return h + n;
}

#endif
