// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// L3/L4 network policy on TC (TCX) hooks of the node's interfaces.
//
// sluice_tc_ingress runs where a packet enters the node's stack: the host side
// of a pod's veth (the pod sends) and the node's other interfaces (another node
// sends). It checks the egress policy of the source when that is a local
// endpoint, then the ingress policy of the destination when that is one; a
// verdict "redirect" steers the flow into the node's Envoy with bpf_sk_assign,
// which only TC ingress can do. sluice_tc_egress runs on the host side of pod
// veths for what the node itself sends to a pod (Envoy's upstream, kubelet
// probes): forwarded packets were checked at ingress and are found in
// conntrack there.
//
// Map layout (src/redirect/policy-maps.ts is the userspace side):
//   ipcache:   LPM (set, v4-mapped address prefix) -> identity.
//   endpoints: (v4-mapped address, set) -> endpoint id, identity, enforcement flags.
//   policy:    LPM (endpoint, direction, identity, proto, port prefix) ->
//              verdict (allow, deny, redirect, or mesh: allow only into the
//              mesh tunnel), proxy port. Proto 0 is stored as a 56-bit prefix (any
//              proto, any port). The set is a bit beside the direction.
//   polgen:    one entry: which set of ipcache, endpoints and policy is live.
//              Userspace fills the idle set and switches the whole state in one
//              write; a packet reads it once, so it meets either the whole old
//              state or the whole new one, never a mix.
//   ct:        LRU (src, dst, sport, dport, proto, scope) -> verdict, last
//              seen. Scope says whose check created it: the destination's
//              ingress or the source's egress; a reply matches the reversed
//              tuple in the other scope.
//   drops:     per-CPU counters by reason.
//   tpcfg:     one entry: proxy listener addresses and the mark that sends
//              steered packets to the local route table.
//   meshdst:   LPM (set, v4-mapped address prefix) -> proxy port: meshed pods
//              on other nodes. A new TCP flow a meshed local endpoint's egress
//              policy allows to one of them is steered to that port of the
//              node's Envoy (its outbound listener), which carries it to the
//              destination's node over mTLS: plaintext from a meshed pod never
//              leaves the node. The destination's ingress policy is checked on
//              its own node. Keyed by set like the ipcache, so a membership
//              change switches with the rest of the state.
//   events, evcfg, evtok, evstat: flow events (bpf/events.h): a new flow's
//              verdict, drops, and the first FIN/RST of a tracked flow.
//
// A flow's verdict is decided at its first packet and kept in conntrack until
// the entry expires: a policy change affects new flows only, as in Cilium.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* The pre-mesh build stands for a version from before events, too. */
#ifdef SLUICE_TEST_WITHOUT_MESH
#define SLUICE_TEST_WITHOUT_EVENTS
#endif
#include "events.h"

#define DIR_INGRESS 0
#define DIR_EGRESS 1

#define VERDICT_NONE 0
#define VERDICT_ALLOW 1
#define VERDICT_DENY 2
#define VERDICT_REDIRECT 3
/* Egress only: allowed if, and only if, the flow is steered into the mesh's
 * mTLS tunnel (a rule with authentication required). Decided in check() where
 * the steering is, per flow: the destination address in sluice_meshdst, not
 * the peer's identity, says whether this connection can be authenticated. */
#define VERDICT_MESH 4

#define EP_INGRESS_ENFORCED 0x1
#define EP_EGRESS_ENFORCED 0x2
#define EP_MESHED 0x4

#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2

/* Drop reasons: indexes of sluice_drops. */
#define DROP_NO_ALLOW 0     /* enforced direction, no entry allows */
#define DROP_DENY_RULE 1    /* a deny entry matched */
#define DROP_NO_PROXY 2     /* redirect, but no proxy listener to assign */
#define DROP_ASSIGN 3       /* the kernel refused bpf_sk_assign */
#define DROP_REDIRECT_PROTO 4 /* redirect of something other than TCP */
#define DROP_NOT_MESHED 5   /* only the mesh tunnel may carry it, and this flow would not go there */
#define DROP_REASONS 8

#define CT_TCP_LIFETIME_NS (21600ULL * 1000000000ULL)
#define CT_OTHER_LIFETIME_NS (60ULL * 1000000000ULL)
#define CT_CLOSING_LIFETIME_NS (10ULL * 1000000000ULL)
#define CT_FLAG_CLOSING 0x1

