// The Apache Kafka Java client (kafka-clients) against a qxd node's Kafka listener,
// run by kafka/clients_java_test.go:
//
//   java -cp kafka-clients.jar:CLASSES Check SCENARIO BROKER[,BROKER...] [ARGS...]
//
// Each scenario prints one JSON object on stdout (what the client did and was
// told) for the Go test to check against the SDK. Admin steps record an error as
// "error: ExceptionClass: message" instead of stopping, so the test shows every
// step that differs. A scenario that fails exits non-zero with the error on stderr.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.common.utils.AppInfoParser;

public class Check {
    public static void main(String[] argv) throws Exception {
        String scenario = argv[0], brokers = argv[1];
        String[] args = Arrays.copyOfRange(argv, 2, argv.length);
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("version", AppInfoParser.getVersion());
        switch (scenario) {
            case "produce": produce(res, brokers, args[0], Integer.parseInt(args[1])); break;
            case "group": group(res, brokers, args[0], args[1], Integer.parseInt(args[2])); break;
            case "admin": admin(res, brokers, args[0], args[1]); break;
            case "cluster": cluster(res, brokers, args[0], Integer.parseInt(args[1])); break;
            case "txn": txn(res, brokers, args[0], args[1], args[2]); break;
            case "cooperative": cooperative(res, brokers, args[0], args[1], Integer.parseInt(args[2])); break;
            case "static": staticMembers(res, brokers, args[0], args[1], Integer.parseInt(args[2])); break;
            case "failover": failover(res, brokers, args[0], Integer.parseInt(args[1])); break;
            case "coordinator": coordinator(res, brokers, args[0], args[1], Integer.parseInt(args[2])); break;
            default: throw new IllegalArgumentException("unknown scenario " + scenario);
        }
        System.out.println(json(res));
        System.out.flush();
        // Client threads that linger past close must not hold the process.
        System.exit(0);
    }

    static Properties common(String brokers) {
        Properties p = new Properties();
        p.put("bootstrap.servers", brokers);
        p.put("client.id", "qxd-java-check");
        p.put("request.timeout.ms", "20000");
        p.put("default.api.timeout.ms", "30000");
        return p;
    }

    static KafkaProducer<String, String> producer(String brokers, String compression) {
        Properties p = common(brokers);
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("max.in.flight.requests.per.connection", "5");
        p.put("compression.type", compression);
        p.put("linger.ms", "20");
        p.put("delivery.timeout.ms", "60000");
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static Map<String, Object> rec(String who, String key, String value, int partition, long offset) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (who != null) m.put("who", who);
        m.put("key", key);
        m.put("value", value);
        m.put("partition", partition);
        m.put("offset", offset);
        return m;
    }

