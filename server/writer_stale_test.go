package server

import (
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestBehindLeader checks the writer's reading of JetStream's wrong-last-sequence
// answers, built by nats-server itself: one counting fewer messages than the
// writer knows the log holds comes from a former leader (a cut-off node back
// from the cut), and the writer awaits the leader's answer; any other is the
// leader's and fails the appends in flight.
func TestBehindLeader(t *testing.T) {
	wrong := func(seq uint64) *natsserver.ApiError { return natsserver.NewJSStreamWrongLastSequenceError(seq) }
	other := natsserver.NewJSStreamNotFoundError()
	for _, tc := range []struct {
		name  string
		err   *natsserver.ApiError
		known uint64
		want  bool
	}{
		{"former leader's count below the known log", wrong(148), 3430, true},
		{"count equal to the known log", wrong(3430), 3430, false},
		{"count past the known log (another writer appended)", wrong(3500), 3430, false},
		{"nothing known yet", wrong(0), 0, false},
		{"another error", other, 3430, false},
		{"the constant form without a count", natsserver.NewJSStreamWrongLastSequenceConstantError(), 3430, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := behindLeader(int(tc.err.ErrCode), tc.err.Description, tc.known); got != tc.want {
				t.Errorf("behindLeader(%d, %q, %d) = %v, want %v", tc.err.ErrCode, tc.err.Description, tc.known, got, tc.want)
			}
		})
	}
}
