// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Socket-level service load balancing: cgroup sock_addr hooks rewrite a
// connect()/sendmsg() to a Service VIP into a backend address before any
// packet exists, and recvmsg()/getpeername() translate back, so the
// application only ever sees the VIP.
//
// Map layout (see src/redirect/maps.ts for the userspace side):
//   services:  (vip, port, proto, slot) -> slot 0: the service (count, flags,
//              rev-NAT id, L7 proxy port, affinity timeout); slot i >= 1: the
//              i-th backend id.
//   backends:  id -> address, port.
//   rev_nat:   (socket cookie, backend address, port) -> VIP, port. LRU.
//   affinity:  (netns cookie, rev-NAT id) -> backend id, last use. LRU.
//   maglev:    (rev-NAT id, index) -> backend id, MAGLEV_M entries a service.
//   config:    one entry: the node proxy addresses that L7 redirects go to.
//   events, evcfg, evtok, evstat: flow events (bpf/events.h): one for each
//              translation a socket makes to a new backend.
//
// A v4-mapped destination (::ffff:a.b.c.d) on an IPv6 socket is the IPv4
// service a.b.c.d: dual-stack sockets (Java, .NET, Node) connect that way. The
// kernel runs the *6 hooks for them, except UDP sendmsg, which it unmaps and
// hands to sendmsg4.
#include <linux/bpf.h>
#include <linux/in.h>
#include <asm-generic/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "events.h"

#define MAGLEV_M 251
#define SVC_FLAG_AFFINITY 0x1
#define SVC_FLAG_MAGLEV 0x2
#define SVC_FLAG_L7 0x4
#define SVC_FLAG_HOST_ONLY 0x8

#define SYS_REJECT 0
#define SYS_PROCEED 1

/*
 * Builds with changed map definitions, for the upgrade test only
 * (test/map-migration.test.ts): 1 resizes the services map and reshapes the
 * rev-NAT value; 2 shrinks the backends map below what the test fills it with.
 */
#if SLUICE_TEST_MAP_VARIANT == 1
#define SERVICES_MAX 131072
#else
#define SERVICES_MAX 262144
#endif
#if SLUICE_TEST_MAP_VARIANT == 2
#define BACKENDS_MAX 2
#else
#define BACKENDS_MAX 262144
#endif

struct addr {
	__u32 a[4]; /* IPv4 in a[0]; network byte order */
};

struct svc_key {
	struct addr vip;
	__u16 port; /* network byte order */
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u16 slot;
	__u16 pad;
};

struct svc_val {
	__u32 backend_id; /* slots >= 1 */
	__u16 count;      /* slot 0 */
	__u16 rev_nat_id; /* slot 0 */
	__u16 l7_port;    /* slot 0, network byte order */
	__u8 flags;       /* slot 0 */
	__u8 pad;
	__u32 affinity_timeout; /* slot 0, seconds */
};

struct backend {
	struct addr addr;
	__u16 port; /* network byte order */
	__u8 family;
	__u8 pad;
};

struct rev_nat_key {
	__u64 cookie;
	struct addr addr;
	__u16 port;
	__u16 pad[3];
};

struct rev_nat_val {
	struct addr vip;
	__u16 port;
	__u16 rev_nat_id;
	__u32 pad;
#if SLUICE_TEST_MAP_VARIANT == 1
	__u64 variant;
#endif
};

struct affinity_key {
	__u64 netns_cookie;
	__u16 rev_nat_id;
	__u16 pad[3];
};

struct affinity_val {
	__u32 backend_id;
	__u32 last_used; /* seconds of monotonic time */
};

struct config {
	/* Where Envoy listens for L7 redirects: an address of the node that pods
	 * reach over their veth. Zero means loopback (a datapath with no agent
	 * config yet, or a single-namespace setup). */
	struct addr proxy4;
	struct addr proxy6;
};

struct maglev_key {
	__u16 rev_nat_id;
	__u16 pad;
	__u32 index;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, struct svc_val);
	__uint(max_entries, SERVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct backend);
	__uint(max_entries, BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct rev_nat_key);
	__type(value, struct rev_nat_val);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_rev_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct affinity_key);
	__type(value, struct affinity_val);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct maglev_key);
	__type(value, __u32);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_config SEC(".maps");

static __always_inline __u32 now_seconds(void)
{
	return (__u32)(bpf_ktime_get_ns() / 1000000000ULL);
}

/* A backend of the service whose slot-0 entry is `svc`, looked up under `key`. */
static __always_inline struct backend *pick_backend(struct bpf_sock_addr *ctx, struct svc_key *key,
						     struct svc_val *svc, __u32 *backend_id)
{
	struct affinity_key akey = {};
	struct affinity_val *aval;
	struct svc_val *slot;
	__u32 *id;

