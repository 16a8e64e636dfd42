// xds-load simulates M Envoy proxies against one ADS server: each opens its own
// gRPC connection and stream, asks for clusters, then for the endpoints those
// clusters name, and ACKs every response as Envoy does (SotW: version_info and
// response_nonce; delta: response_nonce). All proxies share one node id, as a
// fleet of identically configured Envoys does, and as the two servers compared
// are both given.
//
// Changes are recognised by content: the bench rewrites a ClusterLoadAssignment
// with its endpoint port set to 20000+SEQ; the moment a proxy receives that
// response (before decoding it) is that proxy's arrival time of change SEQ.
//
// Output, one JSON object per line on stdout:
//
//	{"event":"synced","initial_ms":[...]}          every proxy holds all N clusters and N CLAs and has ACKed them
//	{"event":"seen","seq":S,"recv_ns":[...]}       every proxy has received change S (unix ns, per proxy)
//	{"event":"error","proxy":P,"error":"..."}      a proxy's stream broke; it reopens it
//	{"event":"done","errors":[...]}                on EOF on stdin
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	cdsType    = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	edsType    = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	changeBase = 20000
)

type event struct {
	proxy   int
	synced  time.Duration
	seq     int
	at      time.Time
	err     error
	isSync  bool
	isError bool
}

type proxy struct {
	id     int
	n      int
	node   *core.Node
	events chan<- event
	seen   map[int]bool
	// CLA encodings already looked at: a SotW response repeats every unchanged
	// CLA, and skipping those keeps the client from being the bottleneck.
	known  map[string]struct{}
	synced bool
	opened time.Time
}

// changeSeq reads the change number a CLA carries, 0 for an unchanged one.
func changeSeq(a *anypb.Any) (int, error) {
	var cla endpoint.ClusterLoadAssignment
	if err := proto.Unmarshal(a.Value, &cla); err != nil {
		return 0, err
	}
	for _, e := range cla.Endpoints {
		for _, lb := range e.LbEndpoints {
			if p := int(lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()); p >= changeBase {
				return p - changeBase, nil
			}
		}
	}
	return 0, nil
}

func (p *proxy) noteCLA(a *anypb.Any, at time.Time) error {
	if _, ok := p.known[string(a.Value)]; ok {
		return nil
	}
	p.known[string(a.Value)] = struct{}{}
	seq, err := changeSeq(a)
	if err != nil {
		return err
	}
	if seq > 0 && !p.seen[seq] {
		p.seen[seq] = true
		p.events <- event{proxy: p.id, seq: seq, at: at}
	}
	return nil
}

func (p *proxy) checkSynced(clusters, clas int) {
	if !p.synced && clusters >= p.n && clas >= p.n {
		p.synced = true
		p.events <- event{proxy: p.id, synced: time.Since(p.opened), isSync: true}
	}
}

func clusterNames(res []*anypb.Any) ([]string, error) {
	names := make([]string, 0, len(res))
	for _, a := range res {
		var c cluster.Cluster
		if err := proto.Unmarshal(a.Value, &c); err != nil {
			return nil, err
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.Name
		}
		names = append(names, name)
	}
	return names, nil
}

func (p *proxy) runSotw(ctx context.Context, client discovery.AggregatedDiscoveryServiceClient) error {
	s, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&discovery.DiscoveryRequest{Node: p.node, TypeUrl: cdsType}); err != nil {
		return err
	}
	var edsNames []string
	var edsVersion, edsNonce string
	clusters, clas := 0, 0
	for {
		res, err := s.Recv()
		if err != nil {
			return err
		}
		at := time.Now()
		switch res.TypeUrl {
		case cdsType:
			names, err := clusterNames(res.Resources)
			if err != nil {
				return err
			}
			clusters = len(names)
			// Like Envoy: the warming clusters' endpoint subscription goes out before the CDS ACK.
			if !sameList(names, edsNames) {
				edsNames = names
				if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: edsType, ResourceNames: edsNames, VersionInfo: edsVersion, ResponseNonce: edsNonce}); err != nil {
					return err
				}
			}
			if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: cdsType, VersionInfo: res.VersionInfo, ResponseNonce: res.Nonce}); err != nil {
				return err
			}
		case edsType:
			for _, a := range res.Resources {
				if err := p.noteCLA(a, at); err != nil {
					return err
				}
			}
			clas = len(res.Resources)
			edsVersion, edsNonce = res.VersionInfo, res.Nonce
			if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: edsType, ResourceNames: edsNames, VersionInfo: res.VersionInfo, ResponseNonce: res.Nonce}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected type %s", res.TypeUrl)
		}
		p.checkSynced(clusters, clas)
	}
}

