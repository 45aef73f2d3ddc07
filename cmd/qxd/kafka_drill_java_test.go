//go:build chaos

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestKafkaJavaFaultDrill is TestKafkaFaultDrill with the Java client,
// kafka-clients 3.3.1: the producer and the group member are java processes
// (testdata/java/KafkaDrill.java) on the same cluster, topic and faults
// (QXD_KAFKA_FAULT, QXD_CUT_HOLD). The producer is idempotent with acks=all and
// linger.ms 0, and sends each key's next record 5 ms after the previous one's
// acknowledgement; it prints the lines the librdkafka drill's producer prints,
// which the test times and checks as the other drills do (the same bounds,
// every record handed over acknowledged, and nothing lost, doubled, reordered
// or left unread by the group).
//
// Both clients bound a request to 5 s (request.timeout.ms=5000), as
// docs/kafka.md recommends; QXD_KAFKA_TIMEOUTS=default keeps Java's 30 s, and a
// pause is then reported without the faulty node's bound. QXD_JAVA_CONF adds
// client settings to both ("name=value name=value"). It skips when java, javac
// or the kafka-clients jar is not to be had (qxdtest.KafkaJava).
func TestKafkaJavaFaultDrill(t *testing.T) {
	cp := qxdtest.KafkaJava(t, filepath.Join("testdata", "java", "KafkaDrill.java"))
	r := startKafkaDrill(t)
	conf := r.clientConf("request.timeout.ms=5000", "QXD_JAVA_CONF")
	t.Logf("Java client settings: %v", conf)
	// The client's log goes to the drill's (KafkaDrill$Log, named ahead of the
	// jar's no-op SLF4J provider): warnings, and with QXD_TEST_KEEP_LOGS its
	// info lines too.
	services := filepath.Join(t.TempDir(), "META-INF", "services")
	if err := os.MkdirAll(services, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(services, "org.slf4j.spi.SLF4JServiceProvider"), []byte("KafkaDrill$Log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cp = filepath.Dir(filepath.Dir(services)) + string(os.PathListSeparator) + cp
	level := "warn"
	if os.Getenv("QXD_TEST_KEEP_LOGS") != "" {
		level = "info"
	}
	runKafkaDrillClients(t, r, "java", func(mode, arg string, line func([]string)) *kafkaDrillClient {
		args := append([]string{"-Dkafkadrill.log=" + level, "-cp", cp, "KafkaDrill", mode, strings.Join(r.seeds, ","), kafkaDrillTopic, arg}, conf...)
		return startKafkaDrillClient(t, r, "java", mode, "java", args, line)
	})
}
