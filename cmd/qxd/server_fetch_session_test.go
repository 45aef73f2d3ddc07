package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fullFetchSession creates topic on the node at natsAddr, produces a record to
// it and sends a full fetch at epoch 0 of it to the Kafka listener at addr; it
// returns the session id the fetch is given (0: none).
func fullFetchSession(t *testing.T, natsAddr, addr, topic string) int32 {
	t.Helper()
	createTopicAt(t, natsAddr, topic, 1)
	kc := newFetchV12Client(t, addr)
	defer kc.Close()
	if err := kc.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	resp := fetchV12(t, kc, topic, 1, 1<<20, 1<<20, 0) // epoch 0: asks for a session
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("full fetch of %s: code %d, answer %+v; want its record", topic, resp.ErrorCode, resp.Topics)
	}
	return resp.SessionID
}

// TestServerKafkaFetchSessionSlots: QXD_KAFKA_FETCH_SESSION_SLOTS=0 turns the
// Kafka listener's fetch sessions off (a full fetch gets its records and no
// session); the config file's kafka.fetch_session_slots does too, and the flag
// overrides the file.
func TestServerKafkaFetchSessionSlots(t *testing.T) {
	// Not parallel: it sets an environment variable.
	t.Run("env 0", func(t *testing.T) {
		t.Setenv("QXD_KAFKA_FETCH_SESSION_SLOTS", "0")
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, "--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr)
		if id := fullFetchSession(t, natsAddr, kafkaAddr, "env-off"); id != 0 {
			t.Fatalf("session %d with QXD_KAFKA_FETCH_SESSION_SLOTS=0, want none", id)
		}
	})
	conf := filepath.Join(t.TempDir(), "qxd.conf")
	if err := os.WriteFile(conf, []byte("kafka { fetch_session_slots: 0 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("file 0", func(t *testing.T) {
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, "--config", conf, "--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr)
		if id := fullFetchSession(t, natsAddr, kafkaAddr, "file-off"); id != 0 {
			t.Fatalf("session %d with fetch_session_slots: 0, want none", id)
		}
	})
	t.Run("flag over file", func(t *testing.T) {
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, "--config", conf, "--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr, "--kafka-fetch-session-slots", "5")
		if id := fullFetchSession(t, natsAddr, kafkaAddr, "flag-on"); id == 0 {
			t.Fatal("no session with --kafka-fetch-session-slots 5 over the file's 0")
		}
	})
	t.Run("bad file", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "qxd.conf")
		if err := os.WriteFile(bad, []byte("kafka { fetch_session_slots: -3 }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		err := run(t.Context(), []string{"qxd", "server", "--config", bad, "--listen", "127.0.0.1:0", "--data", t.TempDir()}, strings.NewReader(""), &out, &out)
		if err == nil || !strings.Contains(err.Error(), "kafka.fetch_session_slots: -3 is negative") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("fetch_session_slots: -3: %v, want one line naming the key", err)
		}
	})
}

// TestServerKafkaFetchSessionEviction: with one fetch session slot, a second
// client's full fetch gets a session only once the first session was left
// unused for --kafka-fetch-session-eviction (QXD_KAFKA_FETCH_SESSION_EVICTION,
// the config file's kafka.fetch_session_eviction); with the default (2m) it gets
// none. A value that is not a positive duration stops the server with one line
// naming the flag or key.
func TestServerKafkaFetchSessionEviction(t *testing.T) {
	// Not parallel: it sets an environment variable.
	// twoSessions makes a session, waits past a short eviction time and makes
	// another: the ids the two full fetches were given.
	twoSessions := func(t *testing.T, args ...string) (int32, int32) {
		t.Helper()
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, append([]string{"--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr, "--kafka-fetch-session-slots", "1"}, args...)...)
		first := fullFetchSession(t, natsAddr, kafkaAddr, "evict-a")
		time.Sleep(500 * time.Millisecond) // past the 300ms below: the first session may go
		return first, fullFetchSession(t, natsAddr, kafkaAddr, "evict-b")
	}
	t.Run("default keeps", func(t *testing.T) {
		if a, b := twoSessions(t); a == 0 || b != 0 {
			t.Fatalf("sessions %d then %d with one slot and the default eviction time, want one then none", a, b)
		}
	})
	t.Run("flag", func(t *testing.T) {
		if a, b := twoSessions(t, "--kafka-fetch-session-eviction", "300ms"); a == 0 || b == 0 || a == b {
			t.Fatalf("sessions %d then %d with --kafka-fetch-session-eviction 300ms, want two", a, b)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("QXD_KAFKA_FETCH_SESSION_EVICTION", "300ms")
		if a, b := twoSessions(t); a == 0 || b == 0 || a == b {
			t.Fatalf("sessions %d then %d with QXD_KAFKA_FETCH_SESSION_EVICTION=300ms, want two", a, b)
		}
	})
	t.Run("file", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "qxd.conf")
		if err := os.WriteFile(conf, []byte("kafka { fetch_session_eviction: \"300ms\" }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if a, b := twoSessions(t, "--config", conf); a == 0 || b == 0 || a == b {
			t.Fatalf("sessions %d then %d with fetch_session_eviction: \"300ms\", want two", a, b)
		}
	})
	for _, tc := range []struct {
		name, conf string
		args       []string
		want       string
	}{
		{name: "word", args: []string{"--kafka-fetch-session-eviction", "soon"}, want: `--kafka-fetch-session-eviction "soon" is not a positive duration`},
		{name: "zero", args: []string{"--kafka-fetch-session-eviction", "0s"}, want: `--kafka-fetch-session-eviction "0s" is not a positive duration`},
		{name: "negative", args: []string{"--kafka-fetch-session-eviction", "-5s"}, want: `--kafka-fetch-session-eviction "-5s" is not a positive duration`},
		{name: "file unquoted", conf: "kafka { fetch_session_eviction: 2m }\n", want: "kafka.fetch_session_eviction: 2000000 is not a duration"},
		{name: "file zero", conf: "kafka { fetch_session_eviction: \"0s\" }\n", want: `kafka.fetch_session_eviction: "0s" is not a positive duration`},
	} {
		t.Run("bad "+tc.name, func(t *testing.T) {
			args := []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--kafka-listen", ""}
			if tc.conf != "" {
				conf := filepath.Join(t.TempDir(), "qxd.conf")
				if err := os.WriteFile(conf, []byte(tc.conf), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", conf)
			}
			var out syncBuffer
			err := run(t.Context(), append(args, tc.args...), strings.NewReader(""), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%v: %v, want one line containing %q", tc.args, err, tc.want)
			}
		})
	}
}
