package kafka

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Observer sees each request the listener answered (Config.Observer), for
// metrics. It is called from the connections' goroutines and must return quickly.
type Observer interface {
	// Answered is called once per answered request: api is Kafka's name of the
	// request ("Produce", "Fetch"), code the first error code of its answer (0:
	// none; a partial failure counts as its first error).
	Answered(api string, code int16)
}

// observe reports the answer to a request with key to the listener's Observer.
func (l *Listener) observe(key int16, resp kmsg.Response) {
	if l.cfg.Observer == nil || resp == nil {
		return
	}
	l.cfg.Observer.Answered(kmsg.NameForKey(key), FirstErrorCode(resp))
}

// FetchSessionStats are a listener's fetch session (KIP-227) figures, as Kafka's
// FetchSessionCache metrics give them.
type FetchSessionStats struct {
	// Sessions is the number of sessions held (NumIncrementalFetchSessions).
	Sessions int
	// Partitions is the number of partitions the sessions hold, summed
	// (NumIncrementalFetchPartitionsCached).
	Partitions int
	// Evictions counts the sessions evicted to make room for new ones since the
	// listener started (IncrementalFetchSessionEvictionsPerSec's count).
	Evictions uint64
}

// FetchSessionStats reads the listener's fetch session figures.
func (l *Listener) FetchSessionStats() FetchSessionStats {
	return l.sessions.stats()
}

// FirstErrorCode is the first non-zero ErrorCode in resp, at its top or in its
// topics and partitions, in the order of the answer; 0 when there is none.
func FirstErrorCode(resp kmsg.Response) int16 {
	return firstCode(reflect.ValueOf(resp))
}

var int16Type = reflect.TypeFor[int16]()

func firstCode(v reflect.Value) int16 {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return firstCode(v.Elem())
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Name == "ErrorCode" && f.Type == int16Type {
				if c := int16(v.Field(i).Int()); c != 0 {
					return c
				}
				continue
			}
			if k := f.Type.Kind(); k == reflect.Struct || k == reflect.Slice || k == reflect.Pointer {
				if c := firstCode(v.Field(i)); c != 0 {
					return c
				}
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return 0 // bytes: records, metadata
		}
		for i := range v.Len() {
			if c := firstCode(v.Index(i)); c != 0 {
				return c
			}
		}
	}
	return 0
}
