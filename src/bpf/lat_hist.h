/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: log-linear latency histogram buckets, shared by the BPF probes (which fill them)
 * and userspace (which turns them into percentiles); compiled into the host tests too.
 *
 * Values are in microseconds. Bucket 0 holds < 1 us. Then each power of two [2^k, 2^(k+1))
 * us, k = 0..23, is split into 4 equal sub-buckets (exact below 4 us, where fewer distinct
 * values exist), so a bucket is at most 1/4 of its lower bound wide: estimating a value by
 * its bucket's midpoint is off by at most 12.5%. 2^24 us (~16.8 s) and above go to the
 * overflow bucket.
 */
#ifndef __BRISK_LAT_HIST_H
#define __BRISK_LAT_HIST_H

#include "intf.h"

/* floor(log2(v)) for v > 0, branch-light so the verifier sees a bounded result. */
static inline u32 brisk_log2(u64 v)
{
	u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

static inline u32 brisk_lat_bucket(u64 ns)
{
	u64 us = ns / 1000;
	u32 k, sub;

	if (!us)
		return 0;
	k = brisk_log2(us);
	if (k >= BRISK_LAT_MAX_LOG2)
		return BRISK_LAT_NR_BUCKETS - 1;
	/* the two bits below the leading one, i.e. which quarter of [2^k, 2^(k+1)) */
	sub = k >= 2 ? (us >> (k - 2)) & 3 : (us << (2 - k)) & 3;
	return 1 + 4 * k + sub;
}

/* Lower bound of bucket @b in ns (the overflow bucket: its start). */
static inline u64 brisk_lat_bucket_lo_ns(u32 b)
{
	u32 k, sub;

	if (!b)
		return 0;
	if (b >= BRISK_LAT_NR_BUCKETS - 1)
		return (1ULL << BRISK_LAT_MAX_LOG2) * 1000;
	k = (b - 1) / 4;
	sub = (b - 1) % 4;
	return ((1ULL << k) * (4 + sub) / 4) * 1000;
}

#endif /* __BRISK_LAT_HIST_H */
