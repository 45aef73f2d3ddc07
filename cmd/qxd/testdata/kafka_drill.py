"""The librdkafka side of TestKafkaRdkafkaFaultDrill (cmd/qxd/kafka_drill_test.go).

    kafka_drill.py produce SEEDS TOPIC KEYS [NAME=VALUE ...]
    kafka_drill.py consume SEEDS TOPIC GROUP [NAME=VALUE ...]

NAME=VALUE pairs are librdkafka settings added to (or overriding) the ones below.

produce: an idempotent producer (enable.idempotence, acks=all, no linger) sends
KEYS keys, one record of a key at a time: the key's next record goes out 5 ms
after the previous one's delivery report. Values are "<key>/<sequence>". One
line per record handed to the client, and one per delivery report:

    sent <value> <send ns>
    ack <value> <partition> <offset> <send ns> <report ns> <error or ->

(times in nanoseconds since the epoch). SIGTERM stops it: it sends nothing more,
waits for the reports of what is in flight and prints "done".

consume: a member of group GROUP subscribed to TOPIC (auto commit). One line per
record read:

    rec <value> <partition> <offset>

SIGTERM makes it leave the group, print "done" and exit.

Either also prints "log <text>" lines (librdkafka's errors and logs) and "fatal
<text>" before it exits on an error it cannot go on from.
"""

import signal
import sys
import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer

stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(True))


def say(line):
    sys.stdout.write(line + "\n")


def settings(pairs):
    out = {}
    for p in pairs:
        k, _, v = p.partition("=")
        out[k] = v
    return out


def on_error(err):
    say("log error %s" % err)
    sys.stdout.flush()


def produce(seeds, topic, keys, extra):
    conf = {
        "bootstrap.servers": seeds,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        "message.timeout.ms": 120000,
        "client.id": "kafka-drill-rdkafka-producer",
        "error_cb": on_error,
    }
    conf.update(extra)
    p = Producer(conf)
    say("log confluent-kafka %s (librdkafka %s)" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0]))
    n = int(keys)
    seq = [0] * n
    busy = [False] * n
    due = [0.0] * n  # when the key's next record may go out

    def report(k, sent):
        def cb(err, msg):
            now = time.time_ns()
            busy[k] = False
            due[k] = time.monotonic() + 0.005
            say("ack %s %d %d %d %d %s" % (msg.value().decode(), msg.partition(), msg.offset(), sent, now,
                                           "-" if err is None else str(err).replace(" ", "_")))
        return cb

    while not stop:
        now = time.monotonic()
        for k in range(n):
            if busy[k] or now < due[k]:
                continue
            key = "key-%02d" % k
            value = "%s/%09d" % (key, seq[k])
            sent = time.time_ns()
            try:
                p.produce(topic, key=key.encode(), value=value.encode(), on_delivery=report(k, sent))
            except BufferError:
                break
            except KafkaException as e:
                say("fatal produce %s: %s" % (value, e))
                sys.stdout.flush()
                sys.exit(1)
            say("sent %s %d" % (value, sent))
            seq[k] += 1
            busy[k] = True
        p.poll(0.002)
        sys.stdout.flush()
    left = p.flush(150)
    say("done %d" % left)
    sys.stdout.flush()


def consume(seeds, topic, group, extra):
    conf = {
        "bootstrap.servers": seeds,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "client.id": "kafka-drill-rdkafka-member",
        "error_cb": on_error,
    }
    conf.update(extra)
    c = Consumer(conf)
    c.subscribe([topic])
    while not stop:
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error():
                say("log consume %s" % m.error())
                continue
            say("rec %s %d %d" % (m.value().decode(), m.partition(), m.offset()))
        sys.stdout.flush()
    c.close()
    say("done")
    sys.stdout.flush()


if __name__ == "__main__":
    mode, seeds, topic, arg = sys.argv[1:5]
    extra = settings(sys.argv[5:])
    try:
        if mode == "produce":
            produce(seeds, topic, arg, extra)
        else:
            consume(seeds, topic, arg, extra)
    except KafkaException as e:
        say("fatal %s" % e)
        sys.stdout.flush()
        sys.exit(1)
