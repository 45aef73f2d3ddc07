package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleApiVersions(_ context.Context, c *conn, req kmsg.Request) func() kmsg.Response {
	return ready(apiVersionsResponse(req.GetVersion(), c.l.cfg.Auth != nil))
}

// apiVersionsResponse lists the implemented APIs and their versions; the SASL
// APIs only on a listener with SASL.
func apiVersionsResponse(version int16, sasl bool) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		if !sasl && (k == kmsg.SASLHandshake.Int16() || k == kmsg.SASLAuthenticate.Int16()) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := apis[k]
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: a.min, MaxVersion: a.max})
	}
	return resp
}
