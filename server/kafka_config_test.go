package server_test

import (
	"strings"
	"testing"

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
