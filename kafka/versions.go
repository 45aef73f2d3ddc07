package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// api is one Kafka API the listener implements: the versions it advertises in
// ApiVersions, every one of them honoured in full, and its handler.
type api struct {
	min, max int16
	// handle runs in the connection's read loop and must not block: it returns the
	// stage that computes the answer, which runs on its own goroutine. A nil answer
	// sends none (acks=0 produce).
	handle func(ctx context.Context, c *conn, req kmsg.Request) func() kmsg.Response
}

// apis are the implemented APIs by key. The range of each is what its handler
// covers; docs/kafka.md lists them, and what franz-go's newer versions add. Some
// newer versions need nothing of their handler: OffsetFetch v9's member id and
// epoch are for KIP-848 groups, and every qxd group is classic, whose offsets
// Kafka answers whatever member asks.
var apis map[int16]api

func init() {
	apis = map[int16]api{
		kmsg.Produce.Int16():                 {3, 13, handleProduce},
		kmsg.Fetch.Int16():                   {4, 18, handleFetchHinted},
		kmsg.ListOffsets.Int16():             {1, 11, handleListOffsets},
		kmsg.Metadata.Int16():                {0, 13, handleMetadata},
		kmsg.OffsetCommit.Int16():            {2, 10, handleOffsetCommit},
		kmsg.OffsetFetch.Int16():             {1, 10, handleOffsetFetch},
		kmsg.FindCoordinator.Int16():         {0, 6, handleFindCoordinator},
		kmsg.JoinGroup.Int16():               {0, 9, handleJoinGroup},
		kmsg.Heartbeat.Int16():               {0, 4, handleHeartbeat},
		kmsg.LeaveGroup.Int16():              {0, 5, handleLeaveGroup},
		kmsg.SyncGroup.Int16():               {0, 5, handleSyncGroup},
		kmsg.DescribeGroups.Int16():          {0, 6, handleDescribeGroups},
		kmsg.ListGroups.Int16():              {0, 5, handleListGroups},
		kmsg.ApiVersions.Int16():             {0, 5, handleApiVersions},
		kmsg.InitProducerID.Int16():          {0, 5, handleInitProducerID},
		kmsg.CreateTopics.Int16():            {0, 7, handleCreateTopics},
		kmsg.DeleteTopics.Int16():            {0, 6, handleDeleteTopics},
		kmsg.DescribeConfigs.Int16():         {0, 4, handleDescribeConfigs},
		kmsg.CreatePartitions.Int16():        {0, 3, handleCreatePartitions},
		kmsg.DeleteRecords.Int16():           {0, 2, handleDeleteRecords},
		kmsg.AlterConfigs.Int16():            {0, 2, handleAlterConfigs},
		kmsg.DeleteGroups.Int16():            {0, 3, handleDeleteGroups},
		kmsg.IncrementalAlterConfigs.Int16(): {0, 1, handleIncrementalAlterConfigs},
		kmsg.DescribeCluster.Int16():         {0, 2, handleDescribeCluster},
		kmsg.SASLHandshake.Int16():           {0, 1, handleSASLHandshake},
		kmsg.SASLAuthenticate.Int16():        {0, 2, handleSASLAuthenticate},
		kmsg.OffsetForLeaderEpoch.Int16():    {0, 4, handleOffsetForLeaderEpoch},
		kmsg.OffsetDelete.Int16():            {0, 0, handleOffsetDelete},
		kmsg.AddPartitionsToTxn.Int16():      {0, 3, handleAddPartitionsToTxn},
		kmsg.AddOffsetsToTxn.Int16():         {0, 4, handleAddOffsetsToTxn},
		kmsg.EndTxn.Int16():                  {0, 5, handleEndTxn},
		kmsg.TxnOffsetCommit.Int16():         {0, 6, handleTxnOffsetCommit},
		kmsg.DescribeProducers.Int16():       {0, 0, handleDescribeProducers},
		kmsg.DescribeTransactions.Int16():    {0, 0, handleDescribeTransactions},
		kmsg.ListTransactions.Int16():        {0, 2, handleListTransactions},
	}
}

// supported reports whether the listener serves version of the API key (and
// advertises it: ApiVersions lists at most also the versions tooOld refuses).
func supported(key, version int16) bool {
	a, ok := apis[key]
	return ok && version >= a.min && version <= a.max
}

// tooOld are the versions, below those an API's handler serves, that the
// listener decodes only to refuse them: from oldest to the API's min - 1. They
// are the versions of clients before Kafka 0.11, whose records are in the
// message formats before RecordBatch v2, which qxd neither stores nor converts
// to (refuseOld). ApiVersions lists them only where listed says. Any other
// version outside an API's range closes the connection, as Kafka does.
type tooOld struct {
	oldest int16
	// listed: ApiVersions lists the API from oldest, though those versions
	// are only refused. Produce is, as Kafka 4.0 lists it (KAFKA-18659):
	// librdkafka up to at least 2.0 turns gzip, snappy and lz4 on only for a
	// broker that lists Produce v0, and otherwise sends every batch
	// uncompressed. A client picks the highest version both sides list, so
	// only a client that has nothing newer sends v0-v2, and it gets a code.
	listed bool
	// refuse answers a request: an error code for every partition, nothing
	// stored or read. A nil answer sends none, and the connection is closed
	// (an acks=0 produce).
	refuse func(req kmsg.Request) kmsg.Response
}

// refusedOld are the APIs with versions tooOld, by key.
var refusedOld = map[int16]tooOld{
	kmsg.Produce.Int16(): {0, true, refuseOldProduce}, // v0-v2: message formats v0 and v1
	kmsg.Fetch.Int16():   {0, false, refuseOldFetch},  // v0-v3: the answer can carry v0 and v1 only
}

// listedMin is the oldest version ApiVersions lists for the API key: its
// handler's, or the oldest refused version where those are listed (tooOld).
func listedMin(key int16) int16 {
	if o, ok := refusedOld[key]; ok && o.listed {
		return o.oldest
	}
	return apis[key].min
}

// refused reports whether version of the API key is one the listener decodes
// only to refuse it (tooOld).
func refused(key, version int16) bool {
	o, ok := refusedOld[key]
	return ok && version >= o.oldest && version < apis[key].min
}
