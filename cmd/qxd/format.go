package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
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
  %h headers as k=v,k2=v2   %T timestamp in Unix milliseconds
  %S value size   %K key size (both -1 for null)
  %R value size as a binary 32-bit big-endian integer (-1 for null), so that
     -f '%R%v' frames binary values   %% a percent sign
and the escapes \n \t \r \0 \xHH \\. A format needs at least one verb. A format
without a line break (\n) or %R gets one at its end, so that each record is a
line; one with either is printed as written. The default prints each value
on its own line. --key-format and --value-format base64 print %k and %v as
standard base64 (padded), for binary data; %S %K %R count the stored bytes.

--format json prints one JSON object per line:
  {"topic":"t","partition":0,"offset":7,"key":"k","value":"v",
   "headers":[{"key":"h","value":"x"}],"timestamp":1700000000000}
A key, value or header value that is not valid UTF-8 is null and its bytes are
in "key_b64" or "value_b64" instead (standard base64, padded); with
--key-format or --value-format base64 the key or value is always there. A
missing key or value (Kafka's null) is null with no _b64 field.`

// formatVerbs lists --format's verbs for error messages.
const formatVerbs = "%t %p %o %k %v %h %T %S %K %R"

// unescape replaces the escapes \n, \t, \r, \0, \xHH and \\ in s. Any other
// backslash is an error naming its position.
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
		case '0':
			b.WriteByte(0)
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+3 > len(s) {
				return "", fmt.Errorf("--%s %q: the escape \\x at position %d needs two hex digits, e.g. \\x1e", flag, s, i-1)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("--%s %q: the escape \\x at position %d needs two hex digits, e.g. \\x1e", flag, s, i-1)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("--%s %q has the unknown escape \\%c at position %d: use \\n, \\t, \\r, \\0, \\xHH or \\\\", flag, s, s[i], i-1)
		}
	}
	return b.String(), nil
}

// recordFormat writes consumed records as --format says.
type recordFormat struct {
	json  bool
	parts []formatPart

	keyB64, valueB64 bool // --key-format, --value-format base64

	enc  *json.Encoder // for json, writing to encW
	encW *bufio.Writer
	buf  []byte // for base64
}

// formatPart is literal text, or a verb when verb is not 0.
type formatPart struct {
	text string
	verb byte
}

// parseFormat reads --format: json (any case), or text with at least one verb.
func parseFormat(s string) (*recordFormat, error) {
	if strings.EqualFold(s, "json") {
		return &recordFormat{json: true}, nil
	}
	if s == "" {
		return nil, fmt.Errorf(`--format "" is empty: give verbs, e.g. --format '%%k %%v\n' (verbs %s, %%%% for a percent sign), or --format json`, formatVerbs)
	}
	text, err := unescape("format", s)
	if err != nil {
		return nil, err
	}
	f := &recordFormat{}
	var lit strings.Builder
	framed := false // %R: a length-framed format gets no line break added
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
		case 't', 'p', 'o', 'k', 'v', 'h', 'T', 'S', 'K', 'R':
			if lit.Len() > 0 {
				f.parts = append(f.parts, formatPart{text: lit.String()})
				lit.Reset()
			}
			f.parts = append(f.parts, formatPart{verb: v})
			framed = framed || v == 'R'
		default:
			return nil, fmt.Errorf("--format %q has the unknown verb %%%c: use %s, or %%%% for a percent sign", s, v, formatVerbs)
		}
	}
	if len(f.parts) == 0 {
		return nil, fmt.Errorf("--format %q has no verb, so it would print the same text for every record: give verbs, e.g. --format '%%k %%v\\n' (verbs %s, %%%% for a percent sign), or --format json", s, formatVerbs)
	}
	if !strings.Contains(text, "\n") && !framed {
		lit.WriteByte('\n')
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, formatPart{text: lit.String()})
	}
	return f, nil
}

// parseBytesFormat reads --key-format or --value-format: text or base64. It
// reports whether base64 was chosen.
func parseBytesFormat(flag, s string) (bool, error) {
	switch strings.ToLower(s) {
	case "text", "":
		return false, nil
	case "base64":
		return true, nil
	}
	return false, fmt.Errorf("--%s %q is not valid: use text or base64 (standard, padded)", flag, s)
}

// write writes r to w.
func (f *recordFormat) write(w *bufio.Writer, r *qxd.Record) error {
	if f.json {
		if f.encW != w {
			f.enc, f.encW = json.NewEncoder(w), w
			f.enc.SetEscapeHTML(false)
		}
		return f.enc.Encode(newJSONRecord(r, f.keyB64, f.valueB64))
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
			f.writeBytes(w, r.Key, f.keyB64)
		case 'v':
			f.writeBytes(w, r.Value, f.valueB64)
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
		case 'S':
			w.Write(strconv.AppendInt(num[:0], size(r.Value), 10))
		case 'K':
			w.Write(strconv.AppendInt(num[:0], size(r.Key), 10))
		case 'R':
			w.Write(binary.BigEndian.AppendUint32(num[:0], uint32(int32(size(r.Value)))))
		}
	}
	return nil
}

// writeBytes writes b, as base64 when b64 is set.
func (f *recordFormat) writeBytes(w *bufio.Writer, b []byte, b64 bool) {
	if !b64 {
		w.Write(b)
		return
	}
	f.buf = base64.StdEncoding.AppendEncode(f.buf[:0], b)
	w.Write(f.buf)
}

// size is len(b), or -1 for null, as kcat's %S and %K.
func size(b []byte) int64 {
	if b == nil {
		return -1
	}
	return int64(len(b))
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

func newJSONRecord(r *qxd.Record, keyB64, valueB64 bool) jsonRecord {
	j := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Headers: make([]jsonHeader, 0, len(r.Headers)), Timestamp: r.Timestamp.UnixMilli()}
	j.Key, j.KeyB64 = jsonBytes(r.Key, keyB64)
	j.Value, j.ValueB64 = jsonBytes(r.Value, valueB64)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueB64 = jsonBytes(h.Value, false)
		j.Headers = append(j.Headers, jh)
	}
	return j
}

// jsonBytes returns b as text when it is valid UTF-8 and base64 is not forced,
// else as base64; both nil for nil.
func jsonBytes(b []byte, forceB64 bool) (text, b64 *string) {
	if b == nil {
		return nil, nil
	}
	if !forceB64 && utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}
