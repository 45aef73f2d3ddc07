package kafka_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// The zombie of TestTxnZombiePaused is this test binary run again as a child
// process (TestTxnZombieChild, which does nothing unless zombieEnv is set), so
// that it can be frozen with SIGSTOP as a real client process is: a GC pause, a
// VM migration, a process stopped by a debugger. The child talks to the test on
// its stdin and stdout, one line at a time.
const (
	zombieEnv    = "QXD_TEST_ZOMBIE"    // "sdk" or "franz-go": the child's client
	zombieURLEnv = "QXD_TEST_ZOMBIE_AT" // the node's client URL (sdk) or Kafka address (franz-go)
	zombieIDEnv  = "QXD_TEST_ZOMBIE_ID" // the transactional id, also the topic and group
	// zombieLinger is how long the child's producer holds its second record:
	// it is frozen in the meantime, and sends it after waking.
	zombieLinger = 5 * time.Second
)

// zombieResult is what the child reports once it woke: the error of each of its
// steps, "" for none.
type zombieResult struct {
	Produce       string `json:"produce"`        // the record it buffered before the pause
	ProduceFenced bool   `json:"produce_fenced"` // whether that error is PRODUCER_FENCED or INVALID_PRODUCER_EPOCH
	Offsets       string `json:"offsets"`        // its offset commit in the transaction (TxnOffsetCommit; the group joined it before the pause)
	OffsetsFenced bool   `json:"offsets_fenced"`
	Commit        string `json:"commit"` // its commit, through its client
	CommitFenced  bool   `json:"commit_fenced"`
	EndTxn        string `json:"end_txn"` // franz-go: a raw EndTxn with its producer id and epoch
	EndTxnFenced  bool   `json:"end_txn_fenced"`
}

// TestTxnZombiePaused: a transactional producer process (the SDK's, and
// franz-go's through the Kafka listener) opens a transaction, writes a record,
// adds a group's offset (41) to it, buffers a second record, and is frozen
// (SIGSTOP) before it sends it. Its
// replacement registers the same transactional id, commits a transaction of its
// own, and the zombie wakes (SIGCONT): the buffered record, its offset commit in
// the transaction and its commit are each refused with PRODUCER_FENCED or
// INVALID_PRODUCER_EPOCH; read-committed readers see only the replacement's
// records, and the group holds only the replacement's offset. TestTxnProducerZombieFenced
// (SDK) and TestKafkaTransactions (franz-go) cover a zombie that is idle, not
// frozen, and send nothing after it is fenced but records and a commit.
func TestTxnZombiePaused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the zombie as a child process; skipped with -short")
	}
	t.Parallel()
	n, c := startNode(t)
	for _, client := range []string{"sdk", "franz-go"} {
		t.Run(client, func(t *testing.T) {
			id := "zombie-" + strings.ReplaceAll(client, "-", "")
			qxdtest.CreateTopic(t, c, id, qxd.TopicConfig{Partitions: 1})
			ctx := ctxFor(t, 90*time.Second)
			at := n.ClientURL()
			if client == "franz-go" {
				at = n.KafkaAddr()
			}
			child := startZombie(t, client, at, id)
			child.expect(t, "READY")
			// Frozen with its second record in its buffer, its transaction open.
			frozen := time.Now()
			child.signal(t, syscall.SIGSTOP)

			replace(ctx, t, client, c, n.KafkaAddr(), id)
			if d := time.Since(frozen); d >= zombieLinger {
				t.Fatalf("the replacement took %v, longer than the zombie's linger %v: the zombie may have sent its record before it was fenced; the machine is too slow for this test", d, zombieLinger)
			}
			child.signal(t, syscall.SIGCONT)
			child.send(t, "GO")
			line := child.expect(t, "RESULT ")
			var res zombieResult
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &res); err != nil {
				t.Fatalf("the zombie's result %q: %v", line, err)
			}
			t.Logf("the zombie after waking: %+v", res)
			check := func(step, msg string, fenced bool) {
				if msg == "" {
					t.Errorf("the zombie's %s succeeded after its replacement registered, want it fenced", step)
				} else if !fenced {
					t.Errorf("the zombie's %s: %s, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", step, msg)
				}
			}
			check("buffered record", res.Produce, res.ProduceFenced)
			check("offset commit in its transaction", res.Offsets, res.OffsetsFenced)
			if client == "sdk" {
				check("commit", res.Commit, res.CommitFenced)
			} else {
				// franz-go ends a transaction whose produce failed without asking
				// the coordinator; the raw EndTxn asks it.
				if res.Commit == "" {
					t.Error("the zombie's commit succeeded after its replacement registered, want it refused")
				}
				check("EndTxn (commit)", res.EndTxn, res.EndTxnFenced)
			}
			child.wait(t)

			var got []string
			for _, r := range readCommitted(ctx, t, []string{n.KafkaAddr()}, id, 1) {
				got = append(got, string(r.Value))
			}
			if !slices.Equal(got, []string{"new"}) {
				t.Errorf("read committed %q, want only the replacement's record [new]", got)
			}
			offs, err := kadm.NewClient(seedClient(t, []string{n.KafkaAddr()})).FetchOffsets(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := offs.Lookup(id, 0); !ok || o.At != 7 {
				t.Errorf("group %s's committed offsets %v, want partition 0 at the replacement's 7 (the zombie sent 42)", id, offs)
			}
		})
	}
}

