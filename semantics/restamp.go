package semantics

import (
	"encoding/binary"
	"hash/crc32"
)

// SetProducer overwrites the producer id, epoch and base sequence of a built batch in
// place and recomputes its CRC. A producer uses it when it must resend batches under
// a new identity after a batch before them failed for good. b must be a whole batch.
func SetProducer(b []byte, p ProducerInfo) {
	be := binary.BigEndian
	be.PutUint64(b[43:], uint64(p.ID))
	be.PutUint16(b[51:], uint16(p.Epoch))
	be.PutUint32(b[53:], uint32(p.BaseSequence))
	be.PutUint32(b[crcOffset:], crc32.Checksum(b[crcStart:], crc32c))
}
