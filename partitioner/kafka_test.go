package partitioner_test

import (
	"math/rand/v2"
	"testing"

	"github.com/qxd-io/qxd/partitioner"
)

// Expected values were produced by Kafka's Java Utils.murmur2 and toPositive; the first
// six are Kafka's own UtilsTest.testMurmur2 vectors.
var murmur2Cases = []struct {
	name string
	key  []byte
	hash int32
	p3   int32 // KafkaPartition(key, 3)
	p6   int32
	p8   int32
}{
	{"kafka vector 21", []byte("21"), -973932308, 0, 0, 4},
	{"kafka vector foobar", []byte("foobar"), -790332482, 0, 0, 6},
	{"kafka vector long", []byte("a-little-bit-long-string"), -985981536, 2, 2, 0},
	{"kafka vector longer", []byte("a-little-bit-longer-string"), -1486304829, 2, 5, 3},
	{"kafka vector 48 bytes", []byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971, 2, 5, 5},
	{"kafka vector abc", []byte("abc"), 479470107, 0, 3, 3},
	{"empty", []byte{}, 275646681, 0, 3, 1},
	{"nil", nil, 275646681, 0, 3, 1},
	{"tail 1", []byte("1"), -1993445489, 0, 3, 7},
	{"tail 2", []byte("12"), 126087238, 1, 4, 6},
	{"tail 3", []byte("123"), -267702483, 2, 5, 5},
	{"tail 0", []byte("1234"), -1614185708, 0, 0, 4},
	{"block and tail 1", []byte("12345"), -1188365604, 2, 2, 4},
	{"librdkafka vector kafka", []byte("kafka"), -798503068, 1, 4, 4},
	{"key", []byte("key"), -1079937367, 1, 1, 1},
	{"user-1", []byte("user-1"), 1404122828, 2, 2, 4},
	{"user-2", []byte("user-2"), -324981792, 2, 2, 0},
	{"negative bytes tail 2", []byte{0xff, 0x80}, -442788720, 2, 2, 0},
	{"negative byte tail 1", []byte{0xff}, -311467685, 0, 3, 3},
	{"negative bytes tail 3", []byte{0x80, 0x81, 0xfe}, 796990047, 0, 3, 7},
	{"negative bytes block", []byte{0xff, 0xff, 0xff, 0xff}, 644171429, 2, 5, 5},
	{"negative bytes block and tail", []byte{0xde, 0xad, 0xbe, 0xef, 0x80}, -256566253, 1, 1, 3},
	{"zero byte", []byte{0}, 375494588, 2, 2, 4},
}

func TestMurmur2(t *testing.T) {
	t.Parallel()
	for _, tc := range murmur2Cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := partitioner.Murmur2(tc.key); got != tc.hash {
				t.Errorf("Murmur2(%q) = %d, want %d", tc.key, got, tc.hash)
			}
			if got := javaMurmur2(tc.key); got != tc.hash {
				t.Errorf("javaMurmur2(%q) = %d, want %d", tc.key, got, tc.hash)
			}
		})
	}
}

func TestKafkaPartition(t *testing.T) {
	t.Parallel()
	for _, tc := range murmur2Cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for n, want := range map[int32]int32{1: 0, 3: tc.p3, 6: tc.p6, 8: tc.p8} {
				if got := partitioner.KafkaPartition(tc.key, n); got != want {
					t.Errorf("KafkaPartition(%q, %d) = %d, want %d", tc.key, n, got, want)
				}
			}
		})
	}
}

func TestToPositive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   int32
		want int32
	}{
		{"zero", 0, 0},
		{"positive", 42, 42},
		{"max", 2147483647, 2147483647},
		{"minus one", -1, 2147483647},
		{"min", -2147483648, 0},
		{"kafka vector 21", -973932308, 1173551340},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := partitioner.ToPositive(tc.in); got != tc.want {
				t.Errorf("ToPositive(%d) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestSticky(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int32
	}{
		{"two partitions", 2},
		{"three partitions", 3},
		{"eight partitions", 8},
		{"hundred partitions", 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := partitioner.NewStickyWithRand(rand.New(rand.NewPCG(1, uint64(tc.n))))
			seen := make(map[int32]bool)
			p := s.Partition(nil, tc.n)
			for range 1000 {
				if p < 0 || p >= tc.n {
					t.Fatalf("partition %d out of [0,%d)", p, tc.n)
				}
				seen[p] = true
				for range 10 {
					if q := s.Partition(nil, tc.n); q != p {
						t.Fatalf("moved from %d to %d without a new batch", p, q)
					}
				}
				if q := s.Partition([]byte("key"), tc.n); q != p {
					t.Fatalf("keyed record went to %d, want sticky %d (Sticky ignores keys)", q, p)
				}
				s.OnNewBatch(tc.n, (p+1)%tc.n) // another partition's batch: no move
				if q := s.Partition(nil, tc.n); q != p {
					t.Fatalf("moved from %d to %d on another partition's batch", p, q)
				}
				s.OnNewBatch(tc.n, p)
				q := s.Partition(nil, tc.n)
				if q == p {
					t.Fatalf("stayed on %d after its batch closed", p)
				}
				p = q
			}
			if want := min(int(tc.n), 50); len(seen) < want {
				t.Errorf("visited %d partitions, want at least %d", len(seen), want)
			}
		})
	}
}

