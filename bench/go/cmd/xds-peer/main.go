// xds-peer serves a directory of Envoy resources (proto3 JSON with "@type",
// one resource per *.json file, the files sluice's --resources reads) with
// go-control-plane's snapshot cache and ADS server, SotW and delta, on a unix
// socket. It is the baseline bench/xds-peer.mjs compares sluice against.
//
// Protocol on stdio: once serving it prints "ready"; each line read from stdin
// names a file to re-read, and the peer prints "set <unix ns>" right before the
// SetSnapshot that publishes it. EOF on stdin stops it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"time"
)

// Per-type versions: a CLA edit bumps only the endpoint version, so the
// unchanged clusters are not re-sent (what a careful go-control-plane user does).
type state struct {
	clusters  map[string]*cluster.Cluster
	endpoints map[string]*endpoint.ClusterLoadAssignment
	cdsVer    int
	edsVer    int
}

func readResource(path string) (types.Resource, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var a anypb.Any
	if err := protojson.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// apply returns which types changed.
func (s *state) apply(r types.Resource) (cds, eds bool, err error) {
	switch m := r.(type) {
	case *cluster.Cluster:
		s.clusters[m.Name] = m
		return true, false, nil
	case *endpoint.ClusterLoadAssignment:
		s.endpoints[m.ClusterName] = m
		return false, true, nil
	}
	return false, false, fmt.Errorf("unsupported resource %T", r)
}

func sorted[T types.Resource](m map[string]T) []types.Resource {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]types.Resource, len(names))
	for i, n := range names {
		out[i] = m[n]
	}
	return out
}

func (s *state) snapshot() *cachev3.Snapshot {
	snap := &cachev3.Snapshot{}
	snap.Resources[types.Cluster] = cachev3.NewResources(strconv.Itoa(s.cdsVer), sorted(s.clusters))
	snap.Resources[types.Endpoint] = cachev3.NewResources(strconv.Itoa(s.edsVer), sorted(s.endpoints))
	return snap
}

func main() {
	dir := flag.String("dir", "", "directory of *.json resources")
	socket := flag.String("socket", "", "unix socket to serve on")
	node := flag.String("node", "sluice-node", "node id the snapshot is set for")
	flag.Parse()
	if *dir == "" || *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: xds-peer -dir DIR -socket PATH [-node ID]")
		os.Exit(2)
	}
	ctx := context.Background()
	st := &state{clusters: map[string]*cluster.Cluster{}, endpoints: map[string]*endpoint.ClusterLoadAssignment{}, cdsVer: 1, edsVer: 1}
	files, err := filepath.Glob(filepath.Join(*dir, "*.json"))
	if err != nil {
		fatal(err)
	}
	for _, f := range files {
		r, err := readResource(f)
		if err != nil {
			fatal(err)
		}
		if _, _, err := st.apply(r); err != nil {
			fatal(fmt.Errorf("%s: %w", f, err))
		}
	}
	logger := log.LoggerFuncs{
		WarnFunc:  func(f string, a ...interface{}) { fmt.Fprintf(os.Stderr, "warn: "+f+"\n", a...) },
		ErrorFunc: func(f string, a ...interface{}) { fmt.Fprintf(os.Stderr, "error: "+f+"\n", a...) },
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, logger)
	if err := cache.SetSnapshot(ctx, *node, st.snapshot()); err != nil {
		fatal(err)
	}
	srv := serverv3.NewServer(ctx, cache, serverv3.CallbackFuncs{})
	g := grpc.NewServer(grpc.MaxConcurrentStreams(1<<20), grpc.MaxRecvMsgSize(16<<20))
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	_ = os.Remove(*socket)
	lis, err := net.Listen("unix", *socket)
	if err != nil {
		fatal(err)
	}
	go func() {
		if err := g.Serve(lis); err != nil {
			fatal(err)
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ready %d %d\n", len(st.clusters), len(st.endpoints))
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		path := strings.TrimSpace(in.Text())
		if path == "" {
			continue
		}
		r, err := readResource(path)
		if err != nil {
			fatal(err)
		}
		cds, eds, err := st.apply(r)
		if err != nil {
			fatal(err)
		}
		if cds {
			st.cdsVer++
		}
		if eds {
			st.edsVer++
		}
		snap := st.snapshot()
		fmt.Fprintf(out, "set %d\n", time.Now().UnixNano())
		out.Flush()
		if err := cache.SetSnapshot(ctx, *node, snap); err != nil {
			fatal(err)
		}
	}
	g.Stop()
	_ = os.Remove(*socket)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "xds-peer:", err)
	os.Exit(1)
}