/* The fixed part of a policy key, in bits: endpoint (16), direction (8), identity (32). */
#define POLICY_PREFIX_ANY_PROTO 56
#define POLICY_PREFIX_FULL 80

struct addr {
	__u32 a[4]; /* IPv4 as ::ffff:a.b.c.d; network byte order */
};

struct lpm_addr_key {
	__u32 prefixlen; /* 8 (the set) + 96 + IPv4 length, or 8 + IPv6 length */
	__u8 set;
	struct addr addr;
} __attribute__((packed));

struct endpoint_key {
	struct addr addr;
	__u32 set;
};

struct endpoint {
	__u32 identity;
	__u16 id;
	__u8 flags;
	__u8 pad;
};

struct policy_key {
	__u32 prefixlen;
	__u16 endpoint; /* network byte order, as every field here: LPM compares bytes */
	__u8 direction; /* bit 0: egress; bit 1: the set */
	__u8 identity[4];
	__u8 proto;
	__u16 port;
} __attribute__((packed));

struct policy_val {
	__u8 verdict;
	__u8 pad;
	__u16 proxy_port; /* host byte order */
};

struct ct_key {
	struct addr src;
	struct addr dst;
	__u16 sport; /* network byte order */
	__u16 dport;
	__u8 proto;
	__u8 scope; /* DIR_INGRESS: the destination's check; DIR_EGRESS: the source's */
	__u16 pad;
};

struct ct_val {
	__u64 last_seen; /* bpf_ktime_get_ns */
	__u8 verdict;
	__u8 flags;
	__u16 proxy_port;
	__u32 peer_identity; /* for events; 0 in entries of a version before them */
};

struct tpcfg {
	__u32 proxy4;        /* listener address, network byte order; 0: the flow's destination */
	struct addr proxy6;  /* likewise; all zero: the flow's destination */
	__u32 mark;          /* set on steered packets so that a rule routes them to a local table */
	__u32 mark_mask;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_addr_key);
	__type(value, __u32);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_endpts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_val);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, DROP_REASONS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tpcfg);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_tpcfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_polgen SEC(".maps");

/* SLUICE_TEST_WITHOUT_MESH builds the object as it was before this map, for
 * the upgrade test (test/policy-mesh-upgrade.test.ts). */
#ifndef SLUICE_TEST_WITHOUT_MESH
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_addr_key);
	__type(value, __u32); /* proxy port, host byte order */
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_meshdst SEC(".maps");
#endif

static __always_inline __u8 live_set(void)
{
	__u32 zero = 0;
	__u32 *set = bpf_map_lookup_elem(&sluice_polgen, &zero);
	return set ? *set & 1 : 0;
}

struct flow {
	struct addr src;
	struct addr dst;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 v4;
	__u8 tcp_flags; /* bit 0 SYN, 1 ACK, 2 FIN, 3 RST */
	__u32 ifindex;
};

/* linux/icmp.h pulls in libc headers a BPF build cannot use. */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct icmp_echo {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u16 id;
	__u16 seq;
};

#define TCPF_SYN 0x1
#define TCPF_ACK 0x2
#define TCPF_FIN 0x4
#define TCPF_RST 0x8

static __always_inline void v4_mapped(struct addr *a, __u32 ip)
{
	a->a[0] = 0;
	a->a[1] = 0;
	a->a[2] = bpf_htonl(0xffff);
	a->a[3] = ip;
}

static __always_inline void drop_count(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&sluice_drops, &reason);
	if (n)
		*n += 1;
}