func TestStickySinglePartition(t *testing.T) {
	t.Parallel()
	s := partitioner.NewSticky()
	for range 100 {
		if p := s.Partition(nil, 1); p != 0 {
			t.Fatalf("Partition(nil, 1) = %d, want 0", p)
		}
		s.OnNewBatch(1, 0)
	}
}

func TestStickyPartitionCountChange(t *testing.T) {
	t.Parallel()
	s := partitioner.NewStickyWithRand(rand.New(rand.NewPCG(7, 7)))
	for range 100 {
		p := s.Partition(nil, 100)
		if q := s.Partition(nil, 3); q < 0 || q >= 3 {
			t.Fatalf("after shrinking to 3: partition %d", q)
		}
		s.OnNewBatch(100, p) // stale notice for the old count
		if q := s.Partition(nil, 3); q < 0 || q >= 3 {
			t.Fatalf("after stale batch notice: partition %d", q)
		}
		s.OnNewBatch(2, s.Partition(nil, 3)) // notice for a partition gone from the new count
		if q := s.Partition(nil, 2); q < 0 || q >= 2 {
			t.Fatalf("after shrinking to 2: partition %d", q)
		}
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	const n = 8
	d := partitioner.NewDefaultWithRand(rand.New(rand.NewPCG(3, 4)))
	for round := range 200 {
		sticky := d.Partition(nil, n)
		for _, tc := range murmur2Cases {
			if tc.key == nil {
				continue
			}
			if got := d.Partition(tc.key, n); got != tc.p8 {
				t.Fatalf("round %d: Partition(%q, 8) = %d, want %d", round, tc.key, got, tc.p8)
			}
			if got := d.Partition(tc.key, 3); got != tc.p3 {
				t.Fatalf("round %d: Partition(%q, 3) = %d, want %d", round, tc.key, got, tc.p3)
			}
			if tc.p8 != sticky {
				d.OnNewBatch(n, tc.p8) // a keyed partition's batch: no move
			}
		}
		if got := d.Partition(nil, n); got != sticky {
			t.Fatalf("round %d: keyed records moved sticky partition from %d to %d", round, sticky, got)
		}
		d.OnNewBatch(n, sticky)
		if got := d.Partition(nil, n); got == sticky || got < 0 || got >= n {
			t.Fatalf("round %d: after batch on %d, nil key went to %d", round, sticky, got)
		}
	}
}

func TestDefaultUnseeded(t *testing.T) {
	t.Parallel()
	d := partitioner.NewDefault()
	for range 100 {
		p := d.Partition(nil, 5)
		if p < 0 || p >= 5 {
			t.Fatalf("Partition(nil, 5) = %d", p)
		}
		d.OnNewBatch(5, p)
	}
}

func FuzzMurmur2(f *testing.F) {
	for _, tc := range murmur2Cases {
		f.Add(tc.key, uint16(8))
	}
	f.Add([]byte("a-little-bit-longer-string"), uint16(999))
	f.Add([]byte{0x80, 0x00, 0xff, 0x7f, 0x01}, uint16(0))
	f.Fuzz(func(t *testing.T, key []byte, rawN uint16) {
		n := 1 + int32(rawN%1000)
		h := partitioner.Murmur2(key)
		if want := javaMurmur2(key); h != want {
			t.Fatalf("Murmur2(%x) = %d, Java-style reference says %d", key, h, want)
		}
		p := partitioner.KafkaPartition(key, n)
		if p < 0 || p >= n {
			t.Fatalf("KafkaPartition(%x, %d) = %d, out of range", key, n, p)
		}
		if key != nil {
			if got := partitioner.NewDefault().Partition(key, n); got != p {
				t.Fatalf("Default.Partition(%x, %d) = %d, want KafkaPartition %d", key, n, got, p)
			}
		}
	})
}

// javaMurmur2 transcribes Kafka's Utils.murmur2 line by line in signed 32-bit arithmetic
// (Java's int, with >>> as a shift of the uint32 bits), independently of the uint32
// formulation under test.
func javaMurmur2(data []byte) int32 {
	jbyte := func(i int32) int32 { return int32(int8(data[i])) } // Java's signed byte
	length := int32(len(data))
	seed := int32(-1756908916) // 0x9747b28c
	const m int32 = 0x5bd1e995
	const r = 24
	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := (jbyte(i4+0) & 0xff) + ((jbyte(i4+1) & 0xff) << 8) + ((jbyte(i4+2) & 0xff) << 16) + ((jbyte(i4+3) & 0xff) << 24)
		k *= m
		k ^= int32(uint32(k) >> r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= (jbyte((length&^3)+2) & 0xff) << 16
		fallthrough
	case 2:
		h ^= (jbyte((length&^3)+1) & 0xff) << 8
		fallthrough
	case 1:
		h ^= jbyte(length&^3) & 0xff
		h *= m
	}
	h ^= int32(uint32(h) >> 13)
	h *= m
	h ^= int32(uint32(h) >> 15)
	return h
}
