package qxd_test

import (
	"fmt"

	"github.com/qxd-io/qxd"
)

// Carry a W3C trace context from a producer to a consumer in a record's headers,
// and pass a child span on with the records a consumer produces in turn.
func ExampleSetTraceParent() {
	parent, _ := qxd.ParseTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := &qxd.Record{Topic: "orders", Value: []byte("v")}
	qxd.SetTraceParent(rec, parent)
	fmt.Println(rec.Headers[0].Key, string(rec.Headers[0].Value))

	// On the consuming side (rec as Poll returned it):
	got, ok := qxd.TraceParentOf(rec)
	child := got.Child()
	fmt.Println(ok, child.TraceID == parent.TraceID, child.SpanID != parent.SpanID, child.Sampled())
	// Output:
	// traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// true true true true
}
