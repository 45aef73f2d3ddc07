package semantics_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

func TestBridgeValidate(t *testing.T) {
	t.Parallel()
	ingest := func(from, key string) semantics.Bridge {
		return semantics.Bridge{Name: "b", Kind: semantics.BridgeIngest, Topic: "orders", From: from, Key: key}.WithDefaults()
	}
	capture := func(from, key string) semantics.Bridge {
		return semantics.Bridge{Name: "b", Kind: semantics.BridgeIngest, Topic: "orders", From: from, Capture: true, Key: key}.WithDefaults()
	}
	stream := func(name, filter, key string) semantics.Bridge {
		return semantics.Bridge{Name: "b", Kind: semantics.BridgeIngest, Topic: "orders", Stream: name, Filter: filter, Key: key}.WithDefaults()
	}
	egress := func(to, mode string) semantics.Bridge {
		return semantics.Bridge{Name: "b", Kind: semantics.BridgeEgress, Topic: "orders", To: to, Mode: mode}.WithDefaults()
	}
	tests := []struct {
		name string
		b    semantics.Bridge
		want string // substring of the error; "" for valid
	}{
		{"ingest token", ingest("orders.*", "token:2"), ""},
		{"ingest full wildcard key beyond literal", ingest("orders.>", "token:2"), ""},
		{"ingest header", ingest("orders.created.*", "header:Order-Id"), ""},
		{"ingest subject", ingest("a.b", "subject"), ""},
		{"ingest none default", ingest("a.*", ""), ""},
		{"token beyond pattern", ingest("orders.*", "token:3"), "token:3 is beyond the pattern"},
		{"token beyond full wildcard", ingest("orders.>", "token:3"), "beyond the pattern"},
		{"token zero", ingest("orders.*", "token:0"), "from 1"},
		{"bad key", ingest("orders.*", "value"), "use token:N"},
		{"overlap qxd", ingest("qxd.t.orders.0.>", "none"), "overlaps qxd.>"},
		{"overlap qxd wildcard", ingest("*.t.>", "none"), "overlaps qxd.>"},
		{"overlap everything", ingest(">", "none"), "overlaps qxd.>"},
		{"overlap inbox", ingest("_INBOX.*", "none"), "_INBOX.>"},
		{"overlap js api", ingest("$JS.API.>", "none"), "$JS.>"},
		{"empty token", ingest("orders..x", "none"), "empty token"},
		{"gt not last", ingest("orders.>.x", "none"), "last token"},
		{"partial wildcard", ingest("orders.a*", "none"), "whole tokens"},
		{"space", ingest("orders. x", "none"), "space"},
		{"empty pattern", ingest("", "none"), "pattern is empty"},
		{"bad topic", semantics.Bridge{Name: "b", Kind: semantics.BridgeIngest, Topic: "a/b", From: "x"}.WithDefaults(), "character"},
		{"bad name", semantics.Bridge{Name: "a.b", Kind: semantics.BridgeIngest, Topic: "t", From: "x"}.WithDefaults(), "bridge name"},
		{"ingest with mode", semantics.Bridge{Name: "b", Kind: semantics.BridgeIngest, Topic: "t", From: "x", Mode: "fast"}.WithDefaults(), "takes no --to"},
		{"bad headers", func() semantics.Bridge { b := ingest("x", ""); b.Headers = "a b"; return b }(), "headers"},
		{"egress key", egress("orders.{key}", ""), ""},
		{"egress partition fast", egress("orders.p{partition}", "fast"), ""},
		{"egress offset", egress("o.{partition}.{offset}", "reliable"), ""},
		{"egress unknown placeholder", egress("orders.{value}", ""), "unknown placeholder {value}"},
		{"egress unclosed", egress("orders.{key", ""), "unclosed"},
		{"egress wildcard", egress("orders.*", ""), "wildcard"},
		{"egress into qxd", egress("qxd.{key}", ""), "overlaps qxd.>"},
		{"egress placeholder first", egress("{key}.x", ""), "overlaps qxd.>"},
		{"egress bad mode", egress("o.{key}", "slow"), "mode \"slow\""},
		{"egress fast start", func() semantics.Bridge { b := egress("o.{key}", "fast"); b.Start = "end"; return b }(), "reliable bridges only"},
		{"no kind", semantics.Bridge{Name: "b", Topic: "t"}, "give --from PATTERN"},
		{"capture", capture("shop.*", "token:2"), ""},
		{"capture token beyond pattern", capture("shop.*", "token:3"), "token:3 is beyond the pattern"},
		{"capture over qxd", capture("qxd.t.orders.>", ""), "overlaps qxd.>"},
		{"capture without pattern", capture("", ""), "--capture needs --from"},
		{"capture with filter", func() semantics.Bridge { b := capture("shop.*", ""); b.Filter = "shop.x"; return b }(), "--filter applies to --from-stream"},
		{"capture with another stream", func() semantics.Bridge {
			b := semantics.Bridge{Name: "b", Kind: semantics.BridgeIngest, Topic: "orders", From: "shop.*", Capture: true, Stream: "ORDERS"}
			return b.WithDefaults()
		}(), "creates its own stream"},
		{"stream", stream("ORDERS", "", "token:9"), ""}, // the node checks the token against the stream's subjects
		{"stream filter", stream("ORDERS", "ord.eu.*", "token:3"), ""},
		{"stream filter token beyond", stream("ORDERS", "ord.*", "token:3"), "token:3 is beyond the pattern \"ord.*\""},
		{"stream filter over qxd", stream("ORDERS", "qxd.>", ""), "overlaps qxd.>"},
		{"stream bad name", stream("OR.DERS", "", ""), "stream name \"OR.DERS\""},
		{"stream of a capture bridge", stream("QXD_CAPTURE_x", "", ""), "capture bridge's stream"},
		{"stream and pattern", func() semantics.Bridge { b := stream("ORDERS", "", ""); b.From = "x.*"; return b }(), "not both"},
		{"stream start end", func() semantics.Bridge { b := stream("ORDERS", "", ""); b.Start = "end"; return b }(), ""},
		{"stream bad start", func() semantics.Bridge { b := stream("ORDERS", "", ""); b.Start = "middle"; return b }(), "start \"middle\""},
		{"core start", func() semantics.Bridge { b := ingest("x.*", ""); b.Start = "end"; return b }(), "--start applies to bridges reading a stream"},
		{"filter without stream", func() semantics.Bridge { b := ingest("x.*", ""); b.Filter = "x.y"; return b }(), "--filter applies to --from-stream"},
		{"egress with stream", func() semantics.Bridge { b := egress("o.{key}", ""); b.Stream = "ORDERS"; return b }(), "takes no --from"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate(%+v) = %v, want nil", tc.b, err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate(%+v) = nil, want an error with %q", tc.b, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate(%+v) = %v, want it to contain %q", tc.b, err, tc.want)
			}
			var se *semantics.Error
			if err != nil && !errors.As(err, &se) {
				t.Errorf("error %v carries no qxd error code", err)
			}
		})
	}
}

// TestBridgeStreamDefaults: a capture bridge reads the stream named after it, from
// its start; a definition stored before stream bridges existed still reads as a core
// NATS bridge.
func TestBridgeStreamDefaults(t *testing.T) {
	t.Parallel()
	b := semantics.Bridge{Name: "pay-js", Kind: semantics.BridgeIngest, Topic: "pay", From: "pay.*", Capture: true}.WithDefaults()
	if b.Stream != "QXD_CAPTURE_pay-js" || b.Start != semantics.BridgeStartStart || b.Key != "none" {
		t.Errorf("capture defaults: %+v", b)
	}
	var old semantics.Bridge
	if err := json.Unmarshal([]byte(`{"name":"in","kind":"ingest","topic":"t","from":"a.*","key":"token:2","headers":"all"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old = old.WithDefaults(); old.Stream != "" || old.Capture || old.Start != "" || old.Validate() != nil {
		t.Errorf("stored core definition reads as %+v (%v)", old, old.Validate())
	}
	out, _ := json.Marshal(old)
	if strings.Contains(string(out), "stream") || strings.Contains(string(out), "capture") {
		t.Errorf("core definition stored as %s: new fields must be omitted", out)
	}
}