	if (svc->count == 0)
		return 0;
	if (svc->flags & SVC_FLAG_AFFINITY) {
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.rev_nat_id = svc->rev_nat_id;
		aval = bpf_map_lookup_elem(&sluice_affinity, &akey);
		if (aval && now_seconds() - aval->last_used <= svc->affinity_timeout) {
			struct backend *b = bpf_map_lookup_elem(&sluice_backends, &aval->backend_id);
			if (b) {
				aval->last_used = now_seconds();
				*backend_id = aval->backend_id;
				return b;
			}
		}
	}
	if (svc->flags & SVC_FLAG_MAGLEV) {
		struct maglev_key mkey = { .rev_nat_id = svc->rev_nat_id };
		/* The client's network namespace is the flow's stable identity at connect time. */
		__u64 h = bpf_get_netns_cookie(ctx) * 0x9E3779B97F4A7C15ULL;
		mkey.index = (__u32)(h >> 32) % MAGLEV_M;
		id = bpf_map_lookup_elem(&sluice_maglev, &mkey);
		if (!id)
			return 0;
		*backend_id = *id;
	} else {
		key->slot = (bpf_get_prandom_u32() % svc->count) + 1;
		slot = bpf_map_lookup_elem(&sluice_services, key);
		key->slot = 0;
		if (!slot)
			return 0;
		*backend_id = slot->backend_id;
	}
	if (svc->flags & SVC_FLAG_AFFINITY) {
		struct affinity_val fresh = { .backend_id = *backend_id, .last_used = now_seconds() };
		bpf_map_update_elem(&sluice_affinity, &akey, &fresh, BPF_ANY);
	}
	return bpf_map_lookup_elem(&sluice_backends, backend_id);
}

static __always_inline void event_addr(__u32 *out, struct addr *a, __u8 family)
{
	if (family == 4) {
		out[2] = bpf_htonl(0xffff);
		out[3] = a->a[0];
	} else
		__builtin_memcpy(out, a, 16);
}

/* The translation a socket just made, for userspace to name the Service (rev-NAT id) and the pod (cgroup id). */
static __always_inline void xlate_event(struct bpf_sock_addr *ctx, struct rev_nat_key *to, struct rev_nat_val *from, struct svc_val *svc, __u8 family)
{
#ifndef SLUICE_TEST_WITHOUT_EVENTS
	struct sluice_event *e = ev_reserve(EV_BUCKET_FLOW);
	if (!e)
		return;
	e->type = EV_SOCK_XLATE;
	e->direction = 1;
	e->proto = ctx->protocol;
	e->flags = family == 4 ? EV_F_V4 : 0;
	if (svc->flags & SVC_FLAG_L7) {
		e->flags |= EV_F_PROXY;
		e->proxy_port = bpf_ntohs(svc->l7_port);
	}
	e->dport = to->port;
	e->rev_nat_id = from->rev_nat_id;
	event_addr(e->a_dst, &to->addr, family);
	event_addr(e->a_orig, &from->vip, family);
	e->orig_port = from->port;
	e->cookie = to->cookie;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_ringbuf_submit(e, 0);
#endif
}

/*
 * Keyed by the socket and the address it was sent to, in the service's family:
 * a dual-stack socket's v4-mapped UDP goes through the sendmsg4 hook (the
 * kernel unmaps it first) but its replies through recvmsg6, mapped again.
 */
static __always_inline void remember_rev_nat(struct bpf_sock_addr *ctx, struct addr *vip, __u16 vip_port, struct svc_val *svc,
					     struct addr *to, __u16 to_port, __u8 family)
{
	struct rev_nat_key rkey = { .cookie = bpf_get_socket_cookie(ctx), .addr = *to, .port = to_port };
	struct rev_nat_val rval = { .vip = *vip, .port = vip_port, .rev_nat_id = svc->rev_nat_id };
	/* A socket's first datagram to a backend is its flow's start; the ones after it are not events. */
	int fresh = !bpf_map_lookup_elem(&sluice_rev_nat, &rkey);

	bpf_map_update_elem(&sluice_rev_nat, &rkey, &rval, BPF_ANY);
	if (fresh)
		xlate_event(ctx, &rkey, &rval, svc, family);
}

/* As kube-proxy's REJECT does: the caller gets ECONNREFUSED at once rather than a hang. */
static __always_inline int refuse(void)
{
	bpf_set_retval(-ECONNREFUSED);
	return SYS_REJECT;
}

static __always_inline void proxy_address(__u8 family, struct addr *to)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&sluice_config, &zero);

	if (family == 4) {
		to->a[0] = cfg && cfg->proxy4.a[0] ? cfg->proxy4.a[0] : bpf_htonl(0x7f000001);
		return;
	}
	if (cfg && (cfg->proxy6.a[0] | cfg->proxy6.a[1] | cfg->proxy6.a[2] | cfg->proxy6.a[3])) {
		*to = cfg->proxy6;
		return;
	}
	to->a[0] = 0;
	to->a[1] = 0;
	to->a[2] = 0;
	to->a[3] = bpf_htonl(1);
}