// replace registers transactional id again, as the zombie's replacement, and
// commits a transaction with the record "new" and the group's offset 7.
func replace(ctx context.Context, t *testing.T, client string, c *qxd.Client, kafkaAddr, id string) {
	t.Helper()
	tp := qxd.TopicPartition{Topic: id, Partition: 0}
	if client == "sdk" {
		p, err := c.NewProducer(qxd.TransactionalID(id), qxd.DefaultTopic(id))
		if err != nil {
			t.Fatalf("the replacement's registration: %v", err)
		}
		defer p.Close(context.Background())
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.Produce(ctx, &qxd.Record{Topic: id, Partition: 0, Value: []byte("new")}, nil); err != nil {
			t.Fatal(err)
		}
		if err := p.SendOffsetsToTransaction(ctx, qxd.GroupMemberID{Group: id, GenerationID: -1},
			map[qxd.TopicPartition]qxd.OffsetAndMetadata{tp: {Offset: 7}}); err != nil {
			t.Fatal(err)
		}
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatalf("the replacement's commit: %v", err)
		}
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.TransactionalID(id), kgo.DefaultProduceTopic(id),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatalf("the replacement's produce: %v", err)
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txnOffsetCommit(ctx, cl, pid, epoch, id, 7, true); err != nil {
		t.Fatalf("the replacement's offset commit: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the replacement's commit: %v", err)
	}
}

// txnOffsetCommit adds group id's offset of partition 0 of topic id to cl's
// transaction (AddOffsetsToTxn when addGroup, then TxnOffsetCommit to the
// group's coordinator), as producer pid with epoch.
func txnOffsetCommit(ctx context.Context, cl *kgo.Client, pid int64, epoch int16, id string, offset int64, addGroup bool) error {
	if addGroup {
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, id
		aresp, err := add.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(aresp.ErrorCode); err != nil {
			return fmt.Errorf("AddOffsetsToTxn: %w", err)
		}
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = id, id, pid, epoch
	commit.Generation = -1
	md, err := kadm.NewClient(cl).Metadata(ctx, id)
	if err != nil {
		return err
	}
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic, rt.TopicID = id, md.Topics[id].ID // v6 names topics by id
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	commit.Topics = append(commit.Topics, rt)
	cresp, err := commit.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range cresp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("TxnOffsetCommit: %w", err)
			}
		}
	}
	return nil
}

// zombieChild is the zombie's process.
type zombieChild struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// startZombie runs this test binary as the zombie child, killed at cleanup.
func startZombie(t *testing.T, client, at, id string) *zombieChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTxnZombieChild$", "-test.v")
	cmd.Env = append(os.Environ(), zombieEnv+"="+client, zombieURLEnv+"="+at, zombieIDEnv+"="+id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the zombie process: %v", err)
	}
	z := &zombieChild{cmd: cmd, in: in, lines: make(chan string, 100)}
	go func() {
		defer close(z.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			z.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return z
}

// expect returns the child's next line that starts with prefix (others are
// logged), or fails when it exits or is silent for a minute.
func (z *zombieChild) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-z.lines:
			if !ok {
				t.Fatalf("the zombie process exited before it said %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			t.Logf("zombie: %s", l)
		case <-timeout:
			t.Fatalf("the zombie process did not say %q within a minute", prefix)
		}
	}
}

