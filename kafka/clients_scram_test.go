//go:build kafkaclients

package kafka_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/qxd-io/qxd/kafka"
)

// kcat (librdkafka) produces and consumes with SCRAM-SHA-256 and SCRAM-SHA-512
// against the users' stored SCRAM credentials; a wrong password is refused.
func TestClientKcatSCRAM(t *testing.T) {
	kcat := needKcat(t)
	n := startSCRAMNode(t)
	adm := kadm.NewClient(kafkaClient(t, n, kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism())))
	for _, mech := range []string{kafka.MechSCRAMSHA256, kafka.MechSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			topic := "kcat-" + strings.ToLower(mech)
			if _, err := adm.CreateTopic(ctxFor(t, 30*time.Second), 1, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			sasl := []string{"-b", n.KafkaAddr(), "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
				"-X", "sasl.username=alice"}
			run(t, "one\ntwo\n", kcat, append(sasl, "-X", "sasl.password=alice-pw", "-P", "-t", topic)...)
			out := run(t, "", kcat, append(sasl, "-X", "sasl.password=alice-pw", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %s\n")...)
			if got := strings.TrimSpace(out); got != "0 one\n1 two" {
				t.Fatalf("kcat read %q, want 0 one, 1 two", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			bad := exec.CommandContext(ctx, kcat, append(sasl, "-X", "sasl.password=nope", "-L", "-m", "5")...)
			if out, err := bad.CombinedOutput(); err == nil {
				t.Fatalf("kcat with a wrong password listed metadata:\n%s", out)
			} else if !strings.Contains(string(out), "uthentication") {
				t.Errorf("kcat with a wrong password failed without saying why:\n%s", out)
			}
		})
	}
}

const confluentSCRAMProgram = `
import json, sys
from confluent_kafka import Producer, Consumer
broker, topic, mech = sys.argv[1:4]
sasl = {"bootstrap.servers": broker, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mech,
        "sasl.username": "alice", "sasl.password": "alice-pw"}
p = Producer(dict(sasl, **{"enable.idempotence": True}))
for i in range(10):
    p.produce(topic, value=b"v%d" % i)
assert p.flush(30) == 0
c = Consumer(dict(sasl, **{"group.id": "scram-group", "auto.offset.reset": "earliest"}))
c.subscribe([topic])
got = []
while len(got) < 10:
    m = c.poll(30)
    assert m is not None, "no record in 30 s after %d" % len(got)
    assert m.error() is None, m.error()
    got.append([m.offset(), m.value().decode()])
c.close()
print(json.dumps(got))
`

const kafkaPythonSCRAMProgram = `
import json, sys
from kafka import KafkaProducer, KafkaConsumer
broker, topic, mech = sys.argv[1:4]
sasl = dict(bootstrap_servers=broker, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mech,
            sasl_plain_username="alice", sasl_plain_password="alice-pw")
p = KafkaProducer(**sasl)
for i in range(10):
    p.send(topic, value=b"v%d" % i).get(timeout=30)
p.close()
c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=15000, **sasl)
got = []
for m in c:
    got.append([m.offset, m.value.decode()])
    if len(got) == 10:
        break
c.close()
print(json.dumps(got))
`

// confluent-kafka (SaslAuthenticate) and kafka-python (raw tokens after a
// SaslHandshake v0) produce and consume with SCRAM.
func TestClientPythonSCRAM(t *testing.T) {
	n := startSCRAMNode(t)
	adm := kadm.NewClient(kafkaClient(t, n, kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism())))
	for _, tc := range []struct{ name, module, pkg, program, mech string }{
		{"confluent-kafka", "confluent_kafka", "python3-confluent-kafka", confluentSCRAMProgram, kafka.MechSCRAMSHA512},
		{"kafka-python", "kafka", "python3-kafka", kafkaPythonSCRAMProgram, kafka.MechSCRAMSHA256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			py := needPython(t, tc.module, tc.pkg)
			topic := "scram-" + tc.module
			if _, err := adm.CreateTopic(ctxFor(t, 30*time.Second), 1, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			out := strings.TrimSpace(run(t, "", py, "-c", tc.program, n.KafkaAddr(), topic, tc.mech))
			want := `[[0, "v0"], [1, "v1"], [2, "v2"], [3, "v3"], [4, "v4"], [5, "v5"], [6, "v6"], [7, "v7"], [8, "v8"], [9, "v9"]]`
			if out != want {
				t.Fatalf("%s read %s, want %s", tc.name, out, want)
			}
		})
	}
}