static __always_inline int l4_ports(struct __sk_buff *skb, void *l4, struct flow *f)
{
	void *end = (void *)(long)skb->data_end;
	if (f->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return -1;
		f->sport = th->source;
		f->dport = th->dest;
		f->tcp_flags = (th->syn ? TCPF_SYN : 0) | (th->ack ? TCPF_ACK : 0) | (th->fin ? TCPF_FIN : 0) | (th->rst ? TCPF_RST : 0);
	} else if (f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP) {
		/* SCTP's ports sit where UDP's do. */
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return -1;
		f->sport = uh->source;
		f->dport = uh->dest;
	} else if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		/* Echo request and reply share their identifier: it stands for both ports so the reply finds the request. */
		struct icmp_echo *ih = l4;
		if ((void *)(ih + 1) > end)
			return -1;
		__u8 t = ih->type;
		if ((f->proto == IPPROTO_ICMP && (t == ICMP_ECHO || t == ICMP_ECHOREPLY)) ||
		    (f->proto == IPPROTO_ICMPV6 && (t == ICMPV6_ECHO_REQUEST || t == ICMPV6_ECHO_REPLY))) {
			f->sport = ih->id;
			f->dport = ih->id;
		}
	}
	return 0;
}

/* 0: parsed; 1: not IP (let it be); -1: truncated IP (drop) */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		v4_mapped(&f->src, ip->saddr);
		v4_mapped(&f->dst, ip->daddr);
		f->proto = ip->protocol;
		f->v4 = 1;
		/* A later fragment carries no ports: it is judged with ports 0. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		return l4_ports(skb, (void *)ip + ip->ihl * 4, f);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(&f->src, &ip6->saddr, 16);
		__builtin_memcpy(&f->dst, &ip6->daddr, 16);
		f->proto = ip6->nexthdr;
		return l4_ports(skb, ip6 + 1, f);
	}
	return 1;
}

static __always_inline __u32 identity_of(struct addr *a, __u8 set)
{
	struct lpm_addr_key k = { .prefixlen = 136, .set = set, .addr = *a };
	__u32 *id = bpf_map_lookup_elem(&sluice_ipcache, &k);
	return id ? *id : IDENTITY_WORLD;
}

/* The outbound listener port for a flow to a meshed pod on another node; 0 when the destination is not one. */
static __always_inline __u16 mesh_port(struct addr *dst, __u8 set)
{
#ifdef SLUICE_TEST_WITHOUT_MESH
	return 0;
#else
	struct lpm_addr_key k = { .prefixlen = 136, .set = set, .addr = *dst };
	__u32 *port = bpf_map_lookup_elem(&sluice_meshdst, &k);
	return port ? *port : 0;
#endif
}

/*
 * One flow event (bpf/events.h). Identities of 0 are looked up in the ipcache,
 * only once the event is known to go out: the paths that drop an established
 * flow have none at hand. `dir`: whose check saw the packet, its source's
 * (egress) or its destination's (ingress).
 */
static __always_inline void flow_event(__u8 type, struct flow *f, __u8 dir, __u8 set, __u32 src_id, __u32 dst_id, __u8 verdict, __u8 reason,
				       __u16 proxy_port, __u8 flags)
{
#ifndef SLUICE_TEST_WITHOUT_EVENTS
	struct sluice_event *e = ev_reserve(type == EV_DROP ? EV_BUCKET_DROP : EV_BUCKET_FLOW);
	if (!e)
		return;
	e->type = type;
	e->verdict = verdict;
	e->drop_reason = reason;
	e->direction = dir;
	e->proto = f->proto;
	e->flags = flags | (f->v4 ? EV_F_V4 : 0);
	e->tcp_flags = f->tcp_flags;
	e->sport = f->sport;
	e->dport = f->dport;
	e->proxy_port = proxy_port;
	e->src_identity = src_id ? src_id : identity_of(&f->src, set);
	e->dst_identity = dst_id ? dst_id : identity_of(&f->dst, set);
	__builtin_memcpy(e->a_src, &f->src, 16);
	__builtin_memcpy(e->a_dst, &f->dst, 16);
	e->ifindex = f->ifindex;
	bpf_ringbuf_submit(e, 0);
#endif
}

/* Counts a drop and reports it; `dir` as for flow_event, identities 0 when unknown. */
static __always_inline void drop(__u32 reason, struct flow *f, __u8 dir, __u8 set, __u32 src_id, __u32 dst_id)
{
	drop_count(reason);
	flow_event(EV_DROP, f, dir, set, src_id, dst_id, VERDICT_DENY, reason, 0, 0);
}

static __always_inline struct policy_val *policy_lookup(struct policy_key *k, __u32 identity)
{
	k->identity[0] = identity >> 24;
	k->identity[1] = identity >> 16;
	k->identity[2] = identity >> 8;
	k->identity[3] = identity;
	return bpf_map_lookup_elem(&sluice_policy, k);
}

