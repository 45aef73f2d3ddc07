package semantics

// The string forms of a bridge definition's fields, as a person writes them on the
// command line and they are stored: subject patterns, key specs ("token:N",
// "header:NAME", "subject", "none"), header filters and egress subject templates;
// and how a bridge applies them to a message or a record. The definition itself and
// its validation are in bridge.go.

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SubjectPattern is a parsed NATS subject pattern.
type SubjectPattern struct {
	Tokens []string
}

// ParseSubjectPattern checks a NATS subject pattern: tokens separated by '.', none
// empty, no spaces or control characters; '*' (one token) and '>' (one or more
// tokens, last only) only as whole tokens.
func ParseSubjectPattern(s string) (SubjectPattern, error) {
	if err := checkSubjectChars(s, "pattern"); err != nil {
		return SubjectPattern{}, err
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return SubjectPattern{}, fmt.Errorf("pattern %q has an empty token at position %d: tokens are separated by single dots", s, i+1)
		case t == ">" && i != len(toks)-1:
			return SubjectPattern{}, fmt.Errorf("pattern %q has '>' at position %d: '>' may only be the last token", s, i+1)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return SubjectPattern{}, fmt.Errorf("pattern %q has token %q: '*' and '>' are wildcards only as whole tokens", s, t)
		}
	}
	return SubjectPattern{Tokens: toks}, nil
}

func (p SubjectPattern) String() string { return strings.Join(p.Tokens, ".") }

// Matches reports whether the literal subject matches the pattern.
func (p SubjectPattern) Matches(subject string) bool {
	toks := strings.Split(subject, ".")
	for i, t := range p.Tokens {
		switch {
		case t == ">":
			return len(toks) > i
		case i >= len(toks):
			return false
		case t != "*" && t != toks[i]:
			return false
		}
	}
	return len(toks) == len(p.Tokens)
}

func checkSubjectChars(s, what string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty: give a subject such as orders.*", what)
	case len(s) > maxSubjectLen:
		return fmt.Errorf("%s %.40q… is %d bytes long: the limit is %d", what, s, len(s), maxSubjectLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	for i, r := range s {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%s %q has a space or control character at byte %d", what, s, i)
		}
	}
	return nil
}

// SubjectsOverlap reports whether some subject matches both patterns a and b. Both
// must be valid patterns (ParseSubjectPattern).
func SubjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			return false
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] != "*" && bt[i] != "*" && at[i] != bt[i]:
			return false
		}
	}
}

// KeyKind is how an ingest bridge takes a record's key from a message.
type KeyKind int8

const (
	// KeyFromNone gives records no key: they are spread by the sticky partitioner, as
	// the SDK does for records without a key.
	KeyFromNone KeyKind = iota
	// KeyFromToken takes one token of the subject (1-based position).
	KeyFromToken
	// KeyFromHeader takes a header's first value; a message without it has no key.
	KeyFromHeader
	// KeyFromSubject takes the whole subject.
	KeyFromSubject
)

// KeySpec is a parsed key spec.
type KeySpec struct {
	Kind   KeyKind
	Token  int    // KeyFromToken: 1-based position in the subject
	Header string // KeyFromHeader: the header's name
}

// ParseKeySpec reads "token:N" (N from 1), "header:NAME", "subject" or "none".
func ParseKeySpec(s string) (KeySpec, error) {
	switch {
	case s == "none":
		return KeySpec{Kind: KeyFromNone}, nil
	case s == "subject":
		return KeySpec{Kind: KeyFromSubject}, nil
	case strings.HasPrefix(s, "token:"):
		v := s[len("token:"):]
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || strconv.Itoa(n) != v {
			return KeySpec{}, fmt.Errorf("key %q: after token: give the token's position from 1, as in token:2 for the key of orders.<key>", s)
		}
		return KeySpec{Kind: KeyFromToken, Token: n}, nil
	case strings.HasPrefix(s, "header:"):
		h := s[len("header:"):]
		if err := checkHeaderName(h); err != nil {
			return KeySpec{}, fmt.Errorf("key %q: %v", s, err)
		}
		return KeySpec{Kind: KeyFromHeader, Header: h}, nil
	}
	return KeySpec{}, fmt.Errorf("key %q is not valid: use token:N, header:NAME, subject or none", s)
}

func (k KeySpec) String() string {
	switch k.Kind {
	case KeyFromToken:
		return "token:" + strconv.Itoa(k.Token)
	case KeyFromHeader:
		return "header:" + k.Header
	case KeyFromSubject:
		return "subject"
	}
	return "none"
}

// Extract returns the key of a message on subject with headers h (a nats.Header),
// nil for none. A token position the subject does not have gives nil.
func (k KeySpec) Extract(subject string, h map[string][]string) []byte {
	switch k.Kind {
	case KeyFromSubject:
		return []byte(subject)
	case KeyFromToken:
		rest := subject
		for i := 1; ; i++ {
			tok, after, more := strings.Cut(rest, ".")
			if i == k.Token {
				return []byte(tok)
			}
			if !more {
				return nil
			}
			rest = after
		}
	case KeyFromHeader:
		if v := headerValues(h, k.Header); len(v) > 0 {
			return []byte(v[0])
		}
	}
	return nil
}

// headerValues looks a header up exactly, then ignoring case.
func headerValues(h map[string][]string, name string) []string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

func checkHeaderName(h string) error {
	if h == "" {
		return fmt.Errorf("header name is empty")
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("header name %q has the character %q at position %d: use printable ASCII without ':' or spaces", h, rune(c), i)
		}
	}
	return nil
}