func (z *zombieChild) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := z.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to the zombie: %v", sig, err)
	}
}

func (z *zombieChild) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(z.in, line+"\n"); err != nil {
		t.Fatalf("tell the zombie %q: %v", line, err)
	}
}

func (z *zombieChild) wait(t *testing.T) {
	t.Helper()
	_ = z.in.Close()
	for range z.lines {
	}
	if err := z.cmd.Wait(); err != nil {
		t.Errorf("the zombie process: %v", err)
	}
}

// TestTxnZombieChild is the zombie process of TestTxnZombiePaused; without
// zombieEnv it does nothing.
func TestTxnZombieChild(t *testing.T) {
	client := os.Getenv(zombieEnv)
	if client == "" {
		t.Skip("the zombie process of TestTxnZombiePaused")
	}
	at, id := os.Getenv(zombieURLEnv), os.Getenv(zombieIDEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	stdin := bufio.NewScanner(os.Stdin)
	var res zombieResult
	fenced := func(err error) bool {
		return errors.Is(err, qxd.ErrProducerFenced) || errors.Is(err, qxd.ErrInvalidProducerEpoch) ||
			errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
	}
	msg := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	waitGo := func() {
		if !stdin.Scan() || stdin.Text() != "GO" {
			t.Fatal("the test did not say GO")
		}
	}
	report := func() {
		b, _ := json.Marshal(res)
		fmt.Printf("RESULT %s\n", b)
	}
	if client == "sdk" {
		c, err := qxd.Connect(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := c.NewProducer(qxd.TransactionalID(id), qxd.DefaultTopic(id), qxd.Linger(zombieLinger))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.Produce(ctx, &qxd.Record{Topic: id, Partition: 0, Value: []byte("zombie-1")}, nil); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// The group joins the transaction now: after waking, only the offset
		// commit itself is sent.
		if err := p.SendOffsetsToTransaction(ctx, qxd.GroupMemberID{Group: id, GenerationID: -1},
			map[qxd.TopicPartition]qxd.OffsetAndMetadata{{Topic: id, Partition: 0}: {Offset: 41}}); err != nil {
			t.Fatal(err)
		}
		produced := make(chan error, 1)
		if err := p.Produce(ctx, &qxd.Record{Topic: id, Partition: 0, Value: []byte("zombie-2")}, func(_ *qxd.Record, err error) { produced <- err }); err != nil {
			t.Fatal(err)
		}
		fmt.Println("READY")
		err = <-produced
		res.Produce, res.ProduceFenced = msg(err), fenced(err)
		waitGo()
		err = p.SendOffsetsToTransaction(ctx, qxd.GroupMemberID{Group: id, GenerationID: -1},
			map[qxd.TopicPartition]qxd.OffsetAndMetadata{{Topic: id, Partition: 0}: {Offset: 42}})
		res.Offsets, res.OffsetsFenced = msg(err), fenced(err)
		err = p.CommitTransaction(ctx)
		res.Commit, res.CommitFenced = msg(err), fenced(err)
		report()
		_ = p.Close(ctx)
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(at), kgo.TransactionalID(id), kgo.DefaultProduceTopic(id),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(zombieLinger), kgo.RetryTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txnOffsetCommit(ctx, cl, pid, epoch, id, 41, true); err != nil {
		t.Fatal(err)
	}
	produced := make(chan error, 1)
	cl.Produce(ctx, &kgo.Record{Value: []byte("zombie-2")}, func(_ *kgo.Record, err error) { produced <- err })
	fmt.Println("READY")
	err = <-produced
	res.Produce, res.ProduceFenced = msg(err), fenced(err)
	waitGo()
	err = txnOffsetCommit(ctx, cl, pid, epoch, id, 42, false)
	res.Offsets, res.OffsetsFenced = msg(err), fenced(err)
	err = cl.EndTransaction(ctx, kgo.TryCommit)
	res.Commit, res.CommitFenced = msg(err), fenced(err)
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, pid, epoch, true
	eresp, err := end.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(eresp.ErrorCode)
	}
	res.EndTxn, res.EndTxnFenced = msg(err), fenced(err)
	report()
}