/*
 * The entries for this peer's identity and for any peer: a deny in either
 * wins, then a redirect (the proxy enforces the union of what both allow),
 * then the peer's own allow or mesh-only allow when it has an entry, else any
 * peer's. The translator folds the any-peer entries into each identity's own
 * (src/policy/entries.ts), so the peer's entry already ranks both; this way an
 * identity's mesh-only allow keeps its meaning under the allow-all of an
 * endpoint without default deny.
 */
static __always_inline struct policy_val policy_verdict(struct endpoint *ep, __u8 set, __u8 dir, __u32 identity, struct flow *f)
{
	struct policy_key k = {
		.prefixlen = POLICY_PREFIX_FULL,
		.endpoint = bpf_htons(ep->id),
		.direction = dir | set << 1,
		.proto = f->proto,
		.port = f->dport,
	};
	struct policy_val out = { .verdict = VERDICT_NONE };
	struct policy_val *peer = policy_lookup(&k, identity);
	struct policy_val p = peer ? *peer : out;
	struct policy_val *any = policy_lookup(&k, 0);
	struct policy_val a = any ? *any : out;
	if (p.verdict == VERDICT_DENY || a.verdict == VERDICT_DENY) {
		out.verdict = VERDICT_DENY;
		return out;
	}
	if (p.verdict == VERDICT_REDIRECT)
		return p;
	if (a.verdict == VERDICT_REDIRECT)
		return a;
	out.verdict = p.verdict != VERDICT_NONE ? p.verdict : a.verdict;
	return out;
}

static __always_inline __u64 ct_lifetime(struct flow *f, struct ct_val *v)
{
	if (v->flags & CT_FLAG_CLOSING)
		return CT_CLOSING_LIFETIME_NS;
	return f->proto == IPPROTO_TCP ? CT_TCP_LIFETIME_NS : CT_OTHER_LIFETIME_NS;
}

/* A live entry for this tuple in this scope, refreshed; NULL when none or expired. *closing: this packet began its end. */
static __always_inline struct ct_val *ct_find(struct ct_key *k, struct flow *f, __u64 now, int *closing)
{
	struct ct_val *v = bpf_map_lookup_elem(&sluice_ct, k);
	if (!v || now - v->last_seen > ct_lifetime(f, v))
		return NULL;
	v->last_seen = now;
	*closing = (f->tcp_flags & (TCPF_FIN | TCPF_RST)) && !(v->flags & CT_FLAG_CLOSING);
	if (*closing)
		v->flags |= CT_FLAG_CLOSING;
	return v;
}

/*
 * One endpoint's check of one direction. Returns the verdict for this packet
 * (allow, deny or redirect with *proxy_port set). `at_egress`: seen at a pod
 * veth's egress, where nothing can be steered any more. `from_host`: the node
 * itself sends; the host may always reach its pods unless a deny says
 * otherwise (Cilium's allow-localhost).
 */
