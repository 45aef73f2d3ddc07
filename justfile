# Everyday recipes. `just` is not needed for the README's two commands;
# install it with `npm install -g rust-just`.

default:
    @just --list

# Build the qxd binary into ./bin/qxd.
build:
    go build -o bin/qxd ./cmd/qxd

# Run a single node with data in ./qxd-data.
run:
    go run ./cmd/qxd server

# The test suite, as the README runs it.
test:
    go test ./...

# The test suite with the race detector, as CI runs it.
race:
    go test -race -count=1 ./...

# What CI runs.
ci:
    bash .ci/run

# qxd against raw JetStream in the same run: medians of 3 runs and ratios.
bench:
    go run ./bench/compare -runs 3
    go test -run '^$' -bench . -benchtime 1x -count 3 ./bench/
    go run ./bench/relay -runs 5

# Scale curves (partitions, record size, group members, topics) as Markdown tables;
# a few minutes.
scale:
    go test -tags scale -run TestScale -v -count=1 -timeout 60m ./bench/

# Fuzz the batch decoder, topic name and permission mapping, partitioner and config
# parser for a while each.
fuzz seconds="30":
    go test -run '^$' -fuzz '^FuzzDecodeRecords$' -fuzztime {{seconds}}s ./semantics/
    go test -run '^$' -fuzz '^FuzzParseBatchHeader$' -fuzztime {{seconds}}s ./semantics/
    go test -run '^$' -fuzz '^FuzzTopicNames$' -fuzztime {{seconds}}s ./semantics/
    go test -run '^$' -fuzz '^FuzzMurmur2$' -fuzztime {{seconds}}s ./partitioner/
    go test -run '^$' -fuzz '^FuzzGrantSubjects$' -fuzztime {{seconds}}s ./semantics/
    go test -run '^$' -fuzz '^FuzzParseConfig$' -fuzztime {{seconds}}s ./server/

# gofmt and go vet.
lint:
    test -z "$(gofmt -l .)"
    go vet ./...

# Randomized node kills, pauses and partitions for a while (QXD_CHAOS_DURATION, default 2m); prints a summary.
chaos duration="2m":
    QXD_CHAOS_DURATION={{duration}} go test -tags chaos -run TestChaos -v -timeout 60m ./cmd/qxd/

# The exactly-once pipeline on three node processes while members, partition
# leaders and the transaction coordinator's node are killed at random for a while
# (client=sdk|franz-go|librdkafka; librdkafka members are python3 processes with
# confluent-kafka, skipped without it: `just kafka-clients`); prints the counts
# and the faults.
eos duration="2m" client="sdk":
    QXD_EOS_DURATION={{duration}} QXD_EOS_CLIENT={{client}} go test -tags chaos -count=1 -run 'TestExactlyOnceChaos' -v -timeout 60m ./cmd/qxd/

# One fault drill on three node processes under a keyed producer and a consumer
# group: fault=pause|kill|stop|int|cut (cut: root, network namespaces) of the leader
# of partition 0 (target=leader) or of the groups bucket (target=buckets) for `pause`;
# via=faulty connects the producer to that node. Prints the longest acknowledgement
# wait of partitions on the faulty and on healthy nodes, before and after the node
# came back, and what the group read twice (the SUMMARY line).
drill fault="pause" pause="15s" target="leader" via="healthy":
    QXD_DRILL_FAULT={{fault}} QXD_DRILL_PAUSE={{pause}} QXD_DRILL_TARGET={{target}} QXD_DRILL_VIA={{via}} go test -tags chaos -count=1 -run TestFaultDrill -v -timeout 15m ./cmd/qxd/

# The fault drill for Kafka clients: franz-go producer (keyed, acks=all) and group
# member through a partition leader that is killed, paused or cut off
# (fault=kill|pause|cut|pair, pair: cut from one other node only; root,
# network namespaces); timeouts=short (5 s request
# timeouts, as docs/kafka.md recommends) or default (franz-go's own: a pause is
# then reported without the faulty node's bound); prints the longest
# acknowledgement wait on the faulty and on healthy nodes (the SUMMARY line).
kafka-drill fault="cut" hold="15s" timeouts="short":
    QXD_KAFKA_FAULT={{fault}} QXD_CUT_HOLD={{hold}} QXD_KAFKA_TIMEOUTS={{timeouts}} go test -tags chaos -count=1 -run 'TestKafkaFaultDrill$' -v -timeout 15m ./cmd/qxd/

# The same drill with librdkafka clients: a confluent-kafka producer (idempotent,
# acks=all) and group member as python3 processes (skipped without
# python3-confluent-kafka: `just kafka-clients` installs it); timeouts=short sets
# socket.timeout.ms to 5 s, default keeps librdkafka's.
kafka-drill-rdkafka fault="cut" hold="15s" timeouts="short":
    QXD_KAFKA_FAULT={{fault}} QXD_CUT_HOLD={{hold}} QXD_KAFKA_TIMEOUTS={{timeouts}} go test -tags chaos -count=1 -run 'TestKafkaRdkafkaFaultDrill$' -v -timeout 15m ./cmd/qxd/

