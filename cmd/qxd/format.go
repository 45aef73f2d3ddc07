package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/qxd-io/qxd"
)

// formatHelp documents --format for the consume command's help.
const formatHelp = `--format takes kcat's verbs:
  %t topic   %p partition   %o offset   %k key   %v value
  %h headers as k=v,k2=v2   %T timestamp in Unix milliseconds   %% a percent sign
and the escapes \n \t \r \\. A format without a line break (\n) gets one at its
end, so that each record is a line; one with a line break anywhere is printed as
written. The default prints each value on its own line.

--format json prints one JSON object per line:
  {"topic":"t","partition":0,"offset":7,"key":"k","value":"v",
   "headers":[{"key":"h","value":"x"}],"timestamp":1700000000000}
A key, value or header value that is not valid UTF-8 is null and its bytes are
in "key_b64" or "value_b64" instead (standard base64, padded). A missing key or
value (Kafka's null) is null with no _b64 field.`

// unescape replaces the escapes \n, \t, \r and \\ in s. Any other backslash is an
// error naming its position.
func unescape(flag, s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("--%s %q ends with a lone backslash: write \\\\ for a backslash", flag, s)
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", fmt.Errorf("--%s %q has the unknown escape \\%c at position %d: use \\n, \\t, \\r or \\\\", flag, s, s[i], i-1)
		}
	}
	return b.String(), nil
}

// recordFormat writes consumed records as --format says.
type recordFormat struct {
	json  bool
	parts []formatPart

	enc  *json.Encoder // for json, writing to encW
	encW *bufio.Writer
}

// formatPart is literal text, or a verb when verb is not 0.
type formatPart struct {
	text string
	verb byte
}

func parseFormat(s string) (*recordFormat, error) {
	if s == "json" {
		return &recordFormat{json: true}, nil
	}
	text, err := unescape("format", s)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(text, "\n") {
		text += "\n"
	}
	f := &recordFormat{}
	var lit strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] != '%' {
			lit.WriteByte(text[i])
			continue
		}
		if i+1 == len(text) {
			return nil, fmt.Errorf("--format %q ends with a lone %%: write %%%% for a percent sign", s)
		}
		i++
		switch v := text[i]; v {
		case '%':
			lit.WriteByte('%')
		case 't', 'p', 'o', 'k', 'v', 'h', 'T':
			if lit.Len() > 0 {
				f.parts = append(f.parts, formatPart{text: lit.String()})
				lit.Reset()
			}
			f.parts = append(f.parts, formatPart{verb: v})
		default:
			return nil, fmt.Errorf("--format %q has the unknown verb %%%c: use %%t %%p %%o %%k %%v %%h %%T, or %%%% for a percent sign", s, v)
		}
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, formatPart{text: lit.String()})
	}
	return f, nil
}

// write writes r to w.
func (f *recordFormat) write(w *bufio.Writer, r *qxd.Record) error {
	if f.json {
		if f.encW != w {
			f.enc, f.encW = json.NewEncoder(w), w
			f.enc.SetEscapeHTML(false)
		}
		return f.enc.Encode(newJSONRecord(r))
	}
	var num [20]byte
	for _, p := range f.parts {
		switch p.verb {
		case 0:
			w.WriteString(p.text)
		case 't':
			w.WriteString(r.Topic)
		case 'p':
			w.Write(strconv.AppendInt(num[:0], int64(r.Partition), 10))
		case 'o':
			w.Write(strconv.AppendInt(num[:0], r.Offset, 10))
		case 'k':
			w.Write(r.Key)
		case 'v':
			w.Write(r.Value)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(h.Key)
				w.WriteByte('=')
				w.Write(h.Value)
			}
		case 'T':
			w.Write(strconv.AppendInt(num[:0], r.Timestamp.UnixMilli(), 10))
		}
	}
	return nil
}

// jsonRecord is a record as --format json prints it; see formatHelp.
type jsonRecord struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Key       *string      `json:"key"`
	KeyB64    *string      `json:"key_b64,omitempty"`
	Value     *string      `json:"value"`
	ValueB64  *string      `json:"value_b64,omitempty"`
	Headers   []jsonHeader `json:"headers"`
	Timestamp int64        `json:"timestamp"`
}

type jsonHeader struct {
	Key      string  `json:"key"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64,omitempty"`
}

func newJSONRecord(r *qxd.Record) jsonRecord {
	j := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Headers: make([]jsonHeader, 0, len(r.Headers)), Timestamp: r.Timestamp.UnixMilli()}
	j.Key, j.KeyB64 = jsonBytes(r.Key)
	j.Value, j.ValueB64 = jsonBytes(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueB64 = jsonBytes(h.Value)
		j.Headers = append(j.Headers, jh)
	}
	return j
}

// jsonBytes returns b as text when it is valid UTF-8, else as base64; both nil for
// nil.
func jsonBytes(b []byte) (text, b64 *string) {
	if b == nil {
		return nil, nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}