static __always_inline __u8 check(struct endpoint *ep, __u8 set, __u8 dir, struct flow *f, int at_egress, int from_host, __u16 *proxy_port)
{
	__u64 now = bpf_ktime_get_ns();
	int closing = 0;
	/* The endpoint is the packet's source at egress, its destination at ingress; the entry holds the other side. */
#define SRC_ID(peer) (dir == DIR_EGRESS ? ep->identity : (peer))
#define DST_ID(peer) (dir == DIR_EGRESS ? (peer) : ep->identity)
	struct ct_key k = { .src = f->src, .dst = f->dst, .sport = f->sport, .dport = f->dport, .proto = f->proto, .scope = dir };
	struct ct_val *v = ct_find(&k, f, now, &closing);
	if (v) {
		if (closing)
			flow_event(EV_TCP_END, f, dir, set, SRC_ID(v->peer_identity), DST_ID(v->peer_identity), v->verdict, 0, v->proxy_port, 0);
		*proxy_port = v->proxy_port;
		return v->verdict;
	}
	struct ct_key r = { .src = f->dst, .dst = f->src, .sport = f->dport, .dport = f->sport, .proto = f->proto, .scope = dir ^ 1 };
	v = ct_find(&r, f, now, &closing);
	if (v) {
		if (closing)
			flow_event(EV_TCP_END, f, dir ^ 1, set, SRC_ID(v->peer_identity), DST_ID(v->peer_identity), VERDICT_ALLOW, 0, 0, EV_F_REPLY);
		return VERDICT_ALLOW;
	}

	__u32 identity = from_host ? IDENTITY_HOST : identity_of(dir == DIR_INGRESS ? &f->src : &f->dst, set);
	struct policy_val pv = policy_verdict(ep, set, dir, identity, f);
	__u8 verdict = pv.verdict;
	if (verdict == VERDICT_DENY) {
		drop(DROP_DENY_RULE, f, dir, set, SRC_ID(identity), DST_ID(identity));
		return VERDICT_DENY;
	}
	if (verdict == VERDICT_NONE) {
		__u8 enforced = dir == DIR_INGRESS ? ep->flags & EP_INGRESS_ENFORCED : ep->flags & EP_EGRESS_ENFORCED;
		if (enforced && !from_host) {
			drop(DROP_NO_ALLOW, f, dir, set, SRC_ID(identity), DST_ID(identity));
			return VERDICT_DENY;
		}
		verdict = VERDICT_ALLOW;
	}
	/* A new flow a meshed pod opens to a meshed pod elsewhere goes into the
	 * node's Envoy, never onto the wire in plaintext: recorded as a redirect,
	 * so every later packet of it is steered too (or dropped with no listener).
	 * Replies returned above, so flows the pod accepted are left alone. An L7
	 * egress redirect keeps its own listener. */
	if ((verdict == VERDICT_ALLOW || verdict == VERDICT_MESH) && dir == DIR_EGRESS && (ep->flags & EP_MESHED) && f->proto == IPPROTO_TCP && !from_host) {
		__u16 mp = mesh_port(&f->dst, set);
		if (mp) {
			verdict = VERDICT_REDIRECT;
			pv.proxy_port = mp;
		}
	}
	/* Authentication required and the flow stays outside the tunnel (the
	 * source or destination is not meshed, not TCP, or the destination is on
	 * this node, where no tunnel runs and the destination's ingress has no
	 * plaintext entry for such a rule either): nothing authenticates it. A
	 * policy map from a translator is the only source of this verdict, and the
	 * translator sets it only where default deny is on; it drops regardless. */
	if (verdict == VERDICT_MESH) {
		drop_count(DROP_NOT_MESHED);
		return VERDICT_DENY;
	}
	/* Only TC ingress can steer. What the node sends itself goes straight; a
	 * forwarded packet that met no ingress hook (an interface the attacher has
	 * yet to find) must not slip past the proxy. */
	if (verdict == VERDICT_REDIRECT && at_egress) {
		if (!from_host) {
			drop(DROP_NO_PROXY, f, dir, set, SRC_ID(identity), DST_ID(identity));
			return VERDICT_DENY;
		}
		verdict = VERDICT_ALLOW;
	}
	struct ct_val nv = { .last_seen = now, .verdict = verdict, .proxy_port = verdict == VERDICT_REDIRECT ? pv.proxy_port : 0, .peer_identity = identity };
	bpf_map_update_elem(&sluice_ct, &k, &nv, BPF_ANY);
	flow_event(EV_FLOW, f, dir, set, SRC_ID(identity), DST_ID(identity), verdict, 0, nv.proxy_port, 0);
#undef SRC_ID
#undef DST_ID
	*proxy_port = nv.proxy_port;
	return verdict;
}

