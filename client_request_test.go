package qxd_test

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestAdminReadAfterConnectionLoss: an admin read written to a connection just
// before it is lost (its node stopped, and the client had not noticed yet) is
// asked again once the client has reconnected to another node, and answered then,
// rather than waiting out its whole timeout for an answer that cannot come.
func TestAdminReadAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 60*time.Second)
	r, c := relayedClient(ctx, t)
	qxdtest.CreateTopic(t, c, "lost", qxd.TopicConfig{})

	r.silence()
	time.AfterFunc(time.Second, r.cut)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	md, err := c.Admin().Metadata(rctx)
	if err != nil {
		t.Fatalf("metadata asked just before the connection was lost: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
	if len(md.Topics) != 1 || c.Conn().ConnectedAddr() == r.addr() {
		t.Errorf("metadata %+v from %s", md, c.Conn().ConnectedAddr())
	}
}
