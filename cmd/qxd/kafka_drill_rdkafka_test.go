//go:build chaos

package main

import (
	"os"
	"strings"
	"testing"
)

// TestKafkaRdkafkaFaultDrill is TestKafkaFaultDrill with librdkafka clients: the
// producer and the group member are Python processes with confluent-kafka
// (testdata/kafka_drill.py) on the same cluster, topic and faults
// (QXD_KAFKA_FAULT, QXD_CUT_HOLD). The producer is idempotent with acks=all and
// no linger, and sends each key's next record 5 ms after the previous one's
// delivery report; it prints every record it hands to the client and every
// report, which the test times and checks as the franz-go drill does (the same
// bounds, every record handed over acknowledged, and nothing lost, doubled,
// reordered or left unread by the group).
//
// The clients bound their requests to 5 s (socket.timeout.ms=5000), as
// docs/kafka.md recommends; QXD_KAFKA_TIMEOUTS=default keeps librdkafka's 60 s,
// and a pause is then reported without the faulty node's bound. (librdkafka's
// request.timeout.ms, 30 s, is the produce timeout the broker is told; what
// ends the client's wait for a request in flight is socket.timeout.ms.) QXD_RDKAFKA_CONF adds librdkafka settings to both
// clients ("name=value name=value"). It skips when /usr/bin/python3 (or
// QXD_KAFKA_PYTHON) cannot import confluent_kafka: `just kafka-clients`
// installs it.
func TestKafkaRdkafkaFaultDrill(t *testing.T) {
	needConfluentKafka(t)
	r := startKafkaDrill(t)
	conf := r.clientConf("socket.timeout.ms=5000", "QXD_RDKAFKA_CONF")
	t.Logf("librdkafka settings: %v", conf)

	runKafkaDrillClients(t, r, "librdkafka", func(mode, arg string, line func([]string)) *kafkaDrillClient {
		return startRdkafkaDrillClient(t, r, mode, arg, conf, line)
	})
}

// startRdkafkaDrillClient starts testdata/kafka_drill.py in mode (produce or
// consume) with arg (the number of keys, or the group) and the librdkafka
// settings conf (startKafkaDrillClient).
func startRdkafkaDrillClient(t *testing.T, r *kafkaDrill, mode, arg string, conf []string, line func([]string)) *kafkaDrillClient {
	t.Helper()
	args := append([]string{"testdata/kafka_drill.py", mode, strings.Join(r.seeds, ","), kafkaDrillTopic, arg}, conf...)
	if os.Getenv("QXD_KAFKA_DRILL_DEBUG") == "1" {
		args = append(args, "debug=broker,topic,metadata,msg,eos,protocol")
	}
	return startKafkaDrillClient(t, r, "librdkafka", mode, eosPython(), args, line)
}