func (p *proxy) runDelta(ctx context.Context, client discovery.AggregatedDiscoveryServiceClient) error {
	s, err := client.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&discovery.DeltaDiscoveryRequest{Node: p.node, TypeUrl: cdsType}); err != nil {
		return err
	}
	clusters := map[string]bool{}
	clas := map[string]bool{}
	subscribed := map[string]bool{}
	for {
		res, err := s.Recv()
		if err != nil {
			return err
		}
		at := time.Now()
		switch res.TypeUrl {
		case cdsType:
			var fresh []string
			for _, r := range res.Resources {
				clusters[r.Name] = true
				names, err := clusterNames([]*anypb.Any{r.Resource})
				if err != nil {
					return err
				}
				if !subscribed[names[0]] {
					subscribed[names[0]] = true
					fresh = append(fresh, names[0])
				}
			}
			for _, n := range res.RemovedResources {
				delete(clusters, n)
			}
			if len(fresh) > 0 {
				if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: edsType, ResourceNamesSubscribe: fresh}); err != nil {
					return err
				}
			}
			if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: cdsType, ResponseNonce: res.Nonce}); err != nil {
				return err
			}
		case edsType:
			for _, r := range res.Resources {
				clas[r.Name] = true
				if err := p.noteCLA(r.Resource, at); err != nil {
					return err
				}
			}
			for _, n := range res.RemovedResources {
				delete(clas, n)
			}
			if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: res.Nonce}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected type %s", res.TypeUrl)
		}
		p.checkSynced(len(clusters), len(clas))
	}
}

func sameList(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func main() {
	addr := flag.String("addr", "", "server address, e.g. unix:///tmp/x/xds.sock")
	m := flag.Int("proxies", 1, "proxies (one connection and stream each)")
	n := flag.Int("n", 1, "clusters (and as many CLAs) every proxy must end up holding")
	mode := flag.String("mode", "sotw", "sotw or delta")
	nodeID := flag.String("node", "sluice-node", "node id every proxy sends")
	flag.Parse()
	if *addr == "" || (*mode != "sotw" && *mode != "delta") {
		fmt.Fprintln(os.Stderr, "usage: xds-load -addr unix:///PATH -proxies M -n N -mode sotw|delta")
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan event, 4096)
	node := &core.Node{Id: *nodeID, Cluster: "bench", UserAgentName: "xds-load"}
	var wg sync.WaitGroup
	for i := 0; i < *m; i++ {
		// Like Envoy, a proxy whose connection fails (a full accept queue, say)
		// retries with backoff (Envoy's base interval: 500 ms) rather than giving up.
		backoffCfg := backoff.DefaultConfig
		backoffCfg.BaseDelay = 500 * time.Millisecond
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoffCfg}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.WaitForReady(true)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "xds-load:", err)
			os.Exit(1)
		}
		p := &proxy{id: i, n: *n, node: node, events: events, seen: map[int]bool{}, known: map[string]struct{}{}}
		client := discovery.NewAggregatedDiscoveryServiceClient(conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			// Initial sync counts from the first stream's opening, through any reopening.
			p.opened = time.Now()
			// A broken stream is reopened, as Envoy does; the bench reports how often.
			for {
				var err error
				if *mode == "sotw" {
					err = p.runSotw(ctx, client)
				} else {
					err = p.runDelta(ctx, client)
				}
				if ctx.Err() != nil {
					return
				}
				events <- event{proxy: p.id, err: err, isError: true}
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}
	go func() {
		// EOF on stdin ends the run.
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		cancel()
	}()

	out := json.NewEncoder(os.Stdout)
	initial := make([]float64, *m)
	synced := 0
	arrivals := map[int][]int64{}
	counts := map[int]int{}
	var errs []string
	for {
		select {
		case <-ctx.Done():
			go func() {
				for range events {
				}
			}()
			wg.Wait()
			_ = out.Encode(map[string]any{"event": "done", "errors": errs})
			return
		case e := <-events:
			switch {
			case e.isError:
				errs = append(errs, fmt.Sprintf("proxy %d: %v", e.proxy, e.err))
				_ = out.Encode(map[string]any{"event": "error", "proxy": e.proxy, "error": e.err.Error()})
			case e.isSync:
				initial[e.proxy] = float64(e.synced.Microseconds()) / 1000
				if synced++; synced == *m {
					_ = out.Encode(map[string]any{"event": "synced", "initial_ms": initial})
				}
			default:
				if arrivals[e.seq] == nil {
					arrivals[e.seq] = make([]int64, *m)
				}
				arrivals[e.seq][e.proxy] = e.at.UnixNano()
				if counts[e.seq]++; counts[e.seq] == *m {
					_ = out.Encode(map[string]any{"event": "seen", "seq": e.seq, "recv_ns": arrivals[e.seq]})
					delete(arrivals, e.seq)
				}
			}
		}
	}
}