/* Hands the packet to Envoy's socket for this flow, or to its transparent listener on proxy_port. */
static __always_inline int steer(struct __sk_buff *skb, struct flow *f, __u16 proxy_port, __u8 dir, __u8 set)
{
	if (f->proto != IPPROTO_TCP) {
		drop(DROP_REDIRECT_PROTO, f, dir, set, 0, 0);
		return TC_ACT_SHOT;
	}
	__u32 zero = 0;
	struct tpcfg *cfg = bpf_map_lookup_elem(&sluice_tpcfg, &zero);
	if (!cfg)
		return TC_ACT_SHOT;
	struct bpf_sock_tuple t = {};
	__u32 size;
	if (f->v4) {
		t.ipv4.saddr = f->src.a[3];
		t.ipv4.daddr = f->dst.a[3];
		t.ipv4.sport = f->sport;
		t.ipv4.dport = f->dport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, &f->src, 16);
		__builtin_memcpy(t.ipv6.daddr, &f->dst, 16);
		t.ipv6.sport = f->sport;
		t.ipv6.dport = f->dport;
		size = sizeof(t.ipv6);
	}
	/* The connection Envoy already accepted for this flow. */
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		if (sk->state != BPF_TCP_LISTEN && bpf_sk_assign(skb, sk, 0) == 0) {
			bpf_sk_release(sk);
			goto assigned;
		}
		bpf_sk_release(sk);
	}
	/* Otherwise the listener: a new connection. */
	if (f->v4) {
		if (cfg->proxy4)
			t.ipv4.daddr = cfg->proxy4;
		t.ipv4.dport = bpf_htons(proxy_port);
	} else {
		if (cfg->proxy6.a[0] | cfg->proxy6.a[1] | cfg->proxy6.a[2] | cfg->proxy6.a[3])
			__builtin_memcpy(t.ipv6.daddr, &cfg->proxy6, 16);
		t.ipv6.dport = bpf_htons(proxy_port);
	}
	sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		drop(DROP_NO_PROXY, f, dir, set, 0, 0);
		return TC_ACT_SHOT;
	}
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		drop(DROP_NO_PROXY, f, dir, set, 0, 0);
		return TC_ACT_SHOT;
	}
	long err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		drop(DROP_ASSIGN, f, dir, set, 0, 0);
		return TC_ACT_SHOT;
	}
assigned:
	/* The destination is a pod, not the node: the mark's rule routes it to a table where every address is local. */
	skb->mark = (skb->mark & ~cfg->mark_mask) | cfg->mark;
	return TC_ACT_OK;
}

SEC("tc")
int sluice_tc_ingress(struct __sk_buff *skb)
{
	struct flow f = {};
	int rc = parse(skb, &f);
	f.ifindex = skb->ifindex;
	if (rc > 0)
		return TC_ACT_UNSPEC;
	if (rc < 0)
		return TC_ACT_SHOT;
	__u16 port = 0, dst_port = 0;
	__u8 verdict = VERDICT_ALLOW, dst_verdict = VERDICT_ALLOW;
	__u8 set = live_set();
	struct endpoint_key ek = { .addr = f.src, .set = set };
	struct endpoint *src = bpf_map_lookup_elem(&sluice_endpts, &ek);
	if (src) {
		verdict = check(src, set, DIR_EGRESS, &f, 0, 0, &port);
		if (verdict == VERDICT_DENY)
			return TC_ACT_SHOT;
	}
	ek.addr = f.dst;
	struct endpoint *dst = bpf_map_lookup_elem(&sluice_endpts, &ek);
	if (dst) {
		dst_verdict = check(dst, set, DIR_INGRESS, &f, 0, 0, &dst_port);
		if (dst_verdict == VERDICT_DENY)
			return TC_ACT_SHOT;
	}
	/* The destination's L7 rules take precedence when both sides redirect. */
	if (dst_verdict == VERDICT_REDIRECT)
		return steer(skb, &f, dst_port, DIR_INGRESS, set);
	if (verdict == VERDICT_REDIRECT)
		return steer(skb, &f, port, DIR_EGRESS, set);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int sluice_tc_egress(struct __sk_buff *skb)
{
	struct flow f = {};
	int rc = parse(skb, &f);
	f.ifindex = skb->ifindex;
	if (rc > 0)
		return TC_ACT_UNSPEC;
	if (rc < 0)
		return TC_ACT_SHOT;
	__u8 set = live_set();
	struct endpoint_key ek = { .addr = f.dst, .set = set };
	struct endpoint *dst = bpf_map_lookup_elem(&sluice_endpts, &ek);
	if (!dst)
		return TC_ACT_UNSPEC;
	__u16 port = 0;
	/* A forwarded packet was judged at ingress and is found in conntrack; one
	 * without an ingress interface the node sends itself. */
	if (check(dst, set, DIR_INGRESS, &f, 1, skb->ingress_ifindex == 0, &port) == VERDICT_DENY)
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
