package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/server"
)

func TestKafkaConfig(t *testing.T) {
	t.Parallel()
	cfg, err := server.ParseConfig(`kafka { listen: "0.0.0.0:9092", advertise: "n1.example.com:9092" }`, server.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KafkaListen != "0.0.0.0:9092" || cfg.KafkaAdvertise != "n1.example.com:9092" {
		t.Fatalf("kafka listen %q advertise %q", cfg.KafkaListen, cfg.KafkaAdvertise)
	}
	if _, err := server.ParseConfig(`kafka { port: 9092 }`, server.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "kafka.port") {
		t.Fatalf("unknown key: %v, want an error naming kafka.port", err)
	}
	for _, tc := range []struct{ listen, advertise, want string }{
		{"9092", "", "kafka listen address"},
		{"127.0.0.1:99999", "", "kafka listen address"},
		{"127.0.0.1:0", "host", "kafka advertise address"},
	} {
		cfg := server.DefaultConfig()
		cfg.KafkaListen, cfg.KafkaAdvertise = tc.listen, tc.advertise
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("listen %q advertise %q: %v, want an error about the %s", tc.listen, tc.advertise, err, tc.want)
		}
	}
}

// TestSCRAMUserConfig: a user's SCRAM credentials are read from the config file and
// checked when the node's config is validated, naming the user at fault.
func TestSCRAMUserConfig(t *testing.T) {
	t.Parallel()
	c256, err := kafka.NewSCRAMCredential(kafka.MechSCRAMSHA256, "pw", kafka.DefaultSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	const hash = "$2a$04$Pz2S/7hXkHXs2.nBxxFn5e3Jb1F4ArbuDZ7b7S7zbdHkL.yJwWf5S"
	cfg, err := server.ParseConfig(`auth { users: [ { user: alice, password: "`+hash+`", scram_sha_256: "`+c256.String()+`" } ] }`, server.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.Auth.Users[0]; u.SCRAMSHA256 != c256.String() || u.SCRAMSHA512 != "" {
		t.Fatalf("user read as %+v", u)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid SCRAM credential refused: %v", err)
	}
	cfg.Auth.Users[0].SCRAMSHA512 = c256.String() // a SHA-256 credential where SHA-512's goes
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"alice"`) || !strings.Contains(err.Error(), "SCRAM-SHA-512") {
		t.Fatalf("SHA-256 credential as scram_sha_512: %v, want an error naming alice and SCRAM-SHA-512", err)
	}
}

// TestKafkaFetchSessionSlotsConfig: the kafka block's fetch_session_slots sets
// the Kafka listener's fetch session slots (default 1000, 0: none); anything but
// a whole number of 0 or more is refused, naming the key.
func TestKafkaFetchSessionSlotsConfig(t *testing.T) {
	t.Parallel()
	if got := server.DefaultConfig().KafkaFetchSessionSlots; got != kafka.DefaultFetchSessionSlots {
		t.Fatalf("default fetch session slots %d, want %d", got, kafka.DefaultFetchSessionSlots)
	}
	for _, tc := range []struct {
		text string
		want int
	}{
		{`kafka { fetch_session_slots: 5 }`, 5},
		{`kafka { fetch_session_slots: 0 }`, 0},
		{`kafka { listen: "127.0.0.1:9092" }`, kafka.DefaultFetchSessionSlots},
	} {
		cfg, err := server.ParseConfig(tc.text, server.DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", tc.text, err)
		}
		if cfg.KafkaFetchSessionSlots != tc.want {
			t.Errorf("%s: slots %d, want %d", tc.text, cfg.KafkaFetchSessionSlots, tc.want)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", tc.text, err)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{`kafka { fetch_session_slots: -1 }`, "kafka.fetch_session_slots: -1 is negative"},
		{`kafka { fetch_session_slots: many }`, "kafka.fetch_session_slots: want a whole number"},
		{`kafka { fetch_session_slots: "10" }`, "kafka.fetch_session_slots: want a whole number"},
		{`kafka { fetch_session_slot: 10 }`, `"kafka.fetch_session_slot"`},
	} {
		_, err := server.ParseConfig(tc.text, server.DefaultConfig())
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line containing %q", tc.text, err, tc.want)
		}
	}
	cfg := server.DefaultConfig()
	cfg.KafkaFetchSessionSlots = -2
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kafka fetch session slots -2") {
		t.Errorf("slots -2: %v, want an error naming the kafka fetch session slots", err)
	}
}

// TestKafkaFetchSessionEvictionConfig: the kafka block's fetch_session_eviction
// sets how long the Kafka listener's fetch sessions are safe from eviction
// (default 2m); anything but a positive duration in quotes is refused, naming
// the key, and Validate refuses a negative one.
func TestKafkaFetchSessionEvictionConfig(t *testing.T) {
	t.Parallel()
	if got := server.DefaultConfig().KafkaFetchSessionEviction; got != kafka.DefaultFetchSessionEviction {
		t.Fatalf("default fetch session eviction %v, want %v", got, kafka.DefaultFetchSessionEviction)
	}
	for _, tc := range []struct {
		text string
		want time.Duration
	}{
		{`kafka { fetch_session_eviction: "30s" }`, 30 * time.Second},
		{`kafka { fetch_session_eviction: "1h" }`, time.Hour},
		{`kafka { fetch_session_slots: 5 }`, kafka.DefaultFetchSessionEviction},
	} {
		cfg, err := server.ParseConfig(tc.text, server.DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", tc.text, err)
		}
		if cfg.KafkaFetchSessionEviction != tc.want {
			t.Errorf("%s: eviction %v, want %v", tc.text, cfg.KafkaFetchSessionEviction, tc.want)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", tc.text, err)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{`kafka { fetch_session_eviction: "0s" }`, `kafka.fetch_session_eviction: "0s" is not a positive duration`},
		{`kafka { fetch_session_eviction: "-1m" }`, `kafka.fetch_session_eviction: "-1m" is not a positive duration`},
		{`kafka { fetch_session_eviction: "soon" }`, `kafka.fetch_session_eviction: "soon" is not a positive duration`},
		{`kafka { fetch_session_eviction: 2m }`, "kafka.fetch_session_eviction: 2000000 is not a duration: write one in quotes"},
		{`kafka { fetch_session_eviction: 30 }`, "kafka.fetch_session_eviction: 30 is not a duration: write one in quotes"},
	} {
		_, err := server.ParseConfig(tc.text, server.DefaultConfig())
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line containing %q", tc.text, err, tc.want)
		}
	}
	cfg := server.DefaultConfig()
	cfg.KafkaFetchSessionEviction = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kafka fetch session eviction -1s") {
		t.Errorf("eviction -1s: %v, want an error naming the kafka fetch session eviction", err)
	}
}
