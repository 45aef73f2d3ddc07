package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleSASLHandshake picks the SASL mechanism of a connection. After v1 the
// client sends SaslAuthenticate; after v0 raw SASL tokens, outside Kafka's
// request framing (rawAuthenticate).
func handleSASLHandshake(_ context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	switch {
	case c.l.cfg.Auth == nil:
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = []string{}
	case c.authed || c.sasl != nil:
		resp.ErrorCode = codeIllegalSASLState
		resp.SupportedMechanisms = mechanisms
	case !slices.Contains(mechanisms, req.Mechanism):
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = mechanisms
		c.log.Warn("kafka client refused", "remote", c.nc.RemoteAddr().String(),
			"err", fmt.Errorf("SASL mechanism %q is not offered: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", req.Mechanism))
	case req.Mechanism == MechPlain && !c.secureTransport():
		// PLAIN sends the password as it is: only over TLS or on this machine.
		// SCRAM never sends it.
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = []string{MechSCRAMSHA256, MechSCRAMSHA512}
		c.log.Warn("kafka client refused", "remote", c.nc.RemoteAddr().String(),
			"err", errors.New("SASL PLAIN over plain text from another host would send the password in clear: turn TLS on for the node, or use SCRAM"))
	default:
		c.sasl = c.newSASLSession(req.Mechanism)
		c.rawSASL = req.Version == 0
		resp.SupportedMechanisms = mechanisms
	}
	return ready(resp)
}
