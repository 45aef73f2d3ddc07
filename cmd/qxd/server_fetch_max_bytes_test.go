package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchAnswerBatches creates a 2-partition topic on the node at natsAddr, stores
// three batches of about 60 KiB in each partition, and returns the fewest batches
// one fetch of both partitions from offset 0 got for a partition from the Kafka
// listener at addr, asking for up to 1 MiB a partition.
func fetchAnswerBatches(t *testing.T, natsAddr, addr, topic string) int {
	t.Helper()
	ctx := t.Context()
	createTopicAt(t, natsAddr, topic, 2)
	kc := newFetchV12Client(t, addr,
		kgo.ProducerBatchMaxBytes(64<<10), kgo.ProducerLinger(time.Second), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer kc.Close()
	value := []byte(strings.Repeat("v", 4<<10))
	for range 3 {
		var recs []*kgo.Record
		for i := range 28 { // 14 records of 4 KiB a partition: one batch each
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: value})
		}
		if err := kc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	resp := fetchV12(t, kc, topic, 2, 50<<20, 1<<20, -1) // sessionless
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("fetch of %s: code %d, answer %+v", topic, resp.ErrorCode, resp.Topics)
	}
	fewest := -1
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Fatalf("fetch of %s/%d: code %d, %d bytes; want its first batches", topic, p.Partition, p.ErrorCode, len(p.RecordBatches))
		}
		n := 0
		for b := p.RecordBatches; len(b) >= 12; n++ {
			size := 12 + int(binary.BigEndian.Uint32(b[8:12]))
			if size > len(b) {
				t.Fatalf("fetch of %s/%d: a batch of %d bytes in %d", topic, p.Partition, size, len(b))
			}
			b = b[size:]
		}
		if fewest < 0 || n < fewest {
			fewest = n
		}
	}
	return fewest
}

// TestServerKafkaFetchMaxBytes: --kafka-fetch-max-bytes (QXD_KAFKA_FETCH_MAX_BYTES,
// the config file's kafka.fetch_max_bytes) bounds what one fetch answer of the
// Kafka listener carries, below what the client asks for; by default (2 MiB) the
// same fetch gets every stored batch. A value that is not a size above 0 stops the
// server with one line naming the flag or key.
func TestServerKafkaFetchMaxBytes(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, "--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr)
		if got := fetchAnswerBatches(t, natsAddr, kafkaAddr, "max-default"); got < 2 {
			t.Fatalf("a fetch with the default bound got %d batch of a partition, want more", got)
		}
	})
	t.Run("flag", func(t *testing.T) {
		t.Parallel()
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, "--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr, "--kafka-fetch-max-bytes", "64KiB")
		// 32 KiB a partition: each gets its first batch only.
		if got := fetchAnswerBatches(t, natsAddr, kafkaAddr, "max-flag"); got != 1 {
			t.Fatalf("a fetch with --kafka-fetch-max-bytes 64KiB got %d batches of a partition, want its first alone", got)
		}
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		conf := filepath.Join(t.TempDir(), "qxd.conf")
		if err := os.WriteFile(conf, []byte("kafka { fetch_max_bytes: \"64KiB\" }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		natsAddr, kafkaAddr := freePort(t), freePort(t)
		startServer(t, "--config", conf, "--listen", natsAddr, "--data", t.TempDir(), "--kafka-listen", kafkaAddr)
		if got := fetchAnswerBatches(t, natsAddr, kafkaAddr, "max-file"); got != 1 {
			t.Fatalf("a fetch with kafka.fetch_max_bytes \"64KiB\" got %d batches of a partition, want its first alone", got)
		}
	})
	t.Run("bad", func(t *testing.T) {
		t.Parallel()
		bad := filepath.Join(t.TempDir(), "qxd.conf")
		if err := os.WriteFile(bad, []byte("kafka { fetch_max_bytes: \"none\" }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--kafka-fetch-max-bytes", "0"}, `--kafka-fetch-max-bytes "0" is not a size above 0`},
			{[]string{"--kafka-fetch-max-bytes", "lots"}, `--kafka-fetch-max-bytes "lots" is not a size above 0`},
			{[]string{"--config", bad}, "kafka.fetch_max_bytes: none is not a size above 0"},
		} {
			var out syncBuffer
			args := append([]string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--kafka-listen", ""}, tc.args...)
			err := run(t.Context(), args, strings.NewReader(""), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: %v, want one line containing %q", tc.args, err, tc.want)
			}
		}
	})
}
