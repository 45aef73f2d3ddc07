package semantics

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression is a record batch's compression codec. Its values are Kafka's codes in
// the low three bits of a batch's attributes.
type Compression int8

// The codecs Kafka defines.
const (
	CompressionNone   Compression = iota // no compression
	CompressionGzip                      // gzip stream (RFC 1952)
	CompressionSnappy                    // raw snappy block; xerial framing accepted on read
	CompressionLZ4                       // LZ4 frame format
	CompressionZstd                      // zstd frame
)

// MaxDecompressedSize is the most bytes a batch's records may take once
// decompressed. Batches that claim or produce more are refused as corrupt, so hostile
// input cannot make a decoder allocate without bound.
const MaxDecompressedSize = 64 << 20

var compressionNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// String returns the codec's name as Kafka's compression.type spells it.
func (c Compression) String() string {
	if c.valid() {
		return compressionNames[c]
	}
	return fmt.Sprintf("Compression(%d)", int8(c))
}

func (c Compression) valid() bool { return c >= CompressionNone && c <= CompressionZstd }

// ParseCompression returns the codec named s ("none", "gzip", "snappy", "lz4" or
// "zstd", in any case). Other names give an ErrInvalidConfig error.
func ParseCompression(s string) (Compression, error) {
	for i, name := range compressionNames {
		if strings.EqualFold(s, name) {
			return Compression(i), nil
		}
	}
	return CompressionNone, Errorf(ErrInvalidConfig, "unknown compression %q: use one of %s",
		s, strings.Join(compressionNames[:], ", "))
}

// errTooLarge reports decompressed data over MaxDecompressedSize.
var errTooLarge = fmt.Errorf("decompressed size exceeds the %d MiB limit", MaxDecompressedSize>>20)

// compressBound is a size the compressed form of n bytes is very likely to fit in,
// so that compress grows its output at most once. It is not a guarantee: compress
// stays correct, only slower, when a codec needs more.
func compressBound(c Compression, n int) int {
	switch c {
	case CompressionNone:
		return n
	case CompressionSnappy:
		if m := s2.MaxEncodedLen(n); m > 0 {
			return m
		}
		return n
	default:
		// Incompressible input costs gzip 5 bytes per stored 64 KiB block, LZ4 4-8
		// bytes per 64 KiB block and zstd 3 bytes per 128 KiB block, plus framing.
		return n + n>>10 + 128
	}
}

// compress appends the compressed form of src to dst. Safe for concurrent use.
func compress(dst, src []byte, c Compression) ([]byte, error) {
	switch c {
	case CompressionNone:
		return append(dst, src...), nil
	case CompressionGzip:
		e := gzipEncoders.Get().(*gzipEncoder)
		defer gzipEncoders.Put(e)
		e.out.b = dst
		e.w.Reset(&e.out)
		_, err := e.w.Write(src)
		if cerr := e.w.Close(); err == nil {
			err = cerr
		}
		dst, e.out.b = e.out.b, nil
		return dst, err
	case CompressionSnappy:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("%d bytes are too many to compress", len(src))
		}
		start := len(dst)
		dst = slices.Grow(dst, n)
		out := s2.EncodeSnappy(dst[start:], src)
		return dst[:start+len(out)], nil
	case CompressionLZ4:
		e := lz4Encoders.Get().(*lz4Encoder)
		defer lz4Encoders.Put(e)
		e.out.b = dst
		e.w.Reset(&e.out)
		_, err := e.w.Write(src)
		if cerr := e.w.Close(); err == nil {
			err = cerr
		}
		dst, e.out.b = e.out.b, nil
		return dst, err
	case CompressionZstd:
		e := zstdEncoders.Get().(*zstd.Encoder)
		defer zstdEncoders.Put(e)
		return e.EncodeAll(src, dst), nil
	default:
		return dst, Errorf(ErrInvalidConfig, "unknown compression codec %d", int8(c))
	}
}

// decompress returns the decompressed form of src. For CompressionNone it returns
// src itself; otherwise a new buffer that is never reused, so callers may alias it.
// Safe for concurrent use.
func decompress(src []byte, c Compression) ([]byte, error) {
	switch c {
	case CompressionNone:
		return src, nil
	case CompressionGzip:
		return gunzip(src)
	case CompressionSnappy:
		if len(src) >= len(xerialMagic) && bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
			return unxerial(src)
		}
		return unsnappy(src)
	case CompressionLZ4:
		d := lz4Decoders.Get().(*lz4Decoder)
		defer lz4Decoders.Put(d)
		d.src.Reset(src)
		d.r.Reset(&d.src)
		out, err := readBounded(d.r, 4*len(src))
		d.src.Reset(nil)
		d.r.Reset(nil)
		return out, err
	case CompressionZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		out, err := d.DecodeAll(src, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, errTooLarge
		}
		return out, err
	default:
		return nil, fmt.Errorf("unknown compression codec %d", int8(c))
	}
}

// sliceWriter is an io.Writer appending to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type gzipEncoder struct {
	w   *gzip.Writer
	out sliceWriter
}

