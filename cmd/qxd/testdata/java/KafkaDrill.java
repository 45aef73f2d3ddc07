// The Java side of TestKafkaJavaFaultDrill (cmd/qxd/kafka_drill_java_test.go),
// kafka-clients 3.3.1; the same lines as testdata/kafka_drill.py prints.
//
//     KafkaDrill produce SEEDS TOPIC KEYS [NAME=VALUE ...]
//     KafkaDrill consume SEEDS TOPIC GROUP [NAME=VALUE ...]
//
// NAME=VALUE pairs are client settings added to (or overriding) the ones below.
//
// produce: an idempotent producer (enable.idempotence, acks=all, linger.ms 0)
// sends KEYS keys, one record of a key at a time: the key's next record goes out
// 5 ms after the previous one's acknowledgement. Values are "<key>/<sequence>".
// One line per record handed to the client, and one per acknowledgement:
//
//     sent <value> <send ns>
//     ack <value> <partition> <offset> <send ns> <report ns> <error or ->
//
// (times in nanoseconds since the epoch). SIGTERM stops it: it sends nothing
// more, waits for the acknowledgements of what is in flight and prints "done".
//
// consume: a member of group GROUP subscribed to TOPIC (auto commit). It logs
// the partitions it is assigned (each with the offset it goes on from), and
// those revoked or lost. One line per record read, and one where a read goes
// back in a partition it kept assigned (no rebalance between: the client was
// sent back, as by an OFFSET_OUT_OF_RANGE answer and auto.offset.reset):
//
//     rec <value> <partition> <offset>
//     back <partition> <offset past the last read> <offset read>
//
// SIGTERM makes it leave the group, print "done" and exit.
//
// Either prints "log <text>" lines and "fatal <text>" before it exits on an
// exception it cannot go on from. With KafkaDrill$Log named as SLF4J's provider
// (a META-INF/services/org.slf4j.spi.SLF4JServiceProvider ahead of the jar's in
// the classpath), the client's own log lines at the level the system property
// kafkadrill.log names (warn unless it says info or debug) are "log" lines too.

import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLongArray;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.AppInfoParser;
import org.slf4j.ILoggerFactory;
import org.slf4j.IMarkerFactory;
import org.slf4j.Marker;
import org.slf4j.event.Level;
import org.slf4j.helpers.BasicMarkerFactory;
import org.slf4j.helpers.LegacyAbstractLogger;
import org.slf4j.helpers.MessageFormatter;
import org.slf4j.helpers.NOPMDCAdapter;
import org.slf4j.spi.MDCAdapter;
import org.slf4j.spi.SLF4JServiceProvider;

