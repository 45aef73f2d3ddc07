package qxd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestBridgeStreamKeepsOnlyUserHeaders: a bridge reading a stream carries the
// publisher's headers and its Nats-Msg-Id into each record, but none of the Nats-*
// headers JetStream adds or acts on: not the pin id of the bridge's priority group,
// not a publisher's expectations, not a message TTL.
func TestBridgeStreamKeepsOnlyUserHeaders(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "hdr", qxd.TopicConfig{})
	js, err := jetstream.New(plainConn(t, n.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HDR", Subjects: []string{"hdr.>"}, AllowMsgTTL: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin().CreateBridge(ctx, qxd.StreamBridge("hdr-in", "HDR", "hdr", "none")); err != nil {
		t.Fatal(err)
	}
	const msgs = 5
	for i := range msgs {
		m := nats.NewMsg("hdr.x")
		m.Data = []byte{byte('a' + i)}
		m.Header.Set("Trace", "t-1")
		m.Header.Add("Tag", "one")
		m.Header.Add("Tag", "two")
		m.Header.Set("nats-lower-case", "JetStream's too")
		m.Header.Set("Natsy", "mine")
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID("id-"+string(m.Data)),
			jetstream.WithExpectStream("HDR"), jetstream.WithMsgTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range readTopic(t, c, "hdr", 1, msgs) {
		got := map[string][]string{}
		for _, h := range r.Headers {
			got[h.Key] = append(got[h.Key], string(h.Value))
		}
		if want := "id-" + string(r.Value); strings.Join(got["Nats-Msg-Id"], ",") != want {
			t.Errorf("record %s: Nats-Msg-Id %q, want %q", r.Value, got["Nats-Msg-Id"], want)
		}
		if strings.Join(got["Trace"], ",") != "t-1" || strings.Join(got["Tag"], ",") != "one,two" || strings.Join(got["Natsy"], ",") != "mine" {
			t.Errorf("record %s: user headers %v, want Trace t-1, Tag one,two, Natsy mine", r.Value, got)
		}
		for k := range got {
			if strings.HasPrefix(strings.ToLower(k), "nats-") && k != "Nats-Msg-Id" {
				t.Errorf("record %s: JetStream's header %s = %q was copied into the record", r.Value, k, got[k])
			}
		}
	}
}