type gzipDecoder struct {
	r   gzip.Reader
	src bytes.Reader
}

type lz4Encoder struct {
	w   *lz4.Writer
	out sliceWriter
}

type lz4Decoder struct {
	r   *lz4.Reader
	src bytes.Reader
}

// Codec state is pooled: encoders and decoders are costly to build and each is used by
// one goroutine at a time. None of them runs goroutines of its own (zstd is set to a
// concurrency of one and used only through EncodeAll/DecodeAll), so a pooled value the
// garbage collector drops needs no Close.
var (
	gzipEncoders = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return &gzipEncoder{w: w}
	}}
	gzipDecoders = sync.Pool{New: func() any { return new(gzipDecoder) }}
	lz4Encoders  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// Kafka's Java client writes 64 KiB blocks; the default 4 MiB would make
		// every pooled writer hold 4 MiB.
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1))
		return &lz4Encoder{w: w}
	}}
	lz4Decoders = sync.Pool{New: func() any {
		r := lz4.NewReader(nil)
		_ = r.Apply(lz4.ConcurrencyOption(1))
		return &lz4Decoder{r: r}
	}}
	zstdEncoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
		if err != nil {
			panic("semantics: zstd encoder: " + err.Error()) // only on invalid static options
		}
		return e
	}}
	zstdDecoders = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(MaxDecompressedSize), zstd.WithDecoderMaxWindow(MaxDecompressedSize))
		if err != nil {
			panic("semantics: zstd decoder: " + err.Error()) // only on invalid static options
		}
		return d
	}}
)

func gunzip(src []byte) ([]byte, error) {
	d := gzipDecoders.Get().(*gzipDecoder)
	defer gzipDecoders.Put(d)
	defer d.src.Reset(nil)
	d.src.Reset(src)
	if err := d.r.Reset(&d.src); err != nil {
		return nil, err
	}
	// The trailer's ISIZE is the last member's size mod 2^32: a good first guess,
	// capped by deflate's best ratio (~1032:1) so a lying trailer cannot make us
	// allocate much for a tiny input.
	hint := 4 * len(src)
	if len(src) >= 4 {
		isize := int64(binary.LittleEndian.Uint32(src[len(src)-4:]))
		hint = int(min(isize, 1032*int64(len(src)), MaxDecompressedSize))
	}
	return readBounded(&d.r, hint)
}

// readBounded reads r to its end into a new buffer, refusing more than
// MaxDecompressedSize bytes.
func readBounded(r io.Reader, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(max(hint, 512), MaxDecompressedSize)+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), MaxDecompressedSize+1-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), MaxDecompressedSize+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > MaxDecompressedSize {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func unsnappy(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("raw block: %w", err)
	}
	if n > MaxDecompressedSize {
		return nil, errTooLarge
	}
	out, err := s2.Decode(make([]byte, n), src)
	if err != nil {
		return nil, fmt.Errorf("raw block: %w", err)
	}
	return out, nil
}

// xerialMagic starts snappy data framed the way the Java client's xerial
// SnappyOutputStream writes it: this magic, a version and a minimum compatible version
// (int32 each), then chunks of [int32 length][raw snappy block].
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

func unxerial(src []byte) ([]byte, error) {
	if len(src) < xerialHeaderSize {
		return nil, fmt.Errorf("xerial header truncated at %d bytes", len(src))
	}
	// First pass: check the framing and size the output, so it is allocated once.
	total := 0
	for pos := xerialHeaderSize; pos < len(src); {
		chunk, next, err := xerialChunk(src, pos)
		if err != nil {
			return nil, err
		}
		n, err := s2.DecodedLen(chunk)
		if err != nil {
			return nil, fmt.Errorf("xerial chunk at byte %d: %w", pos, err)
		}
		if total += n; total > MaxDecompressedSize {
			return nil, errTooLarge
		}
		pos = next
	}
	out := make([]byte, total)
	off := 0
	for pos := xerialHeaderSize; pos < len(src); {
		chunk, next, _ := xerialChunk(src, pos)
		n, _ := s2.DecodedLen(chunk)
		if _, err := s2.Decode(out[off:off+n], chunk); err != nil {
			return nil, fmt.Errorf("xerial chunk at byte %d: %w", pos, err)
		}
		off += n
		pos = next
	}
	return out, nil
}

// xerialChunk returns the chunk whose length prefix starts at pos, and where the next
// one starts.
func xerialChunk(src []byte, pos int) (chunk []byte, next int, err error) {
	if len(src)-pos < 4 {
		return nil, 0, fmt.Errorf("xerial chunk length at byte %d truncated", pos)
	}
	n := binary.BigEndian.Uint32(src[pos:])
	pos += 4
	if uint64(n) > uint64(len(src)-pos) {
		return nil, 0, fmt.Errorf("xerial chunk at byte %d claims %d bytes, %d left", pos-4, n, len(src)-pos)
	}
	return src[pos : pos+int(n)], pos + int(n), nil
}
