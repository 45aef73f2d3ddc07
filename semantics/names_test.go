package semantics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

func TestValidateTopicName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"orders.eu-west_1", true},
		{"a", true},
		{"..a", true},
		{strings.Repeat("x", semantics.MaxTopicNameLen), true},
		{strings.Repeat("x", semantics.MaxTopicNameLen+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a b", false},
		{"a/b", false},
		{"a*", false},
		{"a>", false},
		{"é", false},
		{"a=b", false},
	}
	for _, tc := range cases {
		err := semantics.ValidateTopicName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTopicName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, semantics.ErrInvalidTopic) {
			t.Errorf("ValidateTopicName(%q) error %v is not ErrInvalidTopic", tc.name, err)
		}
	}
}

// A name with a character outside [a-zA-Z0-9._-] is refused with that character,
// as the person typed it, and its position counted in characters, not bytes.
func TestValidateTopicNameNamesTheCharacter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, want string
	}{
		{"grün", `topic name "grün" has the character 'ü' (U+00FC) at position 3: use only [a-zA-Z0-9._-]`},
		{"ö", `topic name "ö" has the character 'ö' (U+00F6) at position 1: use only [a-zA-Z0-9._-]`},
		{"日本.orders", `topic name "日本.orders" has the character '日' (U+65E5) at position 1: use only [a-zA-Z0-9._-]`},
		{"a b", `topic name "a b" has the character ' ' (U+0020) at position 2: use only [a-zA-Z0-9._-]`},
		{"ok\x00", `topic name "ok\x00" has the character '\x00' (U+0000) at position 3: use only [a-zA-Z0-9._-]`},
		{"ab\xff", `topic name "ab\xff" has the byte 0xff at position 3, which is not UTF-8: use only [a-zA-Z0-9._-]`},
		// Over the length limit in bytes but not in characters: the character is what is wrong.
		{strings.Repeat("ö", 200), `has the character 'ö' (U+00F6) at position 1`},
	}
	for _, tc := range cases {
		err := semantics.ValidateTopicName(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateTopicName(%q) = %v, want an error containing %s", tc.name, err, tc.want)
		}
	}
}

func TestNameMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		topic  string
		p      int32
		stream string
		batch  string
		writer string
	}{
		{"orders", 0, "QXD_orders_0", "qxd.t.orders.0.b", "qxd.w.orders.0"},
		{"orders.eu", 11, "QXD_orders=eu_11", "qxd.t.orders=eu.11.b", "qxd.w.orders=eu.11"},
		{"a_1", 2, "QXD_a_1_2", "qxd.t.a_1.2.b", "qxd.w.a_1.2"},
		{"..x", 3, "QXD_==x_3", "qxd.t.==x.3.b", "qxd.w.==x.3"},
	}
	for _, tc := range cases {
		if got := semantics.StreamName(tc.topic, tc.p); got != tc.stream {
			t.Errorf("StreamName(%q, %d) = %q, want %q", tc.topic, tc.p, got, tc.stream)
		}
		if got := semantics.BatchSubject(tc.topic, tc.p); got != tc.batch {
			t.Errorf("BatchSubject = %q, want %q", got, tc.batch)
		}
		if got := semantics.WriterSubject(tc.topic, tc.p); got != tc.writer {
			t.Errorf("WriterSubject = %q, want %q", got, tc.writer)
		}
		topic, p, ok := semantics.ParseStreamName(tc.stream)
		if !ok || topic != tc.topic || p != tc.p {
			t.Errorf("ParseStreamName(%q) = %q %d %v", tc.stream, topic, p, ok)
		}
	}
	for _, s := range []string{"KV_qxd_topics", "QXD_", "QXD__1", "QXD_a_01", "QXD_a_-1", "QXD_a b_1", "QXD_a"} {
		if topic, p, ok := semantics.ParseStreamName(s); ok {
			t.Errorf("ParseStreamName(%q) = %q %d, want not a qxd stream", s, topic, p)
		}
	}
	long := strings.Repeat("x", semantics.MaxTopicNameLen)
	if n := len(semantics.StreamName(long, semantics.MaxPartitions-1)); n > 255 {
		t.Errorf("longest stream name is %d characters, JetStream allows 255", n)
	}
}

func TestKeySubject(t *testing.T) {
	t.Parallel()
	a := semantics.KeySubject("t", 0, []byte("alice"))
	if a != "qxd.t.t.0.k.YWxpY2U" {
		t.Errorf("KeySubject alice = %q", a)
	}
	if e := semantics.KeySubject("t", 0, []byte{}); e != "qxd.t.t.0.e" {
		t.Errorf("empty key subject %q", e)
	}
	long1 := semantics.KeySubject("t", 0, []byte(strings.Repeat("a", 600)))
	long2 := semantics.KeySubject("t", 0, []byte(strings.Repeat("a", 599)+"b"))
	if long1 == long2 || !strings.HasPrefix(long1, "qxd.t.t.0.h.") || len(long1) > 60 {
		t.Errorf("long keys: %q %q", long1, long2)
	}
}

// FuzzTopicNames checks that every valid topic name maps to a stream name, subjects
// and a KV key that JetStream accepts and that the stream name maps back.
func FuzzTopicNames(f *testing.F) {
	for _, s := range []string{"orders", "a.b.c", "..x", "x_1_2", "-", strings.Repeat("z", 245)} {
		f.Add(s, uint16(3))
	}
	f.Fuzz(func(t *testing.T, topic string, p uint16) {
		if semantics.ValidateTopicName(topic) != nil {
			return
		}
		part := int32(p) % semantics.MaxPartitions
		stream := semantics.StreamName(topic, part)
		if len(stream) > 255 || strings.ContainsAny(stream, " \t\r\n\f.*>/\\") {
			t.Fatalf("stream name %q is not a valid JetStream name", stream)
		}
		got, gp, ok := semantics.ParseStreamName(stream)
		if !ok || got != topic || gp != part {
			t.Fatalf("ParseStreamName(%q) = %q %d %v, want %q %d", stream, got, gp, ok, topic, part)
		}
		for _, subj := range []string{semantics.BatchSubject(topic, part), semantics.WriterSubject(topic, part)} {
			for _, tok := range strings.Split(subj, ".") {
				if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
					t.Fatalf("subject %q has a bad token", subj)
				}
			}
		}
		key := semantics.TopicKey(topic)
		if strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Trim(key, "-/_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Fatalf("KV key %q is not valid", key)
		}
		if semantics.DecodeTopic(semantics.EncodeTopic(topic)) != topic {
			t.Fatalf("encode/decode of %q does not round-trip", topic)
		}
	})
}
