package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleSASLHandshake picks the SASL mechanism of a connection. After v1 the
// client sends SaslAuthenticate; after v0 a raw SASL token, outside Kafka's
// request framing (rawAuthenticate).
func handleSASLHandshake(_ context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	switch {
	case c.l.cfg.Auth == nil:
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = []string{}
	case c.authed || c.mech != "":
		resp.ErrorCode = codeIllegalSASLState
		resp.SupportedMechanisms = []string{mechPlain}
	case req.Mechanism != mechPlain:
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = []string{mechPlain}
		c.log.Warn("kafka client refused", "remote", c.nc.RemoteAddr().String(),
			"err", fmt.Errorf("SASL mechanism %q is not offered: use PLAIN (SCRAM needs SCRAM credentials, and qxd stores bcrypt hashes)", req.Mechanism))
	case !c.secureTransport():
		// PLAIN sends the password as it is: only over TLS or on this machine.
		resp.ErrorCode = codeUnsupportedSASLMechanism
		resp.SupportedMechanisms = []string{}
		c.log.Warn("kafka client refused", "remote", c.nc.RemoteAddr().String(),
			"err", fmt.Errorf("SASL PLAIN over plain text from another host would send the password in clear: turn TLS on for the node"))
	default:
		c.mech = mechPlain
		c.rawSASL = req.Version == 0
		resp.SupportedMechanisms = []string{mechPlain}
	}
	return ready(resp)
}