    // produce: n keyed records, each sent and awaited on its own (each one's
    // partition and offset as the client was told), then n more per compression
    // codec sent together and flushed, so they travel in multi-record batches.
    static void produce(Map<String, Object> res, String brokers, String topic, int n) throws Exception {
        List<Object> keyed = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(brokers, "none")) {
            for (int i = 0; i < n; i++) {
                String key = "key-" + i, value = "v" + i;
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, key, value);
                r.headers().add("origin", "java".getBytes(StandardCharsets.UTF_8));
                RecordMetadata md = p.send(r).get(30, TimeUnit.SECONDS);
                keyed.add(rec(null, key, value, md.partition(), md.offset()));
            }
        }
        res.put("keyed", keyed);
        List<Object> batched = new ArrayList<>();
        for (String codec : new String[] {"gzip", "snappy", "lz4", "zstd"}) {
            try (KafkaProducer<String, String> p = producer(brokers, codec)) {
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                List<String[]> sent = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    String key = codec + "-key-" + (i % 7), value = codec + "-" + i;
                    fs.add(p.send(new ProducerRecord<>(topic, key, value)));
                    sent.add(new String[] {key, value});
                }
                p.flush();
                for (int i = 0; i < n; i++) {
                    RecordMetadata md = fs.get(i).get(30, TimeUnit.SECONDS);
                    batched.add(rec(null, sent.get(i)[0], sent.get(i)[1], md.partition(), md.offset()));
                }
            }
        }
        res.put("batched", batched);
    }

    static KafkaConsumer<String, String> consumer(String brokers, String group, String instance) {
        Properties p = common(brokers);
        p.put("group.id", group);
        p.put("client.id", "qxd-java-check-" + instance);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("session.timeout.ms", "10000");
        p.put("heartbeat.interval.ms", "500");
        p.put("max.poll.records", "7");
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    // group: member a subscribes and reads; member b joins once a has read some,
    // so the group rebalances and both hold partitions; a leaves, b takes all its
    // partitions back and reads on. Each member commits what it read after every
    // poll (commitSync). Prints every record read with who read it, every
    // assignment each member was given, and the offsets b sees committed at the end.
    static void group(Map<String, Object> res, String brokers, String topic, String group, int total) throws Exception {
        List<Object> consumed = Collections.synchronizedList(new ArrayList<>());
        List<Object> assignments = Collections.synchronizedList(new ArrayList<>());
        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicBoolean stopA = new AtomicBoolean(), stopB = new AtomicBoolean();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        CountDownLatch bAssigned = new CountDownLatch(1);
        Map<String, Object> committed = new TreeMap<>();
        ExecutorService ex = Executors.newFixedThreadPool(2);
        class Member implements Runnable {
            final String who;
            final AtomicBoolean stop;
            Member(String who, AtomicBoolean stop) { this.who = who; this.stop = stop; }
            public void run() {
                try (KafkaConsumer<String, String> c = consumer(brokers, group, who)) {
                    c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                        public void onPartitionsRevoked(Collection<TopicPartition> ps) {}
                        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                            List<Integer> parts = new ArrayList<>();
                            for (TopicPartition tp : ps) parts.add(tp.partition());
                            Collections.sort(parts);
                            Map<String, Object> a = new LinkedHashMap<>();
                            a.put("who", who);
                            a.put("partitions", parts);
                            assignments.add(a);
                            if (who.equals("b") && !ps.isEmpty()) bAssigned.countDown();
                        }
                    });
                    while (!stop.get()) {
                        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                        for (ConsumerRecord<String, String> r : rs) {
                            consumed.add(rec(who, r.key(), r.value(), r.partition(), r.offset()));
                            seen.add(r.partition() + "/" + r.offset());
                        }
                        if (!rs.isEmpty()) c.commitSync();
                        // Member a reads slowly so that b finds records left to read.
                        if (who.equals("a")) Thread.sleep(50);
                    }
                    if (who.equals("b")) {
                        Set<TopicPartition> tps = new HashSet<>();
                        for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
                        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : c.committed(tps).entrySet()) {
                            committed.put(String.valueOf(e.getKey().partition()), e.getValue() == null ? -1 : e.getValue().offset());
                        }
                    }
                } catch (Throwable e) {
                    failed.compareAndSet(null, e);
                }
            }
        }
        ex.submit(new Member("a", stopA));
        until("a reads a few records", () -> seen.size() >= 10 || failed.get() != null);
        ex.submit(new Member("b", stopB));
        if (!bAssigned.await(60, TimeUnit.SECONDS)) throw new TimeoutException("b was never assigned a partition");
        until("a third of the records read", () -> seen.size() >= total / 3 || failed.get() != null);
        stopA.set(true);
        until("all " + total + " records read", () -> seen.size() >= total || failed.get() != null);
        stopB.set(true);
        ex.shutdown();
        if (!ex.awaitTermination(60, TimeUnit.SECONDS)) throw new TimeoutException("members did not close");
        if (failed.get() != null) throw new Exception("a member failed", failed.get());
        res.put("consumed", consumed);
        res.put("assignments", assignments);
        res.put("committed", committed);
    }

    interface Step { Object call() throws Exception; }

    // step runs one admin call and records its result, or its error.
    static void step(Map<String, Object> steps, String name, Step s) {
        try {
            steps.put(name, s.call());
        } catch (Exception e) {
            Throwable c = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            steps.put(name, "error: " + c.getClass().getSimpleName() + ": " + c.getMessage());
        }
    }

    static Map<String, Object> offsets(Admin a, String topic, int partitions, OffsetSpec spec) throws Exception {
        Map<TopicPartition, OffsetSpec> q = new HashMap<>();
        for (int i = 0; i < partitions; i++) q.put(new TopicPartition(topic, i), spec);
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : a.listOffsets(q).all().get().entrySet()) {
            out.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
        }
        return out;
    }

    static Map<String, Object> topicConfigs(Admin a, String topic, String... names) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config cfg = a.describeConfigs(List.of(r)).all().get().get(r);
        Map<String, Object> out = new TreeMap<>();
        for (String n : names) {
            ConfigEntry e = cfg.get(n);
            out.put(n, e == null ? null : e.value());
        }
        return out;
    }

    static Map<String, Object> groupOffsets(Admin a, String group) throws Exception {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().entrySet()) {
            out.put(e.getKey().partition() + "", e.getValue() == null ? -1 : e.getValue().offset());
        }
        return out;
    }

    // admin: the AdminClient's calls on a topic and a group.
    static void admin(Map<String, Object> res, String brokers, String topic, String group) throws Exception {
        Map<String, Object> steps = new LinkedHashMap<>();
        res.put("steps", steps);
        try (Admin a = Admin.create(common(brokers))) {
            step(steps, "describeCluster", () -> a.describeCluster().nodes().get().size());
            step(steps, "createTopics", () -> {
                NewTopic nt = new NewTopic(topic, 2, (short) 1).configs(Map.of("retention.ms", "3600000", "max.message.bytes", "200000"));
                CreateTopicsResult r = a.createTopics(List.of(nt));
                r.all().get();
                return Map.of("partitions", r.numPartitions(topic).get(), "replicationFactor", (int) r.replicationFactor(topic).get());
            });
            step(steps, "createTopicsAgain", () -> { a.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get(); return "created"; });
            step(steps, "createTopicsBadName", () -> { a.createTopics(List.of(new NewTopic("bad/name", 1, (short) 1))).all().get(); return "created"; });
            step(steps, "listTopics", () -> a.listTopics().names().get().contains(topic));
            step(steps, "describeTopics", () -> {
                TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                List<Object> ps = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    ps.add(Map.of("partition", p.partition(), "leader", p.leader() != null, "replicas", p.replicas().size(), "isr", p.isr().size()));
                }
                return Map.of("name", d.name(), "internal", d.isInternal(), "partitions", ps, "topicId", d.topicId() != null && !d.topicId().equals(Uuid.ZERO_UUID));
            });
            step(steps, "describeConfigs", () -> topicConfigs(a, topic, "retention.ms", "max.message.bytes", "cleanup.policy"));
            step(steps, "incrementalAlterConfigs", () -> {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
                a.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET)))).all().get();
                return topicConfigs(a, topic, "retention.ms", "max.message.bytes");
            });
            step(steps, "createPartitions", () -> {
                a.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all().get();
                return a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            });

            // Ten records to each partition, at known timestamps, then the first
            // four of partition 0 deleted.
            long t0 = System.currentTimeMillis() - 60_000;
            try (KafkaProducer<String, String> p = producer(brokers, "none")) {
                for (int part = 0; part < 3; part++) {
                    for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(topic, part, t0 + i * 1000L, null, "p" + part + "-" + i));
                }
                p.flush();
            }
            step(steps, "deleteRecords", () -> {
                DeleteRecordsResult r = a.deleteRecords(Map.of(new TopicPartition(topic, 0), RecordsToDelete.beforeOffset(4)));
                return r.lowWatermarks().get(new TopicPartition(topic, 0)).get().lowWatermark();
            });
            step(steps, "listOffsetsEarliest", () -> offsets(a, topic, 3, OffsetSpec.earliest()));
            step(steps, "listOffsetsLatest", () -> offsets(a, topic, 3, OffsetSpec.latest()));
            step(steps, "listOffsetsForTimestamp", () -> offsets(a, topic, 3, OffsetSpec.forTimestamp(t0 + 5500)));
            step(steps, "listOffsetsMaxTimestamp", () -> offsets(a, topic, 3, OffsetSpec.maxTimestamp()));

            // A member of the group reads everything and commits; the group is
            // described while it is a member, then it leaves.
            try (KafkaConsumer<String, String> c = consumer(brokers, group, "admin")) {
                c.subscribe(List.of(topic));
                int read = 0;
                long deadline = System.currentTimeMillis() + 60_000;
                while (read < 26 && System.currentTimeMillis() < deadline) {
                    ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                    read += rs.count();
                    if (!rs.isEmpty()) c.commitSync();
                }
                steps.put("groupRead", read);
                step(steps, "listConsumerGroups", () -> {
                    for (ConsumerGroupListing l : a.listConsumerGroups().all().get()) {
                        if (l.groupId().equals(group)) return Map.of("groupId", l.groupId(), "simple", l.isSimpleConsumerGroup(), "state", String.valueOf(l.state().orElse(null)));
                    }
                    return "missing";
                });
                step(steps, "describeConsumerGroups", () -> {
                    ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).all().get().get(group);
                    int assigned = 0;
                    for (MemberDescription m : d.members()) assigned += m.assignment().topicPartitions().size();
                    return Map.of("state", d.state().toString(), "members", d.members().size(), "assigned", assigned,
                        "assignor", d.partitionAssignor(), "coordinator", d.coordinator() != null);
                });
            }
            step(steps, "listConsumerGroupOffsets", () -> groupOffsets(a, group));
            step(steps, "alterConsumerGroupOffsets", () -> {
                a.alterConsumerGroupOffsets(group, Map.of(new TopicPartition(topic, 1), new OffsetAndMetadata(7))).all().get();
                return groupOffsets(a, group);
            });
            step(steps, "deleteConsumerGroupOffsets", () -> {
                a.deleteConsumerGroupOffsets(group, Set.of(new TopicPartition(topic, 2))).all().get();
                return groupOffsets(a, group);
            });
            step(steps, "deleteConsumerGroups", () -> { a.deleteConsumerGroups(List.of(group)).all().get(); return "deleted"; });
            step(steps, "describeDeletedGroup", () -> a.describeConsumerGroups(List.of(group)).all().get().get(group).state().toString());
            step(steps, "deleteTopics", () -> {
                a.deleteTopics(List.of(topic)).all().get();
                until("topic gone", () -> !a.listTopics().names().get().contains(topic));
                return "deleted";
            });
        }
    }

    // cluster: what the client is told of the cluster through one broker, and
    // keyed records from an idempotent producer, which reaches every partition's
    // leader.
    static void cluster(Map<String, Object> res, String brokers, String topic, int n) throws Exception {
        try (Admin a = Admin.create(common(brokers))) {
            List<String> nodes = new ArrayList<>();
            for (Node nd : a.describeCluster().nodes().get()) nodes.add(nd.host() + ":" + nd.port());
            Collections.sort(nodes);
            res.put("brokers", nodes);
            res.put("controller", a.describeCluster().controller().get() != null);
            List<Object> leaders = new ArrayList<>();
            for (TopicPartitionInfo p : a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions()) {
                leaders.add(Map.of("partition", p.partition(), "leader", p.leader() == null ? -1 : p.leader().id(), "replicas", p.replicas().size(), "isr", p.isr().size()));
            }
            res.put("leaders", leaders);
        }
        List<Object> keyed = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(brokers, "lz4")) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) fs.add(p.send(new ProducerRecord<>(topic, "key-" + i, "v" + i)));
            p.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata md = fs.get(i).get(30, TimeUnit.SECONDS);
                keyed.add(rec(null, "key-" + i, "v" + i, md.partition(), md.offset()));
            }
        }
        res.put("keyed", keyed);
    }

    static KafkaProducer<String, String> txnProducer(String brokers, String id) {
        Properties p = common(brokers);
        p.put("transactional.id", id);
        p.put("transaction.timeout.ms", "30000");
        p.put("linger.ms", "5");
        p.put("delivery.timeout.ms", "60000");
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> reader(String brokers, String group, String isolation) {
        Properties p = common(brokers);
        if (group != null) p.put("group.id", group);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", isolation);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    // readAll reads every partition of topic from its start to the end offsets the
    // consumer's isolation level gives (the last stable offset for read_committed)
    // and returns what it read, in the order read.
    static List<Object> readAll(String brokers, String topic, String isolation) throws Exception {
        List<Object> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = reader(brokers, null, isolation)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = c.endOffsets(tps);
            until(isolation + " reader reaches " + ends, () -> {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                    out.add(rec(null, r.key(), r.value(), r.partition(), r.offset()));
                }
                for (TopicPartition tp : tps) if (c.position(tp) < ends.get(tp)) return false;
                return true;
            });
            Map<String, Object> positions = new TreeMap<>();
            for (TopicPartition tp : tps) positions.put(String.valueOf(tp.partition()), c.position(tp));
            Map<String, Object> end = new LinkedHashMap<>();
            end.put("key", null);
            end.put("value", "end");
            end.put("positions", positions);
            out.add(end);
        }
        return out;
    }

    // txn: a transactional producer commits ten keyed records, aborts five, and
    // commits five more; read_committed and read_uncommitted readers read the input
    // to the end. A consume-transform-produce round follows: a read_committed group
    // member reads the committed input, the producer writes each value transformed
    // to out and sends the member's positions to the transaction
    // (sendOffsetsToTransaction) before committing; a second round does the same
    // with nothing new read but aborts. Prints what each reader read, the offsets
    // sent, what committed() says after each round, and the output read committed.
    static void txn(Map<String, Object> res, String brokers, String in, String out, String group) throws Exception {
        try (KafkaProducer<String, String> p = txnProducer(brokers, "java-txn")) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(in, "k" + (i % 5), "in" + i));
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) p.send(new ProducerRecord<>(in, "k" + (i % 5), "aborted" + i));
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            for (int i = 10; i < 15; i++) p.send(new ProducerRecord<>(in, "k" + (i % 5), "in" + i));
            p.commitTransaction();
            res.put("readCommitted", readAll(brokers, in, "read_committed"));
            res.put("readUncommitted", readAll(brokers, in, "read_uncommitted"));

            try (KafkaConsumer<String, String> c = reader(brokers, group, "read_committed")) {
                c.subscribe(List.of(in));
                List<ConsumerRecord<String, String>> got = new ArrayList<>();
                until("the group member reads 15 committed records", () -> {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) got.add(r);
                    return got.size() >= 15;
                });
                List<Object> consumed = new ArrayList<>();
                for (ConsumerRecord<String, String> r : got) consumed.add(rec(null, r.key(), r.value(), r.partition(), r.offset()));
                res.put("consumed", consumed);
                Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
                Map<String, Object> sent = new TreeMap<>();
                for (TopicPartition tp : c.assignment()) {
                    positions.put(tp, new OffsetAndMetadata(c.position(tp)));
                    sent.put(String.valueOf(tp.partition()), c.position(tp));
                }
                res.put("sentOffsets", sent);
                p.beginTransaction();
                for (ConsumerRecord<String, String> r : got) p.send(new ProducerRecord<>(out, r.key(), "out-" + r.value()));
                p.sendOffsetsToTransaction(positions, c.groupMetadata());
                p.commitTransaction();
                res.put("committed", committedOf(c, c.assignment()));

                // An aborted round: offsets one past the positions are sent, with a
                // record, and thrown away with it.
                Map<TopicPartition, OffsetAndMetadata> further = new HashMap<>();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : positions.entrySet()) further.put(e.getKey(), new OffsetAndMetadata(e.getValue().offset() + 1));
                p.beginTransaction();
                p.send(new ProducerRecord<>(out, "x", "out-aborted"));
                p.sendOffsetsToTransaction(further, c.groupMetadata());
                p.flush();
                p.abortTransaction();
                res.put("committedAfterAbort", committedOf(c, c.assignment()));
            }
        }
        res.put("output", readAll(brokers, out, "read_committed"));
    }

    static Map<String, Object> committedOf(KafkaConsumer<String, String> c, Set<TopicPartition> tps) {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : c.committed(tps).entrySet()) {
            out.put(String.valueOf(e.getKey().partition()), e.getValue() == null ? -1 : e.getValue().offset());
        }
        return out;
    }

    // Member is one group member on its own thread: it subscribes, records every
    // rebalance callback (with the generation it came in) until it is told to stop,
    // reads, and commits what it read after every poll (commitSync), so that its
    // successor starts where it stopped.
    static class Member implements Runnable {
        final String who, topic;
        final Properties props;
        final List<Object> consumed, events;
        final Set<String> seen;
        final AtomicReference<Throwable> failed;
        final AtomicBoolean stop = new AtomicBoolean();
        final CountDownLatch assigned = new CountDownLatch(1), closed = new CountDownLatch(1);
        final Set<Integer> owned = ConcurrentHashMap.newKeySet();
        final AtomicInteger commitRetries = new AtomicInteger();
        final List<Object> commits = Collections.synchronizedList(new ArrayList<>());
        volatile int generation = -1;
        volatile long pause;

        Member(String who, String topic, Properties props, List<Object> consumed, List<Object> events, Set<String> seen, AtomicReference<Throwable> failed) {
            this.who = who; this.topic = topic; this.props = props; this.consumed = consumed; this.events = events; this.seen = seen; this.failed = failed;
        }

        void event(KafkaConsumer<String, String> c, String kind, Collection<TopicPartition> ps) {
            if (stop.get()) return; // the callbacks of close() are not a rebalance
            List<Integer> parts = new ArrayList<>();
            for (TopicPartition tp : ps) parts.add(tp.partition());
            Collections.sort(parts);
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("who", who);
            e.put("event", kind);
            e.put("partitions", parts);
            e.put("generation", c.groupMetadata().generationId());
            events.add(e);
        }

        public void run() {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                        event(c, "revoked", ps);
                        // What was read of them is committed before they go.
                        Map<TopicPartition, OffsetAndMetadata> pos = new HashMap<>();
                        for (TopicPartition tp : ps) pos.put(tp, new OffsetAndMetadata(c.position(tp)));
                        if (!pos.isEmpty() && !stop.get()) c.commitSync(pos);
                        for (TopicPartition tp : ps) owned.remove(tp.partition());
                    }
                    public void onPartitionsLost(Collection<TopicPartition> ps) {
                        event(c, "lost", ps);
                        for (TopicPartition tp : ps) owned.remove(tp.partition());
                    }
                    public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                        event(c, "assigned", ps);
                        for (TopicPartition tp : ps) owned.add(tp.partition());
                        if (!owned.isEmpty()) assigned.countDown();
                    }
                });
                while (!stop.get()) {
                    ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : rs) {
                        consumed.add(rec(who, r.key(), r.value(), r.partition(), r.offset()));
                        seen.add(r.partition() + "/" + r.offset());
                    }
                    if (!rs.isEmpty()) {
                        try {
                            Map<String, Object> at = new TreeMap<>();
                            for (TopicPartition tp : c.assignment()) at.put(String.valueOf(tp.partition()), c.position(tp));
                            c.commitSync();
                            at.put("who", who);
                            at.put("generation", c.groupMetadata().generationId());
                            commits.add(at);
                        } catch (RebalanceInProgressException e) {
                            // A cooperative member reads on while it rejoins, and
                            // commits then fail: the next poll finishes the
                            // rebalance (committing partitions it revokes) and the
                            // next commit takes the rest.
                            commitRetries.incrementAndGet();
                        }
                    }
                    generation = c.groupMetadata().generationId();
                    if (pause > 0) Thread.sleep(pause);
                }
                // Before closing, what was read is committed; a commit refused
                // during a rebalance is tried again after a poll finished it.
                for (int i = 0; ; i++) {
                    try {
                        c.commitSync();
                        break;
                    } catch (RebalanceInProgressException e) {
                        if (i == 50) throw e;
                        commitRetries.incrementAndGet();
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                            consumed.add(rec(who, r.key(), r.value(), r.partition(), r.offset()));
                            seen.add(r.partition() + "/" + r.offset());
                        }
                    }
                }
            } catch (Throwable e) {
                failed.compareAndSet(null, new Exception("member " + who, e));
            } finally {
                closed.countDown();
            }
        }
    }

    static Properties memberProps(String brokers, String group, String who) {
        Properties p = common(brokers);
        p.put("group.id", group);
        p.put("client.id", "qxd-java-check-" + who);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("session.timeout.ms", "10000");
        p.put("heartbeat.interval.ms", "500");
        p.put("max.poll.records", "7");
        return p;
    }

    static void await(CountDownLatch l, String what, AtomicReference<Throwable> failed) throws Exception {
        until(what, () -> l.getCount() == 0 || failed.get() != null);
        if (failed.get() != null) throw new Exception("while waiting for " + what, failed.get());
    }

    // cooperative: members a and b with the CooperativeStickyAssignor. a takes every
    // partition and reads slowly; b joins, and a gives up only the partitions that
    // move to b; a leaves, and b is given a's partitions on top of its own. Prints
    // every record read (with who read it) and every rebalance callback.
    static void cooperative(Map<String, Object> res, String brokers, String topic, String group, int total) throws Exception {
        List<Object> consumed = Collections.synchronizedList(new ArrayList<>()), events = Collections.synchronizedList(new ArrayList<>());
        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Member[] ms = new Member[2];
        for (int i = 0; i < 2; i++) {
            String who = i == 0 ? "a" : "b";
            Properties p = memberProps(brokers, group, who);
            p.put("partition.assignment.strategy", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
            ms[i] = new Member(who, topic, p, consumed, events, seen, failed);
            ms[i].pause = 50;
        }
        new Thread(ms[0]).start();
        await(ms[0].assigned, "a assigned", failed);
        until("a reads a few records", () -> seen.size() >= 10 || failed.get() != null);
        new Thread(ms[1]).start();
        await(ms[1].assigned, "b assigned", failed);
        until("a and b both own partitions, half the records read", () -> failed.get() != null ||
            (!ms[0].owned.isEmpty() && !ms[1].owned.isEmpty() && seen.size() >= total / 2));
        ms[0].stop.set(true);
        await(ms[0].closed, "a closed", failed);
        ms[1].pause = 0;
        until("all " + total + " records read", () -> seen.size() >= total || failed.get() != null);
        res.put("bOwns", new TreeSet<>(ms[1].owned));
        ms[1].stop.set(true);
        await(ms[1].closed, "b closed", failed);
        if (failed.get() != null) throw new Exception("a member failed", failed.get());
        res.put("consumed", consumed);
        res.put("events", events);
        res.put("commitRetries", ms[0].commitRetries.get() + ms[1].commitRetries.get());
        List<Object> commits = new ArrayList<>(ms[0].commits);
        commits.addAll(ms[1].commits);
        res.put("commits", commits);
    }

    // staticMembers: members a and b with group.instance.id; both own partitions.
    // a is closed (a static member sends no LeaveGroup) and started again with the
    // same instance id within session.timeout.ms: it is given its partitions back,
    // and b sees no rebalance (no callback, the same generation). Prints every
    // record read and every callback, a's partitions before and after, and b's
    // generation before a stopped and at the end.
    static void staticMembers(Map<String, Object> res, String brokers, String topic, String group, int total) throws Exception {
        List<Object> consumed = Collections.synchronizedList(new ArrayList<>()), events = Collections.synchronizedList(new ArrayList<>());
        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Member[] ms = new Member[3];
        for (int i = 0; i < 3; i++) {
            String who = new String[] {"a", "b", "a2"}[i];
            Properties p = memberProps(brokers, group, who);
            p.put("group.instance.id", "java-static-" + who.substring(0, 1));
            p.put("session.timeout.ms", "30000");
            ms[i] = new Member(who, topic, p, consumed, events, seen, failed);
            ms[i].pause = 100;
        }
        new Thread(ms[0]).start();
        await(ms[0].assigned, "a assigned", failed);
        new Thread(ms[1]).start();
        await(ms[1].assigned, "b assigned", failed);
        until("a keeps partitions after b joined, both read", () -> failed.get() != null ||
            (!ms[0].owned.isEmpty() && ms[0].generation == ms[1].generation && ms[0].owned.size() + ms[1].owned.size() >= 2 && seen.size() >= 10));
        res.put("aOwned", new TreeSet<>(ms[0].owned));
        res.put("bGeneration", ms[1].generation);
        ms[0].stop.set(true);
        await(ms[0].closed, "a closed", failed);
        long stopped = System.currentTimeMillis();
        new Thread(ms[2]).start();
        await(ms[2].assigned, "a2 assigned", failed);
        res.put("rejoinMillis", System.currentTimeMillis() - stopped);
        res.put("a2Owned", new TreeSet<>(ms[2].owned));
        ms[1].pause = 0;
        ms[2].pause = 0;
        until("all " + total + " records read", () -> seen.size() >= total || failed.get() != null);
        res.put("bGenerationEnd", ms[1].generation);
        res.put("a2Generation", ms[2].generation);
        ms[1].stop.set(true);
        ms[2].stop.set(true);
        await(ms[1].closed, "b closed", failed);
        await(ms[2].closed, "a2 closed", failed);
        if (failed.get() != null) throw new Exception("a member failed", failed.get());
        res.put("consumed", consumed);
        res.put("events", events);
    }

    // failover: an idempotent producer (acks=all) sends n keyed records, ten keys,
    // each value the key's own sequence number, 10 ms apart, while a consumer
    // assigned every partition reads from the start. Progress goes to stderr
    // ("acked N") for the Go test to move and stop partition leaders meanwhile.
    // Prints every acknowledged record, every failed send, and every record read,
    // in the order read.
    static void failover(Map<String, Object> res, String brokers, String topic, int n) throws Exception {
        List<Object> acked = Collections.synchronizedList(new ArrayList<>()), failures = Collections.synchronizedList(new ArrayList<>());
        List<Object> consumed = new ArrayList<>();
        AtomicInteger done = new AtomicInteger();
        Set<String> ackedValues = ConcurrentHashMap.newKeySet();
        Thread prod = new Thread(() -> {
            Properties p = common(brokers);
            p.put("acks", "all");
            p.put("enable.idempotence", "true");
            p.put("max.in.flight.requests.per.connection", "5");
            p.put("linger.ms", "5");
            p.put("delivery.timeout.ms", "120000");
            try (KafkaProducer<String, String> pr = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                int[] seq = new int[10];
                for (int i = 0; i < n; i++) {
                    String key = "key-" + (i % 10), value = key + ":" + seq[i % 10]++;
                    pr.send(new ProducerRecord<>(topic, key, value), (md, err) -> {
                        if (err != null) {
                            failures.add(value + ": " + err);
                        } else {
                            acked.add(rec(null, key, value, md.partition(), md.offset()));
                            ackedValues.add(value);
                        }
                        int d = done.incrementAndGet();
                        if (d % 50 == 0) {
                            System.err.println("acked " + d);
                            System.err.flush();
                        }
                    });
                    Thread.sleep(10);
                }
                pr.flush();
            } catch (Throwable e) {
                failures.add("producer: " + e);
            }
        });
        prod.start();
        try (KafkaConsumer<String, String> c = reader(brokers, null, "read_uncommitted")) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Set<String> read = new HashSet<>();
            long deadline = System.currentTimeMillis() + 90_000;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                    consumed.add(rec(null, r.key(), r.value(), r.partition(), r.offset()));
                    read.add(r.value());
                }
                if (done.get() >= n && read.containsAll(ackedValues)) break;
            }
        }
        prod.join(30_000);
        res.put("acked", acked);
        res.put("failures", failures);
        res.put("consumed", consumed);
    }

    // coordinator: one member of group reads topic's total records slowly,
    // committing (commitSync) after every poll, and prints "consumed N" (records
    // read so far) to stderr after each, so that the test can stop the node
    // running the group's coordinator part way. Prints every record read, every
    // commit that failed, and the offsets committed at the end.
    static void coordinator(Map<String, Object> res, String brokers, String topic, String group, int total) throws Exception {
        List<Object> consumed = new ArrayList<>(), commitFailures = new ArrayList<>();
        Map<String, Object> committed = new TreeMap<>();
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> c = consumer(brokers, group, "coordinator")) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 120_000;
            while (seen.size() < total && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : rs) {
                    consumed.add(rec("coordinator", r.key(), r.value(), r.partition(), r.offset()));
                    seen.add(r.partition() + "/" + r.offset());
                }
                if (!rs.isEmpty()) {
                    try {
                        c.commitSync();
                    } catch (Exception e) {
                        commitFailures.add(seen.size() + ": " + e);
                    }
                    System.err.println("consumed " + seen.size());
                    System.err.flush();
                    Thread.sleep(20);
                }
            }
            Set<TopicPartition> tps = new HashSet<>();
            for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : c.committed(tps).entrySet()) {
                committed.put(String.valueOf(e.getKey().partition()), e.getValue() == null ? -1 : e.getValue().offset());
            }
        }
        res.put("consumed", consumed);
        res.put("commitFailures", commitFailures);
        res.put("committed", committed);
    }

    interface Cond { boolean ok() throws Exception; }

    static void until(String what, Cond c) throws Exception {
        long deadline = System.currentTimeMillis() + 60_000;
        while (!c.ok()) {
            if (System.currentTimeMillis() > deadline) throw new TimeoutException("timed out waiting for " + what);
            Thread.sleep(100);
        }
    }

    static String json(Object o) {
        StringBuilder b = new StringBuilder();
        write(b, o);
        return b.toString();
    }

    static void write(StringBuilder b, Object o) {
        if (o == null) {
            b.append("null");
        } else if (o instanceof String) {
            b.append('"');
            for (char ch : ((String) o).toCharArray()) {
                if (ch == '"' || ch == '\\') b.append('\\').append(ch);
                else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                else b.append(ch);
            }
            b.append('"');
        } else if (o instanceof Number || o instanceof Boolean) {
            b.append(o);
        } else if (o instanceof Map) {
            // Keys in a stable order: LinkedHashMap and TreeMap keep theirs, Map.of is sorted.
            Map<?, ?> m = (Map<?, ?>) o;
            List<Object> keys = new ArrayList<>(m.keySet());
            if (!(m instanceof LinkedHashMap) && !(m instanceof TreeMap)) keys.sort(Comparator.comparing(String::valueOf));
            b.append('{');
            String sep = "";
            for (Object k : keys) {
                b.append(sep);
                write(b, String.valueOf(k));
                b.append(':');
                write(b, m.get(k));
                sep = ",";
            }
            b.append('}');
        } else if (o instanceof Collection) {
            b.append('[');
            String sep = "";
            for (Object e : (Collection<?>) o) {
                b.append(sep);
                write(b, e);
                sep = ",";
            }
            b.append(']');
        } else {
            write(b, o.toString());
        }
    }
}