# The same drill with the Java client (kafka-clients 3.3.1): an idempotent
# producer (acks=all) and a group member as java processes (skipped without
# java/javac or the jar: `just kafka-clients`); timeouts=short sets
# request.timeout.ms to 5 s, default keeps Java's 30 s.
kafka-drill-java fault="cut" hold="15s" timeouts="short":
    QXD_KAFKA_FAULT={{fault}} QXD_CUT_HOLD={{hold}} QXD_KAFKA_TIMEOUTS={{timeouts}} go test -tags chaos -count=1 -run 'TestKafkaJavaFaultDrill$' -v -timeout 15m ./cmd/qxd/

# A cut between two live nodes (n1 and n2; n3 reaches both; root, network
# namespaces) for `hold` under the drill's keyed producer and consumer group,
# then 10 s after the heal; via=healthy connects the producer to n3, faulty to
# n1; buckets=split puts the groups bucket's leader on n1 and the offsets and
# partition-checkpoint buckets' on n2 first, buckets=split-at-cut the same
# immediately before the cut (and says whether they were split at it). Prints the longest acknowledgement
# wait of the partitions each node led, the group's longest read gap and what it
# read twice (the SUMMARY line).
pair-drill hold="15s" via="healthy" buckets="":
    QXD_DRILL_PAUSE={{hold}} QXD_DRILL_VIA={{via}} QXD_DRILL_BUCKETS={{buckets}} go test -tags chaos -count=1 -run 'TestPairCutDrill$' -v -timeout 15m ./cmd/qxd/

# Every drill of docs/operations.md in turn (about 16 minutes; the cuts need root),
# printing their SUMMARY lines.
drills:
    #!/usr/bin/env bash
    set -uo pipefail
    go test -c -tags chaos -o /tmp/qxd-drill.test ./cmd/qxd/
    cd cmd/qxd
    for d in "pause leader healthy" "pause leader faulty" "pause buckets healthy" "kill leader healthy" \
        "int leader faulty" "stop leader healthy" "cut leader healthy" "cut leader faulty" "cut buckets healthy"; do
        set -- $d
        QXD_DRILL_FAULT=$1 QXD_DRILL_TARGET=$2 QXD_DRILL_VIA=$3 /tmp/qxd-drill.test -test.run TestFaultDrill -test.v -test.timeout 15m 2>&1 |
            grep -E 'SUMMARY|^(--- |FAIL|ok)'
    done
    /tmp/qxd-drill.test -test.run 'TestPairCutDrill$' -test.v -test.timeout 15m 2>&1 | grep -E 'SUMMARY|^(--- |FAIL|ok)'

# The fault tests with real processes: SIGKILL of a partition leader, network
# partitions in network namespaces (root), leader moves under load.
faults:
    go test -tags chaos -run 'TestProcessClusterSIGKILL|TestNetnsPartition|TestCutOffNode|TestCutProducersNodeDrill|TestWholeClusterCut|TestLeaderMovesUnderLoad' -v -timeout 30m ./cmd/qxd/
    go test -tags chaos -run 'TestLeaderKilledUnderLoad|TestRollingRestart' -v -timeout 30m .

# Power cuts and damaged block files against real node processes (root, /dev/fuse):
# each power-cut scenario with --sync always (nothing acknowledged may be lost) and
# --sync 2m (a loss must show); damaged block files on one node and on the leader
# of three (describe and cluster info must show it; a repair rebuilds the copy);
# prints a RESULT line per run. About 13 minutes on a quiet machine, more when busy (the altered-durability run alone took 40 s to 5 min).
durability:
    #!/usr/bin/env bash
    set -euo pipefail
    go test -count=1 -run 'TestCut' -v ./internal/powercut/
    go test -tags chaos -count=1 -run 'TestDurabilityPowerCut|TestDurabilityCorruption|TestCorruptionLeaderThreeNodes|TestCorruptionRepairThreeNodes' -v -timeout 30m ./cmd/qxd/ 2>&1 |
        grep -E '^(=== RUN|--- |\s+--- |PASS|FAIL|ok)|RESULT|power cut|no loss|lost|missing'

# Real Kafka clients against a node's Kafka listener: kcat (librdkafka),
# confluent-kafka and kafka-python from Debian's packages (root: installs them),
# KafkaJS (Node.js; installed from npm as kafka/testdata/kafkajs/package-lock.json
# pins it, into the user's cache directory, by the test itself), the Java client
# (OpenJDK 17 from Debian; kafka-clients 3.3.1 taken by the test from a pinned npm
# package, see docs/kafka.md), and the Go clients Sarama and kafka-go (test
# dependencies in go.mod).
kafka-clients:
    apt-get update && apt-get install -y kcat python3-confluent-kafka python3-kafka
    command -v javac >/dev/null || apt-get install -y openjdk-17-jdk-headless
    command -v node >/dev/null && command -v npm >/dev/null || apt-get install -y nodejs npm
    go test -tags kafkaclients -count=1 -run 'TestClient' -v ./kafka/
    go test -count=1 -run 'TestREADME$' -v ./cmd/qxd/   # its kcat and confluent-kafka blocks run only with them

# The web console in headless Chromium (Debian's chromium, installed here; root):
# each page against a node with data, a topic created through the form, records
# browsed, lag falling while a group commits. Screenshots go to
# server/httpapi/testdata/out/.
browser:
    command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
    go test -tags browser -count=1 -run TestConsoleInBrowser -v -timeout 10m ./server/httpapi/
