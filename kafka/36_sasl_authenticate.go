package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleSASLAuthenticate takes the next token of the SASL exchange a SaslHandshake
// started (one for PLAIN, two for SCRAM), in the read loop, so that the requests
// after it see the outcome. A refusal is answered, then the connection is closed,
// as Kafka does.
func handleSASLAuthenticate(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if c.l.cfg.Auth == nil || c.authed || c.sasl == nil {
		resp.ErrorCode = codeIllegalSASLState
		msg := "SaslAuthenticate must follow a SaslHandshake on a listener with SASL, once"
		resp.ErrorMessage = &msg
		c.closing = fmt.Errorf("%w: %s", errSASLFailed, msg)
		return ready(resp)
	}
	reply, err := c.saslStep(ctx, req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = code(err), message(err)
		c.closing = fmt.Errorf("%w: %w", errSASLFailed, err)
		return ready(resp)
	}
	resp.SASLAuthBytes = reply
	return ready(resp)
}