static __always_inline int is_v4_mapped(struct addr *a)
{
	return a->a[0] == 0 && a->a[1] == 0 && a->a[2] == bpf_htonl(0xffff);
}

/*
 * Translates the destination in ctx if it is a service. `family` is the
 * socket's hook; the service's family is 4 for a v4-mapped address there.
 */
static __always_inline int translate(struct bpf_sock_addr *ctx, __u8 family)
{
	struct svc_key key = {};
	struct svc_val *svc;
	struct backend *b;
	struct addr dst = {};
	struct addr to = {};
	__u32 backend_id = 0;
	__u16 to_port;
	int mapped = 0;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return SYS_PROCEED;
	key.proto = ctx->protocol;
	key.port = (__u16)ctx->user_port;
	if (family == 4) {
		key.family = 4;
		key.vip.a[0] = ctx->user_ip4;
	} else {
		dst.a[0] = ctx->user_ip6[0];
		dst.a[1] = ctx->user_ip6[1];
		dst.a[2] = ctx->user_ip6[2];
		dst.a[3] = ctx->user_ip6[3];
		mapped = is_v4_mapped(&dst);
		key.family = mapped ? 4 : 6;
		if (mapped)
			key.vip.a[0] = dst.a[3];
		else
			key.vip = dst;
	}
	svc = bpf_map_lookup_elem(&sluice_services, &key);
	if (!svc)
		return SYS_PROCEED;

	if (svc->flags & SVC_FLAG_L7) {
		/* Steer to the node's Envoy listener for this service. */
		proxy_address(key.family, &to);
		to_port = svc->l7_port;
	} else {
		b = pick_backend(ctx, &key, svc, &backend_id);
		if (!b || b->family != key.family)
			return refuse();
		to = b->addr;
		to_port = b->port;
	}
	remember_rev_nat(ctx, &key.vip, key.port, svc, &to, to_port, key.family);
	if (family == 4) {
		ctx->user_ip4 = to.a[0];
	} else if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = to.a[0];
	} else {
		ctx->user_ip6[0] = to.a[0];
		ctx->user_ip6[1] = to.a[1];
		ctx->user_ip6[2] = to.a[2];
		ctx->user_ip6[3] = to.a[3];
	}
	ctx->user_port = to_port;
	return SYS_PROCEED;
}

/* Makes a reply (recvmsg) or the peer (getpeername) appear to be the VIP. */
static __always_inline int reverse(struct bpf_sock_addr *ctx, __u8 family)
{
	struct rev_nat_key rkey = { .cookie = bpf_get_socket_cookie(ctx), .port = (__u16)ctx->user_port };
	struct rev_nat_val *rval;
	int mapped = 0;

	if (family == 4) {
		rkey.addr.a[0] = ctx->user_ip4;
	} else {
		rkey.addr.a[0] = ctx->user_ip6[0];
		rkey.addr.a[1] = ctx->user_ip6[1];
		rkey.addr.a[2] = ctx->user_ip6[2];
		rkey.addr.a[3] = ctx->user_ip6[3];
		mapped = is_v4_mapped(&rkey.addr);
		if (mapped) {
			rkey.addr.a[0] = rkey.addr.a[3];
			rkey.addr.a[2] = 0;
			rkey.addr.a[3] = 0;
		}
	}
	rval = bpf_map_lookup_elem(&sluice_rev_nat, &rkey);
	if (!rval)
		return SYS_PROCEED;
	if (family == 4) {
		ctx->user_ip4 = rval->vip.a[0];
	} else if (mapped) {
		ctx->user_ip6[3] = rval->vip.a[0];
	} else {
		ctx->user_ip6[0] = rval->vip.a[0];
		ctx->user_ip6[1] = rval->vip.a[1];
		ctx->user_ip6[2] = rval->vip.a[2];
		ctx->user_ip6[3] = rval->vip.a[3];
	}
	ctx->user_port = rval->port;
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx) { return translate(ctx, 4); }

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx) { return translate(ctx, 6); }

SEC("cgroup/sendmsg4")
int sluice_sendmsg4(struct bpf_sock_addr *ctx) { return translate(ctx, 4); }

SEC("cgroup/sendmsg6")
int sluice_sendmsg6(struct bpf_sock_addr *ctx) { return translate(ctx, 6); }

SEC("cgroup/recvmsg4")
int sluice_recvmsg4(struct bpf_sock_addr *ctx) { return reverse(ctx, 4); }

SEC("cgroup/recvmsg6")
int sluice_recvmsg6(struct bpf_sock_addr *ctx) { return reverse(ctx, 6); }

SEC("cgroup/getpeername4")
int sluice_getpeername4(struct bpf_sock_addr *ctx) { return reverse(ctx, 4); }

SEC("cgroup/getpeername6")
int sluice_getpeername6(struct bpf_sock_addr *ctx) { return reverse(ctx, 6); }

char _license[] SEC("license") = "Dual BSD/GPL";
