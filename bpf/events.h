// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Flow events, shared by policy.c and sock_lb.c: each object gets its own
// copy of these maps, pinned in its own pin directory (src/observe/
// bpf-event-reader.ts opens both).
//
//   events: ring buffer of struct sluice_event records.
//   evcfg:  one entry: events on or off, and the rate limits. All zero (the
//           state a fresh pin starts in): off, and the programs pay one array
//           lookup at the places that would emit, nothing per packet.
//   evtok:  per-CPU token buckets, one for drops and one for flow events, so
//           neither a drop flood nor a connection flood swamps userspace, and a
//           drop flood cannot starve flow events. Pinned like the rest: every
//           attachment of an object shares them, and a restart keeps them.
//   evstat: per-CPU counters: records the ring had no room for (lost), and
//           events each bucket suppressed. Loss is counted, never hidden.
//
// Events are emitted only at a flow's start (a new conntrack entry, or a
// socket-LB translation), at its first FIN or RST, and for drops: never per
// packet of an established flow.
#ifndef SLUICE_EVENTS_H
#define SLUICE_EVENTS_H

#define EV_FLOW 1       /* a new flow's verdict: allowed or redirected */
#define EV_DROP 2       /* a packet dropped, with its reason */
#define EV_TCP_END 3    /* the first FIN or RST of a tracked flow */
#define EV_SOCK_XLATE 4 /* socket LB: a Service frontend translated to a backend */

#define EV_F_REPLY 0x1 /* the packet goes against the direction the flow was opened in */
#define EV_F_V4 0x2    /* addresses are IPv4, v4-mapped */
#define EV_F_PROXY 0x4 /* socket LB: the Service goes through the node's Envoy, at proxy_port */

#define EV_BUCKET_DROP 0
#define EV_BUCKET_FLOW 1

#define EVSTAT_LOST 0            /* the ring was full */
#define EVSTAT_DROP_SUPPRESSED 1 /* the drop bucket was empty */
#define EVSTAT_FLOW_SUPPRESSED 2 /* the flow bucket was empty */
#define EVSTAT_N 4

#define EV_RING_BYTES (1 << 20)

/* 104 bytes; src/observe/bpf-events.ts decodes it. Ports in network byte order, the rest host. */
struct sluice_event {
	__u64 time_ns;     /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u8 type;         /* EV_* */
	__u8 verdict;      /* policy.c's VERDICT_*; 0 for socket LB */
	__u8 drop_reason;  /* policy.c's DROP_* for EV_DROP */
	__u8 direction;    /* 0 ingress, 1 egress, 2 unknown */
	__u8 proto;
	__u8 flags;        /* EV_F_* */
	__u8 tcp_flags;    /* bit 0 SYN, 1 ACK, 2 FIN, 3 RST */
	__u8 pad0;
	__u16 sport;
	__u16 dport;
	__u16 proxy_port;
	__u16 rev_nat_id;  /* socket LB: the Service frontend's id */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 a_src[4];    /* IPv4 as ::ffff:a.b.c.d */
	__u32 a_dst[4];
	__u32 a_orig[4];   /* socket LB: the frontend (VIP) the socket asked for */
	__u16 orig_port;
	__u16 pad1;
	__u32 ifindex;
	__u64 cookie;      /* socket LB: bpf_get_socket_cookie */
	__u64 cgroup_id;   /* socket LB: the calling task's cgroup v2 id */
};

struct ev_cfg {
	__u32 enabled;
	/* Tokens per second and the bucket's size, per CPU; a rate of 0 leaves that kind unlimited. */
	__u32 drop_rate;
	__u32 drop_burst;
	__u32 flow_rate;
	__u32 flow_burst;
	__u32 pad;
};

struct ev_bucket {
	__u64 last_ns;
	__u64 tokens;
};

/* SLUICE_TEST_WITHOUT_EVENTS builds a version from before events (for upgrade tests): the layout only, no maps. */
#ifndef SLUICE_TEST_WITHOUT_EVENTS
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EV_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ev_cfg);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_evcfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ev_bucket);
	__uint(max_entries, 2);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_evtok SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, EVSTAT_N);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_evstat SEC(".maps");

static __always_inline void ev_stat(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&sluice_evstat, &which);
	if (n)
		*n += 1;
}

/* Takes a token from this CPU's bucket; the fraction of a token elapsed time earns is kept for next time. */
static __always_inline int ev_take(struct ev_cfg *cfg, __u32 bucket)
{
	__u64 rate = bucket == EV_BUCKET_DROP ? cfg->drop_rate : cfg->flow_rate;
	__u64 burst = bucket == EV_BUCKET_DROP ? cfg->drop_burst : cfg->flow_burst;
	if (!rate)
		return 1;
	struct ev_bucket *b = bpf_map_lookup_elem(&sluice_evtok, &bucket);
	if (!b)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 elapsed = now - b->last_ns;
	/* A second's worth fills any bucket a rate can sustain; capping it keeps the product in 64 bits. */
	if (elapsed > 1000000000ULL)
		elapsed = 1000000000ULL;
	__u64 earned = elapsed * rate / 1000000000ULL;
	if (b->tokens + earned >= burst) {
		b->tokens = burst;
		b->last_ns = now;
	} else if (earned) {
		b->tokens += earned;
		b->last_ns += earned * 1000000000ULL / rate;
	}
	if (!b->tokens) {
		ev_stat(bucket == EV_BUCKET_DROP ? EVSTAT_DROP_SUPPRESSED : EVSTAT_FLOW_SUPPRESSED);
		return 0;
	}
	b->tokens--;
	return 1;
}

/* A zeroed record to fill and bpf_ringbuf_submit, or NULL: events off, rate-limited, or the ring full (counted). */
static __always_inline struct sluice_event *ev_reserve(__u32 bucket)
{
	__u32 zero = 0;
	struct ev_cfg *cfg = bpf_map_lookup_elem(&sluice_evcfg, &zero);
	if (!cfg || !cfg->enabled || !ev_take(cfg, bucket))
		return NULL;
	struct sluice_event *e = bpf_ringbuf_reserve(&sluice_events, sizeof(*e), 0);
	if (!e) {
		ev_stat(EVSTAT_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_ns();
	return e;
}
#endif

#endif