public class KafkaDrill {
    static final AtomicBoolean stop = new AtomicBoolean();

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static long nowNanos() {
        Instant i = Instant.now();
        return i.getEpochSecond() * 1_000_000_000L + i.getNano();
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0], seeds = args[1], topic = args[2], arg = args[3];
        Properties extra = new Properties();
        for (int i = 4; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            extra.setProperty(kv[0], kv.length > 1 ? kv[1] : "");
        }
        Thread main = Thread.currentThread();
        try {
            if (mode.equals("produce")) {
                produce(seeds, topic, Integer.parseInt(arg), extra, main);
            } else {
                consume(seeds, topic, arg, extra, main);
            }
        } catch (Exception e) {
            say("fatal " + e.toString().replace('\n', ' '));
            System.exit(1);
        }
    }

    static void produce(String seeds, String topic, int keys, Properties extra, Thread main) throws Exception {
        Properties p = new Properties();
        p.setProperty("bootstrap.servers", seeds);
        p.setProperty("enable.idempotence", "true");
        p.setProperty("acks", "all");
        p.setProperty("linger.ms", "0");
        p.setProperty("delivery.timeout.ms", "120000");
        p.setProperty("client.id", "kafka-drill-java-producer");
        p.putAll(extra);
        say("log kafka-clients " + AppInfoParser.getVersion() + " " + p);
        KafkaProducer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.set(true);
            try {
                main.join(150_000);
            } catch (InterruptedException e) {
            }
        }));
        long[] seq = new long[keys];
        AtomicBoolean[] busy = new AtomicBoolean[keys];
        AtomicLongArray due = new AtomicLongArray(keys); // System.nanoTime when the key's next record may go out
        for (int k = 0; k < keys; k++) {
            busy[k] = new AtomicBoolean();
        }
        while (!stop.get()) {
            long now = System.nanoTime();
            for (int k = 0; k < keys && !stop.get(); k++) {
                if (busy[k].get() || now < due.get(k)) {
                    continue;
                }
                String key = String.format("key-%02d", k);
                String value = String.format("%s/%09d", key, seq[k]);
                long sent = nowNanos();
                int kk = k;
                busy[k].set(true);
                say("sent " + value + " " + sent);
                prod.send(new ProducerRecord<>(topic, key, value), (md, err) -> {
                    long at = nowNanos();
                    say("ack " + value + " " + (md == null ? -1 : md.partition()) + " " + (md == null ? -1 : md.offset()) + " " + sent + " " + at + " "
                            + (err == null ? "-" : err.toString().replace(' ', '_')));
                    due.set(kk, System.nanoTime() + 5_000_000L);
                    busy[kk].set(false);
                });
                seq[k]++;
            }
            Thread.sleep(1);
        }
        prod.flush();
        prod.close(Duration.ofSeconds(30));
        say("done");
    }

    static void consume(String seeds, String topic, String group, Properties extra, Thread main) throws Exception {
        Properties p = new Properties();
        p.setProperty("bootstrap.servers", seeds);
        p.setProperty("group.id", group);
        p.setProperty("auto.offset.reset", "earliest");
        p.setProperty("client.id", "kafka-drill-java-member");
        p.putAll(extra);
        KafkaConsumer<String, String> c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.set(true);
            c.wakeup();
            try {
                main.join(60_000);
            } catch (InterruptedException e) {
            }
        }));
        // partition → offset past the last record read, while the partition
        // stays assigned
        Map<Integer, Long> next = new HashMap<>();
        c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                say("log revoked " + ps);
                ps.forEach(tp -> next.remove(tp.partition()));
            }

            public void onPartitionsLost(Collection<TopicPartition> ps) {
                say("log lost " + ps);
                ps.forEach(tp -> next.remove(tp.partition()));
            }

            public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                StringBuilder b = new StringBuilder("log assigned");
                for (TopicPartition tp : ps) {
                    next.remove(tp.partition());
                    b.append(" ").append(tp.partition()).append("@").append(c.position(tp));
                }
                say(b.toString());
            }
        });
        try {
            while (!stop.get()) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    Long n = next.get(r.partition());
                    if (n != null && r.offset() < n) {
                        say("back " + r.partition() + " " + n + " " + r.offset());
                    }
                    next.put(r.partition(), r.offset() + 1);
                    say("rec " + r.value() + " " + r.partition() + " " + r.offset());
                }
            }
        } catch (WakeupException e) {
            // SIGTERM
        }
        c.close(Duration.ofSeconds(30));
        say("done");
    }

    /** Log is an SLF4J provider that prints the client's log as "log" lines. */
    public static class Log implements SLF4JServiceProvider {
        private final ILoggerFactory loggers = Line::new;

        public ILoggerFactory getLoggerFactory() {
            return loggers;
        }

        public IMarkerFactory getMarkerFactory() {
            return new BasicMarkerFactory();
        }

        public MDCAdapter getMDCAdapter() {
            return new NOPMDCAdapter();
        }

        public String getRequestedApiVersion() {
            return "2.0.99";
        }

        public void initialize() {
        }
    }

    static class Line extends LegacyAbstractLogger {
        static final int level = switch (System.getProperty("kafkadrill.log", "warn")) {
            case "debug" -> Level.DEBUG.toInt();
            case "info" -> Level.INFO.toInt();
            default -> Level.WARN.toInt();
        };

        Line(String name) {
            this.name = name;
        }

        public boolean isTraceEnabled() {
            return false;
        }

        public boolean isDebugEnabled() {
            return level <= Level.DEBUG.toInt();
        }

        public boolean isInfoEnabled() {
            return level <= Level.INFO.toInt();
        }

        public boolean isWarnEnabled() {
            return level <= Level.WARN.toInt();
        }

        public boolean isErrorEnabled() {
            return true;
        }

        protected String getFullyQualifiedCallerName() {
            return null;
        }

        protected void handleNormalizedLoggingCall(Level l, Marker marker, String msg, Object[] args, Throwable t) {
            String text = MessageFormatter.arrayFormat(msg, args).getMessage();
            if (t != null) {
                text += " " + t;
            }
            say("log " + l + " " + name.substring(name.lastIndexOf('.') + 1) + " " + text.replace('\n', ' '));
        }
    }
}