// HeaderFilter says which NATS headers an ingest bridge carries over.
type HeaderFilter struct {
	All   bool
	Names []string // when not All; empty: none
}

// ParseHeaderFilter reads "all", "none" or a comma-separated list of header names
// (matched ignoring case).
func ParseHeaderFilter(s string) (HeaderFilter, error) {
	switch s {
	case "all":
		return HeaderFilter{All: true}, nil
	case "none":
		return HeaderFilter{}, nil
	}
	var f HeaderFilter
	for name := range strings.SplitSeq(s, ",") {
		if err := checkHeaderName(name); err != nil {
			return HeaderFilter{}, fmt.Errorf("headers %q: %v (give all, none or a comma-separated list of names)", s, err)
		}
		f.Names = append(f.Names, name)
	}
	return f, nil
}

// Keep reports whether the filter carries header name over.
func (f HeaderFilter) Keep(name string) bool {
	if f.All {
		return true
	}
	for _, n := range f.Names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func (f HeaderFilter) String() string {
	switch {
	case f.All:
		return "all"
	case len(f.Names) == 0:
		return "none"
	}
	return strings.Join(f.Names, ",")
}

// Template placeholders.
const (
	placeholderKey       = "key"
	placeholderPartition = "partition"
	placeholderOffset    = "offset"
)

// SubjectTemplate is a parsed egress subject template.
type SubjectTemplate struct {
	parts []templatePart
}

type templatePart struct {
	lit         string
	placeholder string // "" for a literal
}

// ParseSubjectTemplate reads a subject template: a literal NATS subject (no
// wildcards) in which {key}, {partition} and {offset} stand for the record's key,
// partition and offset, as in "orders.{key}" or "orders.p{partition}". A
// placeholder stays within one token. The key is written as KeyToken renders it.
func ParseSubjectTemplate(s string) (SubjectTemplate, error) {
	if err := checkSubjectChars(s, "template"); err != nil {
		return SubjectTemplate{}, err
	}
	var t SubjectTemplate
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, templatePart{lit: rest})
			break
		}
		if rest[i] == '}' {
			return SubjectTemplate{}, fmt.Errorf("template %q has a '}' without '{': placeholders are {key}, {partition} and {offset}", s)
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:i]})
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] != '}' {
			return SubjectTemplate{}, fmt.Errorf("template %q has an unclosed '{': placeholders are {key}, {partition} and {offset}", s)
		}
		name := rest[i+1 : i+1+j]
		switch name {
		case placeholderKey, placeholderPartition, placeholderOffset:
		default:
			return SubjectTemplate{}, fmt.Errorf("template %q has the unknown placeholder {%s}: use {key}, {partition} or {offset}", s, name)
		}
		t.parts = append(t.parts, templatePart{placeholder: name})
		rest = rest[i+2+j:]
	}
	// The shape, with each placeholder as one token's worth of text, must be a
	// literal subject.
	shape := t.render("x", "x", "x")
	toks := strings.Split(shape, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return SubjectTemplate{}, fmt.Errorf("template %q has an empty token at position %d: tokens are separated by single dots", s, i+1)
		case strings.ContainsAny(tok, "*>"):
			return SubjectTemplate{}, fmt.Errorf("template %q has a wildcard: egress publishes on literal subjects; use {key}, {partition} or {offset} for the parts that vary", s)
		}
	}
	return t, nil
}

func (t SubjectTemplate) render(key, partition, offset string) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.placeholder {
		case "":
			b.WriteString(p.lit)
		case placeholderKey:
			b.WriteString(key)
		case placeholderPartition:
			b.WriteString(partition)
		case placeholderOffset:
			b.WriteString(offset)
		}
	}
	return b.String()
}

// Subject renders the subject of a record.
func (t SubjectTemplate) Subject(key []byte, partition int32, offset int64) string {
	return t.render(KeyToken(key), strconv.Itoa(int(partition)), strconv.FormatInt(offset, 10))
}

// Pattern is the subject pattern of every subject the template can render: each
// token holding a placeholder becomes '*'.
func (t SubjectTemplate) Pattern() string {
	toks := strings.Split(t.render("{", "{", "{"), ".")
	for i, tok := range toks {
		if strings.Contains(tok, "{") {
			toks[i] = "*"
		}
	}
	return strings.Join(toks, ".")
}

func (t SubjectTemplate) String() string { return t.render("{key}", "{partition}", "{offset}") }

// KeyToken renders a record key as one subject token. A key that is already a plain
// token (printable UTF-8 without '.', '*', '>', spaces or control characters, not
// starting with '=') is used as it is, so a key taken from a subject token comes back
// unchanged. Any other key, including an empty or missing one, is '=' followed by its
// unpadded base64url encoding ("=" alone for no key).
func KeyToken(key []byte) string {
	if plainToken(key) {
		return string(key)
	}
	return "=" + base64.RawURLEncoding.EncodeToString(key)
}

func plainToken(key []byte) bool {
	if len(key) == 0 || key[0] == '=' || !utf8.Valid(key) {
		return false
	}
	for _, r := range string(key) {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' {
			return false
		}
	}
	return true
}

// HeaderValueSafe reports whether s can be sent as a NATS header value: no line
// breaks or other control characters except tab.
func HeaderValueSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// HeaderNameSafe reports whether s can be sent as a NATS header name.
func HeaderNameSafe(s string) bool { return checkHeaderName(s) == nil }
