package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleSASLAuthenticate checks a connection's SASL PLAIN credentials, in the read
// loop, so that the requests after it see the outcome. A refused connection stays
// unauthenticated: the client may try again or close it.
func handleSASLAuthenticate(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if c.l.cfg.Auth == nil || c.authed || c.mech != mechPlain {
		resp.ErrorCode = codeIllegalSASLState
		msg := "SaslAuthenticate must follow a SaslHandshake for PLAIN on a listener with SASL, once"
		resp.ErrorMessage = &msg
		return ready(resp)
	}
	c.mech = ""
	if err := c.authenticatePlain(ctx, req.SASLAuthBytes); err != nil {
		resp.ErrorCode, resp.ErrorMessage = code(err), message(err)
		return ready(resp)
	}
	c.authed = true
	return ready(resp)
}
