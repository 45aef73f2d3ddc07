package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary request frames to the decoder: it must return
// a request or an error, never panic. Seeds are valid requests of every advertised
// API and version, and of the old versions refused (tooOld).
func FuzzDecodeRequest(f *testing.F) {
	for key, a := range apis {
		oldest := a.min
		if o, ok := refusedOld[key]; ok {
			oldest = o.oldest
		}
		for v := oldest; v <= a.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			b := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, 7)
			f.Add(b[4:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := parseHeader(b)
		if err != nil {
			return
		}
		req, err := decodeBody(h, body)
		if err != nil {
			return
		}
		// A decoded request encodes again (the handlers read its fields), and its
		// answer frames.
		_ = req.AppendTo(nil)
		_ = frame(h, req.ResponseKind())
	})
}
