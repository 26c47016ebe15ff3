/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: the latency histograms map and how a sample is recorded, shared by the
 * scheduler's own probes (probes.bpf.h) and the standalone probe object (probe.bpf.c).
 */
#ifndef __BRISK_LAT_RECORD_BPF_H
#define __BRISK_LAT_RECORD_BPF_H

#include "lat_hist.h"
#include "lat_stamps.h"

/* Per-CPU log-linear histograms, indexed kind * BRISK_NR_CLASSES + class. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BRISK_LAT_NR_KINDS *BRISK_NR_CLASSES);
	__type(key, u32);
	__type(value, struct brisk_lat_hist);
} lat_hists SEC(".maps");

/* Adds a sample of @delta_ns to @h. */
static void hist_add(struct brisk_lat_hist *h, u64 delta_ns)
{
	u32 b;

	h->count++;
	h->sum_ns += delta_ns;
	if (delta_ns > h->max_ns)
		h->max_ns = delta_ns;
	b = brisk_lat_bucket(delta_ns);
	if (b < BRISK_LAT_NR_BUCKETS)
		h->buckets[b]++;
}

static void lat_add(u32 kind, u32 class, u64 delta_ns)
{
	u32 key = kind * BRISK_NR_CLASSES + class;
	struct brisk_lat_hist *h = bpf_map_lookup_elem(&lat_hists, &key);

	if (h)
		hist_add(h, delta_ns);
}

/* Records now - *since for the task's class and clears the timestamp: the delay, 0 if none. */
static u64 lat_record(u32 kind, bool is_short, u64 *since, u64 now)
{
	u64 delta = brisk_lat_take(since, now);

	if (delta)
		lat_add(kind, is_short ? BRISK_CLASS_SHORT : BRISK_CLASS_HOG, delta);
	return delta;
}

#endif /* __BRISK_LAT_RECORD_BPF_H */
