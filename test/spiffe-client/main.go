// A SPIFFE workload as go-spiffe writes one: it fetches its X.509-SVID and a
// JWT-SVID from the Workload API at -addr and checks both with go-spiffe's own
// verifiers, so the test proves interoperability rather than our reading of
// the spec. Prints {"spiffeId","serial","jwtSub"} on success; on failure
// prints {"error","code"} (the gRPC status code) and exits 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/status"
)

type result struct {
	SpiffeID string `json:"spiffeId"`
	Serial   string `json:"serial"`
	JwtSub   string `json:"jwtSub"`
}

func fail(step string, err error) {
	out := map[string]string{"step": step, "error": err.Error(), "code": "Unknown"}
	// FromError also finds a status that go-spiffe wrapped in its own error.
	if s, ok := status.FromError(err); ok {
		out["code"] = s.Code().String()
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	os.Exit(1)
}

func main() {
	addr := flag.String("addr", "", "Workload API address, unix:///path")
	audience := flag.String("audience", "", "JWT-SVID audience")
	jwtID := flag.String("jwt-spiffe-id", "", "ask for a JWT-SVID of this SPIFFE ID (default: our own)")
	flag.Parse()
	if *addr == "" || *audience == "" {
		fmt.Fprintln(os.Stderr, "usage: spiffe-client -addr unix:///path -audience AUD [-jwt-spiffe-id ID]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(*addr))
	if err != nil {
		fail("dial", err)
	}
	defer client.Close()

	x509Ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		fail("FetchX509Context", err)
	}
	svid := x509Ctx.DefaultSVID()
	id, _, err := x509svid.Verify(svid.Certificates, x509Ctx.Bundles)
	if err != nil {
		fail("x509svid.Verify", err)
	}
	if id != svid.ID {
		fail("x509svid.Verify", fmt.Errorf("verified ID %s differs from the SVID's %s", id, svid.ID))
	}

	params := jwtsvid.Params{Audience: *audience}
	if *jwtID != "" {
		if params.Subject, err = spiffeid.FromString(*jwtID); err != nil {
			fail("jwt-spiffe-id", err)
		}
	}
	jwt, err := client.FetchJWTSVID(ctx, params)
	if err != nil {
		fail("FetchJWTSVID", err)
	}
	jwtBundles, err := client.FetchJWTBundles(ctx)
	if err != nil {
		fail("FetchJWTBundles", err)
	}
	parsed, err := jwtsvid.ParseAndValidate(jwt.Marshal(), jwtBundles, []string{*audience})
	if err != nil {
		fail("jwtsvid.ParseAndValidate", err)
	}

	b, _ := json.Marshal(result{SpiffeID: id.String(), Serial: svid.Certificates[0].SerialNumber.Text(16), JwtSub: parsed.ID.String()})
	fmt.Println(string(b))
}
