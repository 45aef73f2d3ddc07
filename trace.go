// Trace context in record headers: W3C Trace Context (traceparent, tracestate)
// carried in a record's headers, as Kafka's OpenTelemetry instrumentations carry
// it, without a tracing library.

package qxd

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// TraceParentHeader and TraceStateHeader are the record header keys of W3C Trace
// Context, as OpenTelemetry's propagators name them.
const (
	TraceParentHeader = "traceparent"
	TraceStateHeader  = "tracestate"
)

// TraceParent is a W3C traceparent: the trace a record belongs to, the span that
// produced it, and the trace flags (bit 0: sampled).
type TraceParent struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// NewTraceParent starts a trace: random trace and span ids, sampled.
func NewTraceParent() TraceParent {
	var t TraceParent
	_, _ = rand.Read(t.TraceID[:])
	_, _ = rand.Read(t.SpanID[:])
	t.Flags = 1
	return t
}

// Child returns a traceparent for a new span of the same trace: a consumer that
// handles a record and produces others passes its child on.
func (t TraceParent) Child() TraceParent {
	_, _ = rand.Read(t.SpanID[:])
	return t
}

// Sampled reports the sampled flag.
func (t TraceParent) Sampled() bool { return t.Flags&1 != 0 }

// String is the header value: version 00, "00-<trace id>-<span id>-<flags>".
func (t TraceParent) String() string {
	return fmt.Sprintf("00-%s-%s-%02x", hex.EncodeToString(t.TraceID[:]), hex.EncodeToString(t.SpanID[:]), t.Flags)
}

// ParseTraceParent parses a traceparent header value. It accepts later versions'
// values by their first four fields, as the W3C specification asks, and refuses
// all-zero ids and version ff.
func ParseTraceParent(s string) (TraceParent, error) {
	var t TraceParent
	parts := strings.Split(s, "-")
	bad := func(why string) (TraceParent, error) {
		return TraceParent{}, fmt.Errorf("traceparent %q: %s (want 00-<32 hex>-<16 hex>-<2 hex>)", s, why)
	}
	if len(parts) < 4 || len(parts[0]) != 2 || (parts[0] == "00" && len(parts) != 4) {
		return bad("not four dash-separated fields")
	}
	if parts[0] == "ff" || strings.ToLower(parts[0]) != parts[0] {
		return bad("invalid version")
	}
	var flags [1]byte
	for _, f := range []struct {
		hex string
		dst []byte
	}{{parts[1], t.TraceID[:]}, {parts[2], t.SpanID[:]}, {parts[3], flags[:]}} {
		if len(f.hex) != 2*len(f.dst) || strings.ToLower(f.hex) != f.hex {
			return bad("a field has the wrong length or upper-case hex")
		}
		if _, err := hex.Decode(f.dst, []byte(f.hex)); err != nil {
			return bad("a field is not hex")
		}
	}
	if t.TraceID == [16]byte{} || t.SpanID == [8]byte{} {
		return bad("all-zero trace or span id")
	}
	t.Flags = flags[0]
	return t, nil
}

// SetTraceParent sets r's traceparent header to t, replacing one it has.
func SetTraceParent(r *Record, t TraceParent) {
	HeaderCarrier{r}.Set(TraceParentHeader, t.String())
}

// TraceParentOf returns r's traceparent, and whether it has a valid one.
func TraceParentOf(r *Record) (TraceParent, bool) {
	v := HeaderCarrier{r}.Get(TraceParentHeader)
	if v == "" {
		return TraceParent{}, false
	}
	t, err := ParseTraceParent(v)
	return t, err == nil
}

// HeaderCarrier carries text propagation fields (traceparent, tracestate,
// baggage) in a record's headers. Its Get, Set and Keys are those of
// OpenTelemetry's propagation.TextMapCarrier, so an OpenTelemetry propagator
// injects into and extracts from a record directly:
//
//	otel.GetTextMapPropagator().Inject(ctx, qxd.HeaderCarrier{R: rec})
type HeaderCarrier struct{ R *Record }

// Get returns the value of the first header called key, or "".
func (c HeaderCarrier) Get(key string) string {
	for _, h := range c.R.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set sets the header called key to value, replacing every header of that key.
func (c HeaderCarrier) Set(key, value string) {
	hs := c.R.Headers[:0:0]
	for _, h := range c.R.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	c.R.Headers = append(hs, Header{Key: key, Value: []byte(value)})
}

// Keys lists the record's header keys.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c.R.Headers))
	for _, h := range c.R.Headers {
		out = append(out, h.Key)
	}
	return out
}
