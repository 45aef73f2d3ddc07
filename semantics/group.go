package semantics

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxGroupIDLen is the longest group id qxd accepts.
const MaxGroupIDLen = 200

// ValidateGroupID checks a consumer group id: 1 to MaxGroupIDLen bytes of printable
// UTF-8. Kafka allows any non-empty string; qxd refuses control characters so ids
// print and log cleanly.
func ValidateGroupID(id string) error {
	switch {
	case id == "":
		return Errorf(ErrInvalidGroupID, "group id is empty: give a name such as \"billing\"")
	case len(id) > MaxGroupIDLen:
		return Errorf(ErrInvalidGroupID, "group id %.20q… is %d bytes long: the limit is %d", id, len(id), MaxGroupIDLen)
	case !utf8.ValidString(id):
		return Errorf(ErrInvalidGroupID, "group id %q is not valid UTF-8", id)
	}
	for i, r := range id {
		if r < 0x20 || r == 0x7f {
			return Errorf(ErrInvalidGroupID, "group id %q has a control character at byte %d", id, i)
		}
	}
	return nil
}

// EncodeGroupID maps a group id to a KV key token: [A-Za-z0-9_-] are kept, every
// other byte becomes "=XX" (hex). DecodeGroupID reverses it.
func EncodeGroupID(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// DecodeGroupID reverses EncodeGroupID.
func DecodeGroupID(token string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(token); i++ {
		if token[i] != '=' {
			b.WriteByte(token[i])
			continue
		}
		if i+2 >= len(token) {
			return "", fmt.Errorf("group token %q: truncated escape", token)
		}
		v, err := strconv.ParseUint(token[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("group token %q: bad escape: %w", token, err)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// OffsetKey is the offsets-bucket key of a group's committed offset for a partition:
// "<group>.<topic>.<p>", each part encoded for KV keys.
func OffsetKey(group, topic string, p int32) string {
	return EncodeGroupID(group) + "." + EncodeTopic(topic) + "." + strconv.Itoa(int(p))
}

// ParseOffsetKey reverses OffsetKey.
func ParseOffsetKey(key string) (group, topic string, p int32, err error) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		return "", "", 0, fmt.Errorf("offset key %q: want group.topic.partition", key)
	}
	group, err = DecodeGroupID(parts[0])
	if err != nil {
		return "", "", 0, err
	}
	n, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil {
		return "", "", 0, fmt.Errorf("offset key %q: bad partition: %w", key, err)
	}
	return group, DecodeTopic(parts[1]), int32(n), nil
}

// GroupOffsetsFilter is the offsets-bucket key filter of every offset of group.
func GroupOffsetsFilter(group string) string { return EncodeGroupID(group) + ".>" }

// GroupKey is the groups-bucket key of a group's state: one token, as
// EncodeGroupID never gives a ".".
func GroupKey(group string) string { return EncodeGroupID(group) }

// CoordinatorEpochKey is the groups-bucket key each group coordinator puts when it
// starts: the revision of that put is the coordinator's epoch. It has two tokens,
// so no group's key (GroupKey) is ever equal to it.
const CoordinatorEpochKey = "coordinator.epoch"

// Buckets of consumer groups.
const (
	OffsetsBucket = "qxd_offsets"
	GroupsBucket  = "qxd_groups"
)
